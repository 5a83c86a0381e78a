"""Replay MLiP log files (plain or .gz) into Kafka: each line produced as-is, keyed by its user id.

Lines are not parsed: malformed ones go to the topic like any other and the ingestion's
dead-letter path deals with them, exactly as with a live stream. The key is the second
comma-separated field when it is a number (the user id), so a user's events stay in one
partition and in order; other lines get no key. Blank lines (a trailing newline, say) are
skipped and counted. A line longer than the configured maximum (`RECSYS_KAFKA_MAX_LINE_BYTES`,
the codec's own limit) is refused, not produced: it is reported with its line number and size,
so the source file stays the one place that holds it. Used by `recsys replay FILE` to load big backfills made by
`recsys simulate history --out DIR` without streaming them live.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaError, Message, Producer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from events.kafka import make_producer
from events.settings import KafkaSettings, get_kafka_settings
from events.topics import MOVIELOG

_PROGRESS_EVERY = 20_000


@dataclass(slots=True)
class ReplayStats:
    """What a replay did."""

    path: Path
    lines: int = 0
    """Lines produced."""
    bytes: int = 0
    """Bytes of line content produced."""
    blank: int = 0
    """Blank lines skipped."""
    refused: list[tuple[int, int]] = field(default_factory=list)
    """(line number, bytes) of lines longer than the maximum, not produced."""
    failed: int = 0
    """Lines the broker did not acknowledge (delivery errors or still queued at the flush timeout)."""
    seconds: float = 0.0
    last_error: str | None = None

    @property
    def lines_per_s(self) -> float:
        """Lines produced per second of wall-clock time."""
        return self.lines / self.seconds if self.seconds > 0 else 0.0


def _key(line: bytes) -> bytes | None:
    first = line.find(b",")
    if first < 0:
        return None
    second = line.find(b",", first + 1)
    user = line[first + 1 : second] if second >= 0 else b""
    return user if user.isdigit() and len(user) <= 19 else None


def replay_file(
    path: Path,
    topic: str = MOVIELOG,
    settings: KafkaSettings | None = None,
    *,
    producer: Producer | None = None,
    progress: bool = True,
    flush_timeout_s: float = 120.0,
    max_line_bytes: int | None = None,
) -> ReplayStats:
    """Produce every line of `path` (plain, or gzip when it ends in .gz) to `topic`; report lines/s.

    Lines over `max_line_bytes` (default: the Kafka settings' `max_line_bytes`) are refused and listed in `refused`.
    """
    stats = ReplayStats(path)
    limit = (
        max_line_bytes if max_line_bytes is not None else (settings or get_kafka_settings()).max_line_bytes
    )
    prod = producer or make_producer(settings)

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            stats.failed += 1
            stats.last_error = str(err)

    t0 = time.perf_counter()
    bar = Progress(
        TextColumn(path.name), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), disable=not progress,
    )  # fmt: skip
    with path.open("rb") as raw, bar:
        task = bar.add_task("replay", total=path.stat().st_size)
        stream: Iterable[bytes] = gzip.GzipFile(fileobj=raw, mode="rb") if path.suffix == ".gz" else raw
        for n, raw_line in enumerate(stream, 1):
            line = raw_line.rstrip(b"\r\n")
            if not line:
                stats.blank += 1
                continue
            if len(line) > limit:
                stats.refused.append((n, len(line)))
                continue
            while True:
                try:
                    prod.produce(topic, line, _key(line), on_delivery=delivered)
                    break
                except BufferError:  # local queue full: let deliveries drain
                    prod.poll(0.05)
            stats.lines += 1
            stats.bytes += len(line)
            if n % _PROGRESS_EVERY == 0:
                prod.poll(0)
                bar.update(task, completed=raw.tell())  # compressed bytes read: the true share done
        bar.update(task, completed=path.stat().st_size)
    remaining = prod.flush(flush_timeout_s)
    if remaining:
        stats.failed += remaining
        stats.last_error = f"{remaining} lines still queued after {flush_timeout_s} s"
    stats.seconds = time.perf_counter() - t0
    return stats
