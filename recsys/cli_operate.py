"""`recsys operate`: one step of the champion/challenger loop (`recsys.operate`), for cron or a Kubernetes CronJob."""

from __future__ import annotations

import time
from pathlib import Path

import typer


def operate(
    once: bool = typer.Option(
        True, "--once", help="Take one step and exit (the default; what a scheduler runs)."
    ),
    every: float | None = typer.Option(
        None, "--every", min=1.0, help="Instead loop in-process: one step every S seconds (demo, benchmark)."
    ),
    kind: str = typer.Option("interleave", "--kind", help="interleave (far fewer users needed) or ab."),
    planned_users: int = typer.Option(
        300,
        "--planned-users",
        min=1,
        help="Decide after N credited users (interleave) or users per arm (ab).",
    ),
    planned_days: float = typer.Option(
        1.0, "--planned-days", min=0.0, help="Or after D days of log time, whichever comes first."
    ),
    offline_gate: bool = typer.Option(
        True, "--offline-gate/--no-offline-gate", help="Challenge only if training's offline verdict wins."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what the step would do; change nothing."),
    reports_dir: Path = typer.Option(Path("reports/operate"), help="Where each retrain's reports go."),
) -> None:
    """Retrain, challenge the champion in an experiment with guard rails, promote on a significant win or discard."""
    from recsys.operate import Plan, operate_once
    from recsys.operate_adapters import real_ports
    from recsys.settings import get_settings

    if kind not in ("interleave", "ab"):
        raise typer.BadParameter("--kind must be interleave or ab")
    del once  # the default; --every is the only other mode
    plan = Plan(kind=kind, planned_users=planned_users, planned_days=planned_days,  # type: ignore[arg-type]
                require_offline_win=offline_gate)  # fmt: skip
    s = get_settings()
    ports = real_ports(s.var, s.redis_url, reports_dir, progress=typer.echo)
    while True:
        try:
            typer.echo(operate_once(ports, plan, dry_run=dry_run).summary())
        except Exception as exc:
            if every is None:
                raise
            # A loop outlives one failed step (broker or Redis away): the next step retries from the state.
            typer.echo(f"step failed: {type(exc).__name__}: {exc}", err=True)
        if every is None or dry_run:
            return
        time.sleep(every)
