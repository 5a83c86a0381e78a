"""`ingestion.validation.quarantine_future`: lines dated ahead of their Kafka message time go to the DLQ."""

from __future__ import annotations

from events import format_line
from events.batch import parse_batch
from events.types import AccountEvent, ParseReason, RateEvent, RecommendationEvent, WatchEvent
from ingestion.validation import quarantine_future

S = 10**9
NOW_MS = 1_795_600_000_000
T = NOW_MS * 1_000_000


def test_only_lines_beyond_the_skew_are_moved_and_late_lines_stay() -> None:
    lines = [
        format_line(WatchEvent(T, 1, "a+2000", 0)),
        format_line(WatchEvent(T + 299 * S, 1, "a+2000", 1)),  # inside the 300 s skew
        format_line(WatchEvent(T + 301 * S, 1, "a+2000", 2)),  # beyond it
        format_line(RateEvent(4_102_444_800 * S, 1, "a+2000", 5)),  # 2100-01-01
        format_line(AccountEvent(T + 3600 * S, 2)),
        format_line(RecommendationEvent(T + 3600 * S, 3, "x:8082", 200, ("a+2000",), 5)),
        format_line(WatchEvent(T - 30 * 24 * 3600 * S, 4, "b+1999", 0)),  # a month late: lands
        "garbage",
    ]
    parsed = parse_batch(lines)
    moved = quarantine_future(parsed, [NOW_MS] * len(lines), max_skew_s=300)
    assert moved == 4
    assert parsed.watch.index == [0, 1, 6] and parsed.watch.minute == [0, 1, 0]
    assert not parsed.rate.index and not parsed.accounts and not parsed.recommendations
    reasons = {i: e.reason for i, e in parsed.errors}
    assert reasons == {2: ParseReason.FUTURE_TIMESTAMP, 3: ParseReason.FUTURE_TIMESTAMP,
                       4: ParseReason.FUTURE_TIMESTAMP, 5: ParseReason.FUTURE_TIMESTAMP,
                       7: ParseReason.MISSING_FIELDS}  # fmt: skip
    assert [i for i, _ in parsed.errors] == sorted(i for i, _ in parsed.errors)


def test_the_reference_is_the_message_time_and_the_wall_clock_only_without_one() -> None:
    lines = [format_line(WatchEvent(T + 3600 * S, 1, "a+2000", 0))] * 2
    parsed = parse_batch(lines)
    # The first message was written an hour later than NOW (its time is the reference); the second has none.
    assert quarantine_future(parsed, [NOW_MS + 3_600_000, -1], max_skew_s=300, now_ms=NOW_MS) == 1
    assert parsed.watch.index == [0] and [i for i, _ in parsed.errors] == [1]
