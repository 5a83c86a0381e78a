"""`recsys simulate ...`: generate the world, serve its metadata API, stream its traffic, backfill, ground truth."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table

from simulator.settings import SimSettings, get_sim_settings

app = typer.Typer(
    help="The simulated streaming service: world, metadata API, traffic, history, ground truth.",
    no_args_is_help=True,
)
console = Console(stderr=True)


class Loop(StrEnum):
    """Traffic modes."""

    OPEN = "open"
    CLOSED = "closed"


SeedOpt = Annotated[int | None, typer.Option(help="Traffic seed (default: the world's seed).")]
DriftsOpt = Annotated[Path | None, typer.Option(help="JSON file with a list of scheduled drifts (see docs).")]
MalformedOpt = Annotated[float | None, typer.Option(help="Share of lines corrupted (codec-rejected).")]
DuplicateOpt = Annotated[float | None, typer.Option(help="Share of lines written twice.")]
LateOpt = Annotated[float | None, typer.Option(help="Share of lines delivered late (out of order).")]
RateOpt = Annotated[float | None, typer.Option(help="Watch sessions started per simulated hour.")]
TopicOpt = Annotated[str | None, typer.Option(help="Kafka topic (default: settings, 'movielog').")]


def _settings(**updates: Any) -> SimSettings:
    """Settings from the environment with the CLI's explicit options on top; bad values exit with a message."""
    from pydantic import ValidationError

    from simulator.drift import load_drifts

    drifts = updates.pop("drifts_file", None)
    values = {k: v for k, v in updates.items() if v is not None}
    try:
        s = get_sim_settings()
        if drifts is not None:
            values["drifts"] = load_drifts(drifts)
        return SimSettings.model_validate({**s.model_dump(), **values}) if values else s
    except (ValidationError, ValueError, OSError) as exc:  # a bad file or value, not a bug: no traceback
        console.print(f"[red]invalid settings: {exc}[/red]")
        raise typer.Exit(2) from exc


