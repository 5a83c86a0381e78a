"""Stream damage is always rejected by the codec; the simulated clock paces and does not pace."""

from __future__ import annotations

import random
import time

import numpy as np

from events import (
    AccountEvent,
    ParseError,
    RateEvent,
    RecommendationEvent,
    WatchEvent,
    format_line,
    parse_line,
)
from simulator.clock import SimClock
from simulator.faults import StreamFaults, corrupt

TS = 1_767_225_600 * 10**9
SAMPLES = [
    WatchEvent(TS, 1, "monsters_+inc.+2001", 0),
    WatchEvent(TS, 123456, "the+hunger+games+mockingjay+-+part+1+2014", 117),
    RateEvent(TS, 7, "spider-man+3+2007", 5),
    AccountEvent(TS, 99),
    RecommendationEvent(TS, 5, "h:8082", 200, ("a+1999", "b+2000"), 45, None, 6),
    RecommendationEvent(
        TS, 5, "h:8082", 0, (), 615, "java.util.concurrent.TimeoutException: x after 600 ms", 3
    ),
]


def test_every_damaged_line_is_rejected_by_the_codec() -> None:
    rnd = random.Random(0)
    reasons = set()
    for _ in range(400):
        for event in SAMPLES:
            bad = corrupt(rnd, format_line(event))
            result = parse_line(bad)
            assert isinstance(result, ParseError), bad
            assert "\n" not in bad and "\r" not in bad
            reasons.add(result.reason)
    assert len(reasons) >= 8


def test_apply_marks_damaged_lines_through_duplication() -> None:
    lines = [format_line(WatchEvent(TS + i * 10**9, i, "a+1999", i)) for i in range(5_000)]
    faults = StreamFaults(malformed_rate=0.05, duplicate_rate=0.05)
    out, users, emit, bad = faults.apply(
        np.random.default_rng(1), list(lines), list(range(5_000)), list(range(5_000))
    )
    assert len(out) == len(users) == len(emit) > len(lines)
    assert bad == [i for i, line in enumerate(out) if isinstance(parse_line(line), ParseError)]


def test_unpaced_clock_never_sleeps_and_paced_clock_waits() -> None:
    unpaced = SimClock(TS, 0)
    t0 = time.perf_counter()
    unpaced.wait_until(TS + 3600 * 10**9)
    assert time.perf_counter() - t0 < 0.05 and unpaced.now_ns() == TS
    paced = SimClock(TS, 100.0)  # 100 simulated seconds per second
    t0 = time.perf_counter()
    paced.wait_until(TS + 10 * 10**9)
    assert 0.09 <= time.perf_counter() - t0 < 0.5
    assert paced.now_ns() >= TS + 10 * 10**9
