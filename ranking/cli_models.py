"""`recsys models ...`: list, show, promote, roll back and set the challenger of registered versions (rankers and baselines).

Exit codes: 0 done, 1 promotion refused (the reason is printed), 2 registry error (unknown
version, nothing to roll back to, backend unreachable). MLflow is imported by the first command.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from ranking.registry import GateCheck, ModelRegistry, ModelVersionInfo

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console()

Ref = Annotated[str, typer.Argument(help="A version number (3 or v3) or an alias (champion, challenger).")]


@contextmanager
def _registry() -> Iterator[ModelRegistry]:
    """The configured registry; registry errors end the command with their message and exit code 2."""
    from ranking.registry import ModelRegistry, RegistryError

    try:
        yield ModelRegistry.open()
    except RegistryError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _commit(info: ModelVersionInfo) -> str:
    commit = info.tags.get("git_commit", "")
    return commit[:10] + ("*" if info.tags.get("git_dirty") == "true" else "")


def _metric(info: ModelVersionInfo, key: str) -> str:
    value = info.metrics.get(key)
    return "" if value is None else f"{value:.4g}"


def _kind(info: ModelVersionInfo) -> str:
    return info.kind if info.policy is None else f"{info.kind}: {info.policy}"


def _short(text: str | None, width: int = 60) -> str:
    """A long reason cut for a table cell (`show` prints it whole)."""
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _checks_table(checks: tuple[GateCheck, ...]) -> Table:
    table = Table("gate", "verdict", "detail")
    for c in checks:
        table.add_row(c.metric, "[green]pass[/green]" if c.passed else "[red]fail[/red]", c.detail)
    return table


@app.command("list")
def list_versions() -> None:
    """Every version, newest first: aliases, kind, gate metrics, code commit, data hash, promotion reason."""
    from ranking.registry import COST20, NDCG20, P99_MS

    with _registry() as registry:
        versions = registry.list_versions()
        table = Table(title=f"{registry.name} ({registry.settings.tracking_uri})")
    head = ("version", "aliases", "kind", "created (UTC)", NDCG20, COST20, P99_MS)
    for col in (*head, "commit", "data", "features", "promoted because"):
        table.add_column(col, justify="right" if col in (NDCG20, COST20, P99_MS) else "left")
    for v in versions:
        table.add_row(
            str(v.version),
            ", ".join(v.aliases),
            _kind(v),
            v.created_at.strftime("%Y-%m-%d %H:%M"),
            _metric(v, NDCG20),
            _metric(v, COST20),
            _metric(v, P99_MS),
            _commit(v),
            v.tags.get("data_hash", "")[:10],
            v.tags.get("feature_service", ""),
            _short(v.promotion_reason),
        )
    console.print(table if versions else f"no versions of {registry.name} yet")


@app.command()
def show(ref: Ref) -> None:
    """One version: aliases, kind, promotion reason, provenance tags, metrics, training params, where its files are."""
    with _registry() as registry:
        info = registry.show(ref)
    table = Table("field", "value", title=f"{info.name} v{info.version}", show_lines=False)
    table.add_row("aliases", ", ".join(info.aliases) or "-")
    table.add_row("kind", _kind(info))
    table.add_row("promoted because", info.promotion_reason or "-")
    table.add_row("created", info.created_at.isoformat(timespec="seconds"))
    table.add_row("run", info.run_id)
    table.add_row("source", info.source)
    for section, values in (("tag", info.tags), ("metric", info.metrics), ("param", info.params)):
        for key, value in sorted(values.items()):
            table.add_row(f"{section} {key}", f"{value:.6g}" if isinstance(value, float) else str(value))
    console.print(table)


@app.command()
def promote(
    ref: Ref,
    force: Annotated[
        bool,
        typer.Option("--force", help="Promote past failed metric gates (never past a failed smoke test)."),
    ] = False,
    reason: Annotated[
        str | None,
        typer.Option("--reason", help="Why (recorded on the version; `show` and `list` print it)."),
    ] = None,
) -> None:
    """Make a version champion if it passes the smoke test and the metric gates; exit 1 with the reason if not."""
    with _registry() as registry:
        result = registry.promote(ref, force=force, reason=reason)
    if result.checks:
        console.print(_checks_table(result.checks))
    if not result.accepted:
        console.print(f"[red]refused:[/red] v{result.version} stays as it was: {result.reason}")
        raise typer.Exit(1)
    before = "none" if result.previous is None else f"v{result.previous}"
    console.print(f"[green]champion:[/green] {before} -> v{result.version} ({result.reason})")


@app.command()
def rollback() -> None:
    """Point `champion` back at the champion before the current one."""
    with _registry() as registry:
        result = registry.rollback()
    console.print(f"[green]champion:[/green] v{result.from_version} -> v{result.to_version} (rolled back)")


@app.command()
def challenger(
    ref: Annotated[str | None, typer.Argument(help="Version (3, v3) to route experiment traffic to.")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the challenger alias instead.")] = False,
) -> None:
    """Set the `challenger` alias A/B experiments route to, or remove it with --clear."""
    if (ref is None) != clear:  # both given, or neither
        console.print("[red]error:[/red] give a version or --clear, not both and not neither")
        raise typer.Exit(2)
    with _registry() as registry:
        if clear:
            gone = registry.clear_challenger()
            console.print("no challenger was set" if gone is None else f"challenger v{gone} removed")
            return
        info = registry.set_challenger(str(ref))
    console.print(f"[green]challenger:[/green] v{info.version}")
