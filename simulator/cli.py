"""`recsys simulate ...`: generate the world, serve its metadata API, stream its traffic, backfill, ground truth."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from simulator.cli_stream import history, traffic
from simulator.cli_support import (
    DriftsOpt,
    console,
    load_world_or_exit,
    parse_time,
    settings_with,
    temporal_config,
)

app = typer.Typer(
    help="The simulated streaming service: world, metadata API, traffic, history, ground truth.",
    no_args_is_help=True,
)


@app.command()
def world(
    users: Annotated[
        int | None, typer.Option(help="Users to generate (default: settings, 1,000,000).")
    ] = None,
    movies: Annotated[
        int | None, typer.Option(help="Movies to generate (default: settings, 20,000).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="World seed; the same seed gives the same world.")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing world.")] = False,
    period_start: Annotated[
        str | None,
        typer.Option(help="Start of the simulated period, ISO 8601 (default: half the period before now)."),
    ] = None,
    period_days: Annotated[
        float | None, typer.Option(help="Days of the simulated period (default 56).")
    ] = None,
    temporal: Annotated[
        Path | None, typer.Option(help="JSON file with temporal knobs (see docs/simulator.md).")
    ] = None,
) -> None:
    """Generate a deterministic world and store it under <var>/sim/ as Parquet."""
    from simulator.store import load_meta, save_world
    from simulator.world import generate_world

    s = settings_with(users=users, movies=movies, seed=seed)
    if (s.sim_dir / "world.json").exists() and not force:
        meta = load_meta(s.sim_dir)
        console.print(
            f"a world exists under {s.sim_dir} (seed {meta.seed}, {meta.users:,} users, "
            f"{meta.movies:,} movies); use --force to replace it"
        )
        raise typer.Exit(1)
    cfg = temporal_config(temporal, period_start, period_days)
    t0 = time.perf_counter()
    w = generate_world(s.users, s.movies, s.seed, latent_dim=s.latent_dim, temporal=cfg, progress=True)
    save_world(w, s.sim_dir)
    (s.sim_dir / "state.json").unlink(missing_ok=True)  # a new world starts a new timeline
    console.print(
        f"world: {s.users:,} users x {s.movies:,} movies, seed {s.seed}, period from "
        f"{cfg.start:%Y-%m-%d %H:%M} for {cfg.days:g} days, {time.perf_counter() - t0:.1f} s -> {s.sim_dir}"
    )


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8080).")] = None,
    latency_ms: Annotated[
        float | None, typer.Option(help="Fault injection: added latency per answer.")
    ] = None,
    error_rate: Annotated[float | None, typer.Option(help="Fault injection: share of 5xx answers.")] = None,
    drifts_file: DriftsOpt = None,
) -> None:
    """Serve the metadata API (GET /user/<ids>, /movie/<ids>, /healthz) for the stored world."""
    import uvicorn

    from simulator.api import create_app

    s = settings_with(
        api_host=host,
        api_port=port,
        api_latency_ms=latency_ms,
        api_error_rate=error_rate,
        drifts_file=drifts_file,
    )
    uvicorn.run(create_app(s), host=s.api_host, port=s.api_port, log_level="warning")


app.command()(traffic)
app.command()(history)


@app.command()
def truth(
    user: Annotated[list[int], typer.Option(help="User id (repeat for several).")],
    top: Annotated[int, typer.Option(help="How many movies to list per user.")] = 20,
    at: Annotated[
        str | None, typer.Option(help="Simulated time: taste drifts, and only movies released by then.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print the movies each user truly likes best (ground truth, for evaluation only)."""
    from simulator.truth import Truth

    s = settings_with()
    t = Truth(load_world_or_exit(s), s)
    when = None if at is None else datetime.fromtimestamp((parse_time(at) or 0) / 1e9, UTC)
    try:
        tops = {u: t.top_movies(u, top, when) for u in user}
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--user") from exc
    if as_json:
        typer.echo(
            json.dumps(
                {
                    str(u): [{"movie_id": m, "affinity": round(a, 4)} for m, a in rows]
                    for u, rows in tops.items()
                }
            )
        )
        return
    for u, rows in tops.items():
        table = Table(title=f"user {u}: true top {top}")
        table.add_column("#", justify="right")
        table.add_column("movie_id")
        table.add_column("affinity", justify="right")
        for i, (m, a) in enumerate(rows, 1):
            table.add_row(str(i), m, f"{a:.3f}")
        Console().print(table)


if __name__ == "__main__":
    app()
