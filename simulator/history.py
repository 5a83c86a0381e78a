"""Backfill: D days of open-loop history, as fast as it can be made, to Kafka and/or daily log files.

By default the history ends now (wall clock, to the minute), so a live `traffic` run picks up
where it stops (the state file carries the time and the next new user). Sessions still running
at the end are cut there, as in any log export window. Files are written as
`movielog-YYYY-MM-DD.log.gz` and can be produced into Kafka later with `recsys replay`.
"""

from __future__ import annotations

import time
from pathlib import Path

from events.settings import KafkaSettings
from simulator.clock import SimClock
from simulator.run import RunResult, drive
from simulator.settings import SimSettings
from simulator.sinks import FileSink, KafkaSink, Sink
from simulator.traffic import SEC, Traffic
from simulator.world import World

DAY_NS = 86_400 * SEC


def default_start(days: float, end_ns: int | None = None) -> int:
    """Start of a `days`-long history ending at `end_ns` (default: now, floored to the minute)."""
    end = end_ns if end_ns is not None else time.time_ns() // (60 * SEC) * (60 * SEC)
    return end - int(days * DAY_NS)


def backfill(
    world: World,
    settings: SimSettings,
    days: float,
    *,
    start_ns: int | None = None,
    to_kafka: bool = True,
    out_dir: Path | None = None,
    compress: bool = True,
    kafka_settings: KafkaSettings | None = None,
    seed: int | None = None,
    save_state: bool = True,
    progress: bool = True,
) -> tuple[RunResult, list[Path]]:
    """Generate `days` of history from `start_ns`; returns the run result and the files written."""
    if not to_kafka and out_dir is None:
        raise ValueError("nothing to write to: enable Kafka or give an output directory")
    start = start_ns if start_ns is not None else default_start(days)
    traffic = Traffic(world, settings, "open", start, clock=SimClock(start, 0.0), seed=seed)
    sinks: list[Sink] = []
    if to_kafka:
        sinks.append(KafkaSink(settings.topic, kafka_settings))
    files = FileSink(out_dir, compress) if out_dir is not None else None
    if files is not None:
        sinks.append(files)
    result = drive(
        traffic,
        sinks,
        until_ns=start + int(days * DAY_NS),
        sim_dir=settings.sim_dir if save_state else None,
        progress=progress,
    )
    for sink in sinks:
        if isinstance(sink, KafkaSink) and sink.failed:
            raise RuntimeError(f"{sink.failed} lines were not delivered to Kafka: {sink.last_error}")
    return result, list(dict.fromkeys(files.paths)) if files is not None else []
