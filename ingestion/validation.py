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


def quarantine_future(
    parsed: ParsedBatch, kafka_ts_ms: Sequence[int], max_skew_s: float, now_ms: int | None = None
) -> int:
    """Move every row dated more than `max_skew_s` after its message's time into `parsed.errors`; returns how many."""
    ref = _reference_ns(kafka_ts_ms, now_ms if now_ms is not None else int(time.time() * 1000))
    skew = int(max_skew_s * 1e9)
    moved: list[tuple[int, ParseError]] = []

    def late(i: int, ts: int) -> bool:
        return ts - ref[i] > skew

    w = parsed.watch
    bad_w = [k for k, (i, ts) in enumerate(zip(w.index, w.ts_ns, strict=True)) if late(i, ts)]
    if bad_w:
        moved += [(w.index[k], _error(w.ts_ns[k], ref[w.index[k]])) for k in bad_w]
        drop = set(bad_w)
        keep = [k for k in range(len(w.index)) if k not in drop]
        parsed.watch = WatchColumns(
            [w.index[k] for k in keep], [w.ts_ns[k] for k in keep], [w.user_id[k] for k in keep],
            [w.movie_id[k] for k in keep], [w.minute[k] for k in keep],
        )  # fmt: skip
    r = parsed.rate
    bad_r = [k for k, (i, ts) in enumerate(zip(r.index, r.ts_ns, strict=True)) if late(i, ts)]
    if bad_r:
        moved += [(r.index[k], _error(r.ts_ns[k], ref[r.index[k]])) for k in bad_r]
        drop = set(bad_r)
        keep = [k for k in range(len(r.index)) if k not in drop]
        parsed.rate = RateColumns(
            [r.index[k] for k in keep], [r.ts_ns[k] for k in keep], [r.user_id[k] for k in keep],
            [r.movie_id[k] for k in keep], [r.rating[k] for k in keep],
        )  # fmt: skip
    for name in ("accounts", "recommendations"):
        rows = getattr(parsed, name)
        if any(late(i, e.ts_ns) for i, e in rows):
            moved += [(i, _error(e.ts_ns, ref[i])) for i, e in rows if late(i, e.ts_ns)]
            setattr(parsed, name, [(i, e) for i, e in rows if not late(i, e.ts_ns)])
    if moved:
        parsed.errors = sorted(parsed.errors + moved, key=lambda x: x[0])
    return len(moved)
