"""`recsys experiment start|status|stop|analyze|guard|history`: run A/B and interleaving experiments."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from serving.experiments import ExperimentFileError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)


def _book() -> Any:
    from core.settings import resolve_var_dir
    from recsys.experiment_lifecycle import ExperimentBook
    from serving.settings import get_serving_settings

    return ExperimentBook(get_serving_settings().experiments_file, resolve_var_dir())


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


def command(fn: Callable[..., None]) -> Callable[..., None]:
    """`app.command()`, where a bad experiment file or definition is a one-line error (exit 2), not a traceback."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except (ExperimentFileError, ValidationError) as exc:  # LifecycleError is an ExperimentFileError
            raise _fail(exc) from None

    app.command(name=fn.__name__)(run)
    return run


@command
def start(
    name: str = typer.Argument(..., help="Experiment name (lower case, digits, . _ -)."),
    arm: list[str] = typer.Option(
        ...,
        "--arm",
        help="An arm: name=control,model=champion,weight=50[,lam=..,"
        "cost_budget=..,cold_start=popular|self_description]; control first.",
    ),
    salt: str | None = typer.Option(None, help="Assignment salt (default: the name and the start date)."),
    interleave: bool = typer.Option(False, "--interleave", help="Team-draft interleave the two arms' lists."),
    primary_metric: str = typer.Option(
        "hit_rate", help="hit_rate | watch_minutes | rating | cost_per_watch."
    ),
    guardrail: list[str] = typer.Option(
        [],
        "--guardrail",
        help="A rail, e.g. p99_ms_max=300 or "
        "availability_min=0.995, fallback_ratio_max, cost_per_1k_max, min_requests.",
    ),
    planned_users: int | None = typer.Option(None, help="Users per arm the run is planned for."),
    planned_days: float | None = typer.Option(None, help="Days the run is planned for."),
    replace: bool = typer.Option(False, help="Stop the running experiment and start this one."),
    reason: str = typer.Option("", help="Why (journalled)."),
    stream_clock: bool = typer.Option(
        False, help="Stamp the start with the stream's clock (replays, the simulator)."
    ),
) -> None:
    """Start an experiment: serving's workers pick it up within seconds; the change is journalled."""
    from recsys.experiment_lifecycle import parse_arm, who
    from serving.experiments import Experiment

    arms = [parse_arm(spec) for spec in arm]
    rails = {k.strip(): v.strip() for k, _, v in (g.partition("=") for g in guardrail)}
    experiment = Experiment.model_validate({
        "name": name, "salt": salt or f"{name}-{time.strftime('%Y%m%d')}", "arms": arms,
        "kind": "interleave" if interleave else "ab", "primary_metric": primary_metric,
        "guardrails": rails, "planned_users": planned_users, "planned_days": planned_days,
    })  # fmt: skip
    book = _book()
    change = book.start(experiment, who(), replace=replace, reason=reason, at=_clock(stream_clock))
    typer.echo(f"started {name} at {change.ts} by {change.by}: {len(arms)} arms "
               f"({', '.join(a.name for a in arms)}), {experiment.kind}; file {book.path}")  # fmt: skip
    _published(book)


@command
def stop(
    name: str = typer.Argument(..., help="Experiment name."),
    reason: str = typer.Option("stopped by operator", help="Why (journalled)."),
    stream_clock: bool = typer.Option(
        False, help="Stamp the stop with the stream's clock (replays, the simulator)."
    ),
) -> None:
    """Stop an experiment: all its traffic goes back to the control arm within seconds."""
    from recsys.experiment_lifecycle import who

    book = _book()
    change = book.stop(name, who(), reason, at=_clock(stream_clock))
    typer.echo(f"stopped {name} at {change.ts} by {change.by}: every user now gets the control arm")
    _published(book)


