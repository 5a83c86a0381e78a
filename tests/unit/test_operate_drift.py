"""The operate drift demonstration's pure parts: the user split, daily hit rates, the day loop and the verdict."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from scipy import stats

from recsys.operate_drift import (
    FROZEN_EXPERIMENT,
    DayRecord,
    DriftHooks,
    DriftPlan,
    SplitClient,
    after_drift,
    daily_hits,
    drift_schedule,
    run_days,
)
from simulator.drift import GenreSurge, TasteShift

T0 = datetime(2026, 11, 20, tzinfo=UTC)
DAY_NS = 86_400 * 10**9


def test_the_split_is_stable_balanced_and_routes_to_the_right_service() -> None:
    client = SplitClient("http://127.0.0.1:1", "http://127.0.0.1:2/", 0.5, "salt", 600, 1)
    try:
        other = [client.to_other(u) for u in range(1, 20_001)]
        assert other == [client.to_other(u) for u in range(1, 20_001)]
        assert stats.binomtest(sum(other), len(other), 0.5).pvalue > 0.001
        u = other.index(True) + 1
        assert client.url_for(u) == f"http://127.0.0.1:2/recommend/{u}"
        assert client.url_for(other.index(False) + 1).startswith("http://127.0.0.1:1/recommend/")
    finally:
        client.close()


def test_daily_hits_split_the_platforms_and_keep_answered_lists_of_the_day() -> None:
    ts = pd.to_datetime([T0 + timedelta(hours=h) for h in (1, 2, 3, 4, 30)], utc=True)
    frame = pd.DataFrame({
        "ts": ts, "experiment": [FROZEN_EXPERIMENT, "", "operate-x", FROZEN_EXPERIMENT, ""],
        "status": [200, 200, 200, 0, 200], "hit": [1, 0, 1, 1, 1],
    })  # fmt: skip
    assert daily_hits(frame, T0, T0 + timedelta(days=1)) == (2, 1, 1, 1)


def test_the_drifts_start_on_the_drift_day() -> None:
    surge, shift = drift_schedule(T0, DriftPlan(drift_day=3))
    assert isinstance(surge, GenreSurge) and isinstance(shift, TasteShift)
    at = T0 + timedelta(days=3)
    assert surge.start == at and shift.start == at and surge.end is None
    assert not surge.active(int(at.timestamp() * 1e9) - 1) and surge.active(int(at.timestamp() * 1e9))


@dataclass
class _Decision:
    action: str
    reason: str = "because"

    def summary(self) -> str:
        return self.action


@dataclass
class _Loop:
    sim_start_ns: int
    sim_end_ns: int

    def describe(self) -> str:
        return "loop"


def test_a_judged_experiment_is_followed_by_the_next_challenge_the_same_day() -> None:
    plan = DriftPlan(days=3, drift_day=1)
    script = iter([[_Decision("started")], [_Decision("promoted"), _Decision("started")],
                   [_Decision("waiting")]])  # fmt: skip
    today: list[_Decision] = []
    calls: list[int] = []

    def operate() -> _Decision:
        nonlocal today
        if not today:
            today = list(next(script))
        return today.pop(0)

    start_ns = int(T0.timestamp() * 1e9)

    def loop(hours: float, drifts: list[Any], seed: int) -> _Loop:
        calls.append(seed)
        assert hours == 24.0 and len(drifts) == 2
        k = len(calls) - 1
        return _Loop(start_ns + k * DAY_NS, start_ns + (k + 1) * DAY_NS)

    ts = pd.to_datetime([T0 + timedelta(days=d, hours=1) for d in (0, 1, 2)], utc=True)
    frame = pd.DataFrame({"ts": ts.repeat(2), "experiment": ["", FROZEN_EXPERIMENT] * 3,
                          "status": [200] * 6, "hit": [1, 1, 1, 0, 1, 0]})  # fmt: skip
    events: list[str] = []

    def settle(decision: _Decision) -> str | None:
        events.append(f"settle {decision.action} after day {len(calls) - 1}")
        return None

    hooks = DriftHooks(loop=loop, ingest=lambda: "", monitor=lambda: "", operate=operate,
                       impressions=lambda: frame, champion=lambda: 2, log=lambda line: None,
                       settle=settle)  # fmt: skip
    days = run_days(hooks, plan, T0)
    assert calls == [plan.seed, plan.seed + 1, plan.seed + 2]
    # Once a day, after the day's last operate step and before the next day's traffic.
    assert events == [
        "settle started after day 0",
        "settle started after day 1",
        "settle waiting after day 2",
    ]
    assert [len(d.actions) for d in days] == [1, 2, 1]
    assert [d.drift for d in days] == [False, True, True]
    assert [(d.hit_rate_operated, d.hit_rate_frozen) for d in days] == [(1.0, 1.0), (1.0, 0.0), (1.0, 0.0)]


def _day(day: int, lists: tuple[int, int], hits: tuple[int, int]) -> DayRecord:
    return DayRecord(day, "", True, lists[0], hits[0], lists[1], hits[1], 1)


def test_after_drift_pools_the_days_after_the_drift_day_and_tests_the_difference() -> None:
    plan = DriftPlan(days=4, drift_day=1)
    days = [_day(0, (100, 100), (90, 90)), _day(1, (100, 100), (10, 10)),
            _day(2, (1000, 1000), (400, 300)), _day(3, (1000, 1000), (400, 300))]  # fmt: skip
    out = after_drift(days, plan)
    assert out["hit_rate_after_drift_operated"] == pytest.approx(0.4)
    assert out["hit_rate_after_drift_frozen"] == pytest.approx(0.3)
    assert out["lists_after_drift_operated"] == 2000
    assert out["difference"] == pytest.approx(0.1) and float(out["p_value"]) < 1e-6
    assert float(out["ci_low"]) > 0
