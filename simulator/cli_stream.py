"""`recsys simulate traffic` and `recsys simulate history`: the world's log lines into Kafka and files."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.table import Table

from simulator.cli_support import (
    DriftsOpt,
    DuplicateOpt,
    LateOpt,
    MalformedOpt,
    RateOpt,
    SeedOpt,
    TopicOpt,
    console,
    ensure_topic,
    load_world_or_exit,
    parse_time,
    settings_with,
)
from simulator.run import RunResult


class Loop(StrEnum):
    """Traffic modes."""

    OPEN = "open"
    CLOSED = "closed"


def _report(result: RunResult, extra: str = "") -> None:
    """Print a run's figures as a table."""
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
    s = settings_with(
        speed=speed,
        sessions_per_hour=sessions_per_hour,
        serving_url=serving_url,
        topic=topic,
        malformed_rate=malformed_rate,
        duplicate_rate=duplicate_rate,
        late_rate=late_rate,
        drifts_file=drifts_file,
    )
    w = load_world_or_exit(s)
    state = read_state(s.sim_dir)
    if state is not None and (state.world_seed != w.meta.seed or state.world_users != w.meta.users):
        state = None
    t0 = parse_time(start) or (state.sim_now_ns if state else time.time_ns())
    clock = SimClock(t0, s.speed)
    rec = (
        RecommendClient(s.serving_url, s.request_timeout_ms, s.closed_loop_concurrency)
        if loop == "closed"
        else None
    )
    sinks: list[Sink] = []
    if kafka:
        ensure_topic(s.topic)
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
    for sink in sinks:
        if isinstance(sink, KafkaSink) and sink.failed:
            console.print(f"[red]{sink.failed:,} lines not delivered to Kafka: {sink.last_error}[/red]")
            raise typer.Exit(1)


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

    s = settings_with(
        sessions_per_hour=sessions_per_hour,
        topic=topic,
        malformed_rate=malformed_rate,
        duplicate_rate=duplicate_rate,
        late_rate=late_rate,
        drifts_file=drifts_file,
    )
    if not kafka and out is None:
        raise typer.BadParameter("nothing to write: give --out or keep --kafka")
    w = load_world_or_exit(s)
    if kafka:
        ensure_topic(s.topic)
    try:
        result, files = backfill(
            w, s, days, start_ns=parse_time(start), to_kafka=kafka, out_dir=out, compress=gzip, seed=seed
        )
    except RuntimeError as exc:  # lines not delivered: say so, exit non-zero
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    _report(result, f"(history, {days:g} days)")
    for path in files:
        console.print(f"wrote {path}")
