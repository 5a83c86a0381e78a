"""`recsys stack ...`: the local stack manager's commands."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from recsys.stack.base import ComponentStatus, State
from recsys.stack.errors import StackError
from recsys.stack.manager import CORE, MONITORING, Stack

app = typer.Typer(no_args_is_help=True)
console = Console()

_COLOURS = {State.HEALTHY: "green", State.STOPPED: "dim", State.UNHEALTHY: "red"}


def _table(rows: list[ComponentStatus]) -> Table:
    table = Table(title="recsys local stack")
    for col in ("component", "address", "health", "managed", "pid", "detail"):
        table.add_column(col)
    for r in rows:
        colour = _COLOURS[r.state]
        table.add_row(
            r.name,
            r.address,
            f"[{colour}]{r.state}[/{colour}]",
            "yes" if r.managed else "no",
            str(r.pid or ""),
            r.detail,
        )
    return table


def _names(only: str | None, monitoring: bool) -> list[str]:
    if only:
        return [n.strip() for n in only.split(",") if n.strip()]
    return [*CORE, *MONITORING] if monitoring else list(CORE)


@app.command()
def up(
    monitoring: Annotated[
        bool, typer.Option("--monitoring", help="Also start Prometheus and Alertmanager.")
    ] = False,
    only: Annotated[str | None, typer.Option(help="Comma-separated components, e.g. 'redis'.")] = None,
) -> None:
    """Start what is not running (idempotent); wait until healthy; create the Kafka topics."""
    stack = Stack()
    try:
        with console.status("starting the local stack (first run fetches the Kafka jars)..."):
            rows = stack.up(_names(only, monitoring))
    except StackError as exc:
        console.print(f"[red]stack up failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(_table(rows))


@app.command()
def down(
    only: Annotated[str | None, typer.Option(help="Comma-separated components; default all.")] = None,
) -> None:
    """Stop every component this stack started (external ones are left alone)."""
    stack = Stack()
    try:
        stopped = stack.down(_names(only, True) if only else None)
    except StackError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@app.command()
def prereqs(
    install: Annotated[
        bool, typer.Option(help="Install missing Debian packages when running as root.")
    ] = True,
) -> None:
    """Check (and as root on Debian, install) java, mvn, redis-server, prometheus, alertmanager, promtool."""
    from recsys.settings import get_settings
    from recsys.stack import prereqs as pre

    try:
        found = pre.require(list(pre.ALL), auto_install=install and get_settings().auto_install)
    except StackError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    for command, path in found.items():
        console.print(f"{command:<26} {path}")


@app.command()
def status(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show each component, its address and health; exit 1 when a core component is not healthy."""
    rows = Stack().status()
    if json_out:
        import json
        from dataclasses import asdict

        typer.echo(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        console.print(_table(rows))
    if any(r.state is not State.HEALTHY for r in rows if r.name in CORE):
        raise typer.Exit(1)
