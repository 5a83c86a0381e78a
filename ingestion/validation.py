"""Checks a parsed batch needs beyond the line format: event times from the future.

A line dated far ahead of when it was written (a broken clock, a hostile line) would stamp the
user's feature row in the future: windows anchored at the user's latest event collapse, and
later real events no longer move the online features. Such lines go to the DLQ with reason
`future_timestamp`.

The reference is the Kafka message's own timestamp (when the producer wrote the line, or
when the broker appended it), not the worker's clock: a redone batch after a crash, or a
backlog consumed hours later, gets the same verdict as the first run. Only a message without
a timestamp is compared with the wall clock. Late lines are never refused: a replayed
history is all late, and every late line lands and counts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import fields

from events.batch import ParsedBatch, RateColumns, WatchColumns
from events.types import ParseError, ParseReason

NS_PER_MS = 1_000_000


def _reference_ns(kafka_ts_ms: Sequence[int], now_ms: int) -> list[int]:
    return [(ms if ms > 0 else now_ms) * NS_PER_MS for ms in kafka_ts_ms]


def _error(ts_ns: int, ref_ns: int) -> ParseError:
    ahead_s = (ts_ns - ref_ns) / 1e9
    return ParseError(
        ParseReason.FUTURE_TIMESTAMP, f"event time {ahead_s:,.0f} s ahead of its Kafka message time"
    )


def _without(cols: WatchColumns | RateColumns, drop: set[int]) -> WatchColumns | RateColumns:
    """The same columns without the rows at positions `drop`."""
    keep = [k for k in range(len(cols.index)) if k not in drop]
    return type(cols)(*([getattr(cols, f.name)[k] for k in keep] for f in fields(cols)))


def quarantine_future(
    parsed: ParsedBatch, kafka_ts_ms: Sequence[int], max_skew_s: float, now_ms: int | None = None
) -> int:
    """Move every row dated more than `max_skew_s` after its message's time into `parsed.errors`; returns how many."""
    ref = _reference_ns(kafka_ts_ms, now_ms if now_ms is not None else int(time.time() * 1000))
    skew = int(max_skew_s * 1e9)
    moved: list[tuple[int, ParseError]] = []

    def ahead(i: int, ts: int) -> bool:
        return ts - ref[i] > skew

    for name in ("watch", "rate"):
        cols = getattr(parsed, name)
        bad = [k for k, (i, ts) in enumerate(zip(cols.index, cols.ts_ns, strict=True)) if ahead(i, ts)]
        if bad:
            moved += [(cols.index[k], _error(cols.ts_ns[k], ref[cols.index[k]])) for k in bad]
            setattr(parsed, name, _without(cols, set(bad)))
    for name in ("accounts", "recommendations"):
        rows = getattr(parsed, name)
        if any(ahead(i, e.ts_ns) for i, e in rows):
            moved += [(i, _error(e.ts_ns, ref[i])) for i, e in rows if ahead(i, e.ts_ns)]
            setattr(parsed, name, [(i, e) for i, e in rows if not ahead(i, e.ts_ns)])
    if moved:
        parsed.errors = sorted(parsed.errors + moved, key=lambda x: x[0])
    return len(moved)