def _parse_time(text: str | None) -> int | None:
    if text is None:
        return None
    if text == "now":
        return time.time_ns()
    dt = datetime.fromisoformat(text)
    return int((dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp() * 1e9)


def _load(s: SimSettings, texts: bool = False) -> Any:
    from simulator.store import WorldNotFoundError, load_world

    try:
        return load_world(s.sim_dir, texts=texts)
    except WorldNotFoundError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


def _ensure_topic(topic: str) -> None:
    from events.kafka import ensure_topics
    from events.settings import get_kafka_settings

    ensure_topics({topic: get_kafka_settings().movielog_partitions})


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
) -> None:
    """Generate a deterministic world and store it under <var>/sim/ as Parquet."""
    from simulator.store import load_meta, save_world
    from simulator.world import generate_world

    s = _settings(users=users, movies=movies, seed=seed)
    if (s.sim_dir / "world.json").exists() and not force:
        meta = load_meta(s.sim_dir)
        console.print(
            f"a world exists under {s.sim_dir} (seed {meta.seed}, {meta.users:,} users, "
            f"{meta.movies:,} movies); use --force to replace it"
        )
        raise typer.Exit(1)
    t0 = time.perf_counter()
    w = generate_world(s.users, s.movies, s.seed, latent_dim=s.latent_dim, progress=True)
    save_world(w, s.sim_dir)
    (s.sim_dir / "state.json").unlink(missing_ok=True)  # a new world starts a new timeline
    console.print(
        f"world: {s.users:,} users x {s.movies:,} movies, seed {s.seed}, "
        f"{time.perf_counter() - t0:.1f} s -> {s.sim_dir}"
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

    s = _settings(
        api_host=host,
        api_port=port,
        api_latency_ms=latency_ms,
        api_error_rate=error_rate,
        drifts_file=drifts_file,
    )
    uvicorn.run(create_app(s), host=s.api_host, port=s.api_port, log_level="warning")


def _report(result: Any, extra: str = "") -> None:
    st = result.stats
    table = Table(title=f"traffic {extra}".strip())
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in (
        ("lines", f"{st.lines:,}"),
        ("lines/s", f"{result.lines_per_s:,.0f}"),
        ("seconds", f"{result.seconds:.1f}"),
        ("sessions", f"{st.sessions:,}"),
        ("accounts", f"{st.accounts:,}"),
        ("requests", f"{st.requests:,}"),
        ("requests failed", f"{st.requests_failed:,}"),
        ("recommendation taken", f"{st.accepted:,}"),
        ("malformed", f"{st.malformed:,}"),
        ("simulated end", datetime.fromtimestamp(result.sim_end_ns / 1e9, UTC).isoformat()),
    ):
        table.add_row(name, value)
    console.print(table)


@app.command()
def traffic(
    *,
    mode: Annotated[
        Loop, typer.Option(help="open: users choose alone; closed: call the platform's /recommend.")
    ] = Loop.OPEN,
    speed: Annotated[
        float | None, typer.Option(help="Simulated seconds per wall second; 0: unpaced.")
    ] = None,
    hours: Annotated[
        float | None, typer.Option(help="Simulated hours to run (default: until Ctrl-C).")
    ] = None,
    max_lines: Annotated[int | None, typer.Option(help="Stop after this many lines.")] = None,
    start: Annotated[
        str | None, typer.Option(help="Simulated start, ISO 8601 or 'now' (default: resume).")
    ] = None,
    sessions_per_hour: RateOpt = None,
    serving_url: Annotated[str | None, typer.Option(help="Closed loop: base URL of the recommender.")] = None,
    topic: TopicOpt = None,
    kafka: Annotated[bool, typer.Option(help="Produce to Kafka.")] = True,
    out: Annotated[Path | None, typer.Option(help="Also write daily log files here.")] = None,
    seed: SeedOpt = None,
    malformed_rate: MalformedOpt = None,
    duplicate_rate: DuplicateOpt = None,
    late_rate: LateOpt = None,
    drifts_file: DriftsOpt = None,
) -> None:
    """Stream the world's log lines to Kafka on the simulated clock (open or closed loop)."""
    from simulator.clock import SimClock
    from simulator.recommend import RecommendClient
    from simulator.run import drive
    from simulator.sinks import FileSink, KafkaSink, Sink
    from simulator.state import read_state
    from simulator.traffic import Traffic

    loop: Literal["open", "closed"] = "open" if mode is Loop.OPEN else "closed"
    s = _settings(
        speed=speed,
        sessions_per_hour=sessions_per_hour,
        serving_url=serving_url,
        topic=topic,
        malformed_rate=malformed_rate,
        duplicate_rate=duplicate_rate,
        late_rate=late_rate,
        drifts_file=drifts_file,
    )
    w = _load(s)
    state = read_state(s.sim_dir)
    if state is not None and (state.world_seed != w.meta.seed or state.world_users != w.meta.users):
        state = None
    t0 = _parse_time(start) or (state.sim_now_ns if state else time.time_ns())
    clock = SimClock(t0, s.speed)
    rec = (
        RecommendClient(s.serving_url, s.request_timeout_ms, s.closed_loop_concurrency)
        if loop == "closed"
        else None
    )
    sinks: list[Sink] = []
    if kafka:
        _ensure_topic(s.topic)
        sinks.append(KafkaSink(s.topic))
    if out is not None:
        sinks.append(FileSink(out))
    gen = Traffic(
        w, s, loop, t0, next_user=state.next_user if state else None, recommender=rec, clock=clock, seed=seed
    )
    until = t0 + int(hours * 3600e9) if hours is not None else None
    try:
        result = drive(gen, sinks, until_ns=until, max_lines=max_lines, sim_dir=s.sim_dir)
    finally:
        if rec is not None:
            rec.close()
    _report(result, f"({loop} loop)")


@app.command()
def history(
    *,
    days: Annotated[float, typer.Option(help="Days of history to generate.")] = 7.0,
    out: Annotated[
        Path | None, typer.Option(help="Write daily MLiP log files here (for `recsys replay`).")
    ] = None,
    kafka: Annotated[bool, typer.Option(help="Also produce the history to Kafka.")] = True,
    gzip: Annotated[bool, typer.Option(help="Compress the log files.")] = True,
    start: Annotated[
        str | None, typer.Option(help="Simulated start, ISO 8601 (default: `days` before now).")
    ] = None,
    sessions_per_hour: RateOpt = None,
    topic: TopicOpt = None,
    seed: SeedOpt = None,
    malformed_rate: MalformedOpt = None,
    duplicate_rate: DuplicateOpt = None,
    late_rate: LateOpt = None,
    drifts_file: DriftsOpt = None,
) -> None:
    """Backfill `days` of open-loop history to Kafka and/or daily log files, as fast as possible."""
    from simulator.history import backfill

    s = _settings(
        sessions_per_hour=sessions_per_hour,
        topic=topic,
        malformed_rate=malformed_rate,
        duplicate_rate=duplicate_rate,
        late_rate=late_rate,
        drifts_file=drifts_file,
    )
    if not kafka and out is None:
        raise typer.BadParameter("nothing to write: give --out or keep --kafka")
    w = _load(s)
    if kafka:
        _ensure_topic(s.topic)
    result, files = backfill(
        w, s, days, start_ns=_parse_time(start), to_kafka=kafka, out_dir=out, compress=gzip, seed=seed
    )
    _report(result, f"(history, {days:g} days)")
    for path in files:
        console.print(f"wrote {path}")


@app.command()
def truth(
    user: Annotated[list[int], typer.Option(help="User id (repeat for several).")],
    top: Annotated[int, typer.Option(help="How many movies to list per user.")] = 20,
    at: Annotated[str | None, typer.Option(help="Simulated time for taste drifts, ISO 8601.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print the movies each user truly likes best (ground truth, for evaluation only)."""
    from simulator.truth import Truth

    s = _settings()
    t = Truth(_load(s), s)
    when = None if at is None else datetime.fromtimestamp((_parse_time(at) or 0) / 1e9, UTC)
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
