"""`recsys monitor`: the online metrics job, drift, train/serve skew and the HTML report."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


@app.command()
def stream(
    until_idle: Annotated[
        float | None,
        typer.Option(help="Stop after this many seconds without a new message (default: run until Ctrl-C)."),
    ] = None,
    from_beginning: Annotated[
        bool, typer.Option(help="Without a checkpoint, start at the topics' beginning (else at their end).")
    ] = True,
) -> None:
    """Consume movielog and recsys.provenance: availability, hit rate and cost per window, to Parquet and /metrics."""
    from monitoring.settings import get_monitor_settings
    from monitoring.stream import run_stream

    summary = run_stream(get_monitor_settings(), until_idle_s=until_idle, from_beginning=from_beginning)
    typer.echo(summary.describe())


@app.command()
def drift(
    hours: Annotated[
        float, typer.Option(help="How far back the current profiles reach (hours of log time).")
    ] = 24.0,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON instead of a table.")
    ] = False,
) -> None:
    """Drift of ingested events, served features and scores against the champion's training data; schema drift."""
    from monitoring.drift import print_drift, run_drift
    from monitoring.settings import get_monitor_settings

    result = run_drift(get_monitor_settings(), hours=hours)
    print_drift(result, json_out=json_out)


@app.command()
def skew(
    hours: Annotated[float, typer.Option(help="How far back the served feature log is read (hours).")] = 24.0,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON instead of a table.")
    ] = False,
) -> None:
    """Train/serve skew: per feature PSI and mean shift of served rows against the champion's training rows."""
    from monitoring.settings import get_monitor_settings
    from monitoring.skew import SkewInputError, print_skew, run_skew

    try:
        result = run_skew(get_monitor_settings(), hours=hours)
    except SkewInputError as exc:  # a missing input is an answer, not a crash: say which
        typer.echo(f"skew: {exc}", err=True)
        raise typer.Exit(1) from None
    print_skew(result, json_out=json_out)


@app.command()
def report(
    open_hint: Annotated[bool, typer.Option(help="Print a file:// URL to open.")] = True,
) -> None:
    """Write the self-contained HTML dashboard (availability, latency, hit rate, cost, drift, skew, lag, models)."""
    from monitoring.report import write_report
    from monitoring.settings import get_monitor_settings

    path = write_report(get_monitor_settings())
    typer.echo(f"report: {path}" + (f"  (file://{path.resolve()})" if open_hint else ""))
