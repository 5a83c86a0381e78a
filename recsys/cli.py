"""The `recsys` command line: one front door for operators of the platform."""

from __future__ import annotations

import typer

from recsys.cli_events import app as events_app
from recsys.cli_stack import app as stack_app

app = typer.Typer(
    help="Movie recommendation platform: local stack, event tools, simulation, ingestion, training, serving.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(stack_app, name="stack", help="Start, stop and inspect the local stack (Kafka, Redis, Prometheus).")
app.add_typer(events_app, name="events", help="Inspect and validate MLiP log lines and Kafka topics.")


@app.command()
def demo(
    users: int = typer.Option(2_000, help="Users in the demo world."),
    movies: int = typer.Option(500, help="Movies in the demo catalogue."),
) -> None:
    """Run the whole loop at demo scale on the local stack and print where to look."""
    from recsys.demo import run_demo

    run_demo(users=users, movies=movies)


if __name__ == "__main__":
    app()
