"""The `recsys` command line: one front door for operators of the platform."""

from __future__ import annotations

from pathlib import Path

import typer

from ingestion.cli import ingest as ingest_command
from ingestion.cli_features import app as features_app
from monitoring.cli import app as monitor_app
from ranking.cli_models import app as models_app
from recsys.cli_events import app as events_app
from recsys.cli_experiment import app as experiment_app
from recsys.cli_operate import operate as operate_command
from recsys.cli_stack import app as stack_app
from serving.cli import serve as serve_command
from simulator.cli import app as simulate_app

app = typer.Typer(
    help="Movie recommendation platform: local stack, event tools, simulation, ingestion, training, serving.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _check_environment() -> None:
    """Refuse to start when a `RECSYS_*` variable is not a knob (a typo would be silently ignored); quiet third parties."""
    from core.noise import quiet_third_party
    from core.settings import UnknownSettingError
    from recsys.knobs import check_environment

    quiet_third_party()

    # Once per `recsys` process, before any subcommand: child processes it starts (uvicorn
    # workers of `recsys serve`, the demo's services) inherit the environment checked here.
    try:
        check_environment()
    except UnknownSettingError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


app.add_typer(
    stack_app, name="stack", help="Start, stop and inspect the local stack (Kafka, Redis, Prometheus)."
)
app.add_typer(events_app, name="events", help="Inspect and validate MLiP log lines and Kafka topics.")
app.add_typer(
    simulate_app,
    name="simulate",
    help="The simulated streaming service: world, metadata API, traffic, history.",
)
app.command(name="ingest")(ingest_command)
app.add_typer(
    features_app, name="features", help="Feast's online store: status and rebuild from the offline store."
)
app.command(name="serve")(serve_command)
app.add_typer(
    models_app, name="models", help="The model registry: list, show, promote, roll back, set challenger."
)
app.add_typer(
    monitor_app,
    name="monitor",
    help="Online metrics from the streams, drift, train/serve skew and the HTML report.",
)
app.add_typer(
    experiment_app,
    name="experiment",
    help="A/B and interleaving experiments: start, status, stop, analyze, guard rails, history.",
)
app.command(name="operate")(operate_command)


@app.command()
def replay(
    path: Path = typer.Argument(
        ..., help="An MLiP log file (plain or .gz), e.g. from `recsys simulate history --out`."
    ),
    topic: str = typer.Option("movielog", help="Topic to produce to."),
    max_line_bytes: int | None = typer.Option(
        None, help="Refuse lines longer than this (default: RECSYS_KAFKA_MAX_LINE_BYTES, the codec's limit)."
    ),
) -> None:
    """Produce a log file's lines into Kafka as they are (keyed by user id), with a progress bar."""
    from events.kafka import ensure_topics
    from events.settings import get_kafka_settings
    from ingestion.replay import replay_file

    ensure_topics()
    # A topic of one's own gets the movielog's partitioning (producing to a missing topic only times out).
    ensure_topics({topic: get_kafka_settings().movielog_partitions})
    limit = max_line_bytes or get_kafka_settings().max_line_bytes
    stats = replay_file(path, topic, max_line_bytes=limit)
    for number, size in stats.refused[:10]:
        typer.echo(f"refused line {number} of {path}: {size:,} bytes > {limit:,} (not sent)", err=True)
    if len(stats.refused) > 10:
        typer.echo(f"... and {len(stats.refused) - 10:,} more refused lines", err=True)
    typer.echo(
        f"replayed {stats.lines:,} lines in {stats.seconds:.1f} s ({stats.lines_per_s:,.0f} lines/s), "
        f"{stats.blank} blank skipped, {len(stats.refused)} refused as too long, {stats.failed} failed"
    )
    if stats.failed:
        raise typer.Exit(1)


@app.command()
def train(
    report_dir: Path = typer.Option(Path("reports"), help="Where the comparison report and the λ plot go."),
    register: bool = typer.Option(
        True,
        help="Register the model in MLflow; champion only if it beats the best baseline (else see the report).",
    ),
) -> None:
    """Build leakage-safe training sets, tune and train LambdaRank, choose the cost rule, compare with baselines, promote by verdict."""
    from recsys.settings import get_settings
    from recsys.training import run_training

    s = get_settings()
    result, decision = run_training(s.var, s.redis_url, report_dir, register=register, progress=typer.echo)
    typer.echo((report_dir / "model_comparison.md").read_text())
    typer.echo(f"model: {result.model_dir}; report: {report_dir}")
    typer.echo(decision.summary() if decision else "not registered (--no-register)")


@app.command()
def evaluate(
    report_dir: Path = typer.Option(Path("reports"), help="Where the evaluation report goes."),
    lists: Path | None = typer.Option(
        None, help="Instead: write the champion's lists as of --as-of for --sample users (JSON) to this file."
    ),
    sample: int = typer.Option(
        50, min=1, help="Users (with history, seeded draw) whose lists --lists writes."
    ),
    as_of: str = typer.Option(
        "stream", help="Time of --lists: `stream` (latest event ingested) or an ISO time."
    ),
    cold_start: bool = typer.Option(
        False,
        "--cold-start",
        help="Instead: judge the cold-start policies on users who joined after the cut-off.",
    ),
    cutoff: str | None = typer.Option(
        None, help="--cold-start cut-off, ISO time (default: the last training cut-off, leaving a full week)."
    ),
    descriptions: str = typer.Option(
        "api", help="--cold-start self-descriptions from `api` (metadata API) or `world` (simulator only)."
    ),
    first_days: float = typer.Option(
        7.0, min=0.1, help="--cold-start label window: days after sign-up (short demo logs need fewer)."
    ),
) -> None:
    """Compare the registered rankers (champion, challenger) with every baseline and the oracle on the current data."""
    import json

    from recsys.settings import get_settings
    from recsys.training import run_evaluation, run_served_lists

    s = get_settings()
    if cold_start:
        from ingestion.settings import IngestSettings
        from recsys.cold_start_eval import REPORT, run_cold_start_evaluation, summary

        if descriptions not in ("api", "world"):
            raise typer.BadParameter("--descriptions must be `api` or `world`")
        result = run_cold_start_evaluation(
            s.var,
            report_dir,
            IngestSettings().meta_url,
            typer.echo,
            cutoff,
            first_days,
            descriptions=descriptions,  # type: ignore[arg-type]
        )
        for line in summary(result):
            typer.echo(line)
        typer.echo(f"report: {report_dir / REPORT}")
        return
    if lists is not None:
        served = run_served_lists(s.var, s.redis_url, None, sample, as_of)
        lists.write_text(json.dumps({str(u): m for u, m in served.items()}, indent=1))
        typer.echo(f"{len(served)} users' lists as of {as_of} written to {lists}")
        return
    run_evaluation(s.var, s.redis_url, report_dir, progress=typer.echo)
    typer.echo((report_dir / "evaluation.md").read_text())


@app.command()
def config(
    markdown: bool = typer.Option(False, "--markdown", help="Print the README's Markdown table."),
    update_readme: bool = typer.Option(False, "--update-readme", help="Rewrite the table in README.md."),
) -> None:
    """List every configuration knob (environment variable), its default and purpose."""
    from pathlib import Path

    from recsys.knobs import knobs, markdown_table
    from recsys.readme import update

    if update_readme:
        changed = update(Path("README.md"))
        typer.echo("README.md updated" if changed else "README.md already up to date")
        return
    if markdown:
        typer.echo(markdown_table())
        return
    for k in knobs():
        typer.echo(f"{k.env:<40} {k.default:<28} {k.description}")


@app.command()
def demo(
    users: int = typer.Option(1_000, help="Users in the demo world."),
    movies: int = typer.Option(500, help="Movies in the demo catalogue."),
) -> None:
    """Run the whole loop at demo scale on the local stack and print where to look."""
    from recsys.demo import run_demo

    run_demo(users=users, movies=movies)


if __name__ == "__main__":
    app()