@command
def status(
    name: str | None = typer.Argument(None, help="Experiment name (default: the active one)."),
) -> None:
    """The experiment's definition, guard-rail health per arm and its current verdict (readable at any time)."""
    from rich.console import Console
    from rich.table import Table

    from monitoring.guardrails import arm_health
    from recsys.experiment_guard import LOOKBACK, control_of, judged_arms, limits_of, windows_of

    book = _book()
    experiment = book.get(name) if name else book.read().active
    if experiment is None:
        raise _fail(ValueError("no experiment is active"))
    state = (
        f"stopped {experiment.stopped_at} ({experiment.stop_reason})" if experiment.stopped_at else "running"
    )
    console = Console()
    console.print(f"[bold]{experiment.name}[/] ({experiment.kind}, primary {experiment.primary_metric}): {state}; "
                  f"started {experiment.started_at}, control {control_of(experiment)}")  # fmt: skip
    import pandas as pd

    since = pd.Timestamp(experiment.started_at) if experiment.started_at else pd.Timestamp(0, tz="UTC")
    health = arm_health(
        windows_of(book.var_dir), judged_arms(experiment), since, LOOKBACK, limits_of(experiment)
    )
    table = Table(title=f"guard rails (last {LOOKBACK})")
    for column in ("arm", "requests", "availability", "p99 ms", "fallback", "cost/1k", "breaches"):
        table.add_column(column)
    for h in health:
        table.add_row(h.arm, f"{h.requests:,}", f"{h.availability:.4f}", f"{h.p99_ms:.0f}",
                      f"{h.fallback_ratio:.3f}", f"{h.cost_per_1k:.2f}", "; ".join(h.breaches) or "-")  # fmt: skip
    console.print(table)
    _analysis(experiment, book.var_dir, None, console)


@command
def analyze(
    name: str = typer.Argument(..., help="Experiment name."),
    out: Path | None = typer.Option(
        None, help="Folder for analysis.json and arms.png (default var/experiments/<name>)."
    ),
) -> None:
    """Full analysis: per-metric effects with intervals and p-values, CUPED, SRM, MDE, mSPRT; table, PNG and JSON."""
    from rich.console import Console

    book = _book()
    experiment = book.get(name)
    folder = out or book.var_dir / "experiments" / name
    _analysis(experiment, book.var_dir, folder, Console())


def _analysis(experiment: Any, var_dir: Path, folder: Path | None, console: Any) -> None:
    from monitoring import experiment_analysis as ea

    if experiment.kind == "interleave":
        result: Any = ea.analyze_interleaving(
            var_dir, experiment.name, experiment.started_at, experiment.stopped_at
        )
    else:
        result = ea.analyze(var_dir, experiment.name, [a.name for a in experiment.arms],
                            experiment.shares(), experiment.control or experiment.arms[0].name,
                            experiment.started_at, experiment.stopped_at, experiment.primary_metric)  # fmt: skip
    console.print(ea.render_table(result))
    console.print(f"[bold]decision:[/] {result.decision}")
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "analysis.json").write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
        console.print(f"wrote {folder / 'analysis.json'}")
        if experiment.kind != "interleave":
            from monitoring.experiment_plot import plot_arms

            console.print(f"wrote {plot_arms(result, folder / 'arms.png')}")


@command
def guard(
    every: float = typer.Option(0.0, help="Seconds between checks (0: check once and exit)."),
) -> None:
    """Check the running experiment's guard rails; a treatment that breaks one is stopped and alerted."""
    from recsys.experiment_guard import check

    book = _book()
    while True:
        result = check(book)
        if result is None:
            typer.echo("no experiment is running")
        elif result.stopped is not None:
            typer.echo(f"STOPPED {result.experiment}: {result.stopped.reason}; alert sent to recsys.alerts")
        else:
            judged = sum(h.judged for h in result.health)
            typer.echo(
                f"{result.experiment}: rails hold ({judged}/{len(result.health)} arms with enough requests)"
            )
        if every <= 0:
            return
        time.sleep(every)


@command
def history(name: str | None = typer.Argument(None, help="Experiment name (default: all).")) -> None:
    """The journal of changes: who started or stopped what, when and why."""
    for row in _book().history(name):
        typer.echo(
            f"{row['ts']}  {row['action']:<7} {row['experiment']:<24} by {row['by']:<12} {row['reason']}"
        )


def _clock(stream: bool) -> Any:
    """None (now) or the latest event time ingested: analysis windows are in log time."""
    if not stream:
        return None
    from core.settings import PlatformSettings
    from recsys.training import stream_clock

    return stream_clock(PlatformSettings().redis_url).to_pydatetime().replace(microsecond=0)


def _published(book: Any) -> None:
    if book.last_publish_error:
        typer.echo(f"warning: the change is in the local journal but not on recsys.experiments: "
                   f"{book.last_publish_error}", err=True)  # fmt: skip
