"""The experiment benchmark's pure helpers: list ground truth, record grouping, loop stats, the analysis path filter."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from monitoring.experiment_analysis import analyze
from monitoring.layout import MonitorLayout
from monitoring.tables import IMPRESSION_SCHEMA
from recsys.closed_loop import LoopStats, percentile
from recsys.experiment_truth import by_arm, first_take
from simulator.behaviour import ACCEPT_BASE, ACCEPT_MIDPOINT, ACCEPT_SLOPE, POSITION_DECAY


def test_first_take_matches_a_monte_carlo_of_the_users_rule() -> None:
    rng = np.random.default_rng(0)
    aff = rng.normal(ACCEPT_MIDPOINT, 1.0, (1, 6))
    log_m = rng.normal(0.0, 0.3, (1, 6))
    usable = np.array([[True, True, False, True, True, True]])
    p = (
        ACCEPT_BASE
        / (1 + np.exp(-(ACCEPT_SLOPE * (aff - ACCEPT_MIDPOINT) + log_m)))
        * POSITION_DECAY ** np.arange(6)
    )
    draws = (rng.random((200_000, 6)) < p) & usable
    first = np.where(draws.any(axis=1), draws.argmax(axis=1), -1)
    empirical = np.array([(first == j).mean() for j in range(6)])
    exact = first_take(aff, log_m, usable)[0]
    assert exact[2] == 0.0
    assert exact == pytest.approx(empirical, abs=0.004)
    assert exact.sum() == pytest.approx((first >= 0).mean(), abs=0.004)


def test_first_take_of_an_all_unknown_list_is_zero() -> None:
    assert first_take(np.ones((2, 3)), np.zeros((2, 3)), np.zeros((2, 3), dtype=bool)).sum() == 0.0


def test_records_are_grouped_by_arm_and_filtered_by_path() -> None:
    records = [
        {"arm": "a", "cold_start": "popular", "fallback": None},
        {"arm": "a", "cold_start": None, "fallback": None},
        {"arm": "b", "cold_start": None, "fallback": "timeout"},
    ]
    assert {k: len(v) for k, v in by_arm(records).items()} == {"a": 2, "b": 1}
    assert {k: len(v) for k, v in by_arm(records, "cold_start").items()} == {"a": 1}
    assert {k: len(v) for k, v in by_arm(records, "model").items()} == {"a": 1}


def test_loop_stats_describe_and_percentiles() -> None:
    stats = LoopStats(2.0, 0, 1, 100, 5, 60, 3, 12, 4.0, 9.5, 1.0)
    assert stats.answered == 57
    line = stats.describe()
    assert "2 simulated hours: 60 /recommend calls, 3 failed" in line and "12 of 100 sessions (12.0%)" in line
    assert percentile([1.0, 2.0, 3.0], 0.5) == 2.0 and np.isnan(percentile([], 0.5))


def _impressions(var: Path, n: int) -> None:
    """`n` users per arm: cold-path lists where treatment hits more, model-path lists where nobody differs."""
    rng = np.random.default_rng(5)
    arm = np.repeat(["control", "treatment"], n)
    uid = np.arange(2 * n, dtype=np.int64) + 1
    cold = rng.random(2 * n) < 0.5
    hit = rng.random(2 * n) < np.where(cold & (arm == "treatment"), 0.6, 0.2)
    rows = 2 * n
    ts = pa.array(np.full(rows, int(datetime(2026, 11, 1, 1, tzinfo=UTC).timestamp() * 1e6)), pa.int64())
    table = pa.table(
        {"ts": ts.cast(pa.timestamp("us", tz="UTC")), "user_id": uid, "experiment": ["x"] * rows, "arm": arm,
         "model": ["v1"] * rows, "path": np.where(cold, "cold_start", "model"), "status": np.full(rows, 200),
         "latency_ms": np.full(rows, 5), "hit": hit.astype(np.int64), "hit_rank": hit.astype(np.int64),
         "hit_minutes": hit.astype(np.int64) * 30, "hit_completion": np.full(rows, np.nan),
         "list_cost": rng.uniform(8, 12, rows), "hit_cost": hit * rng.uniform(0.5, 2, rows), "watched_listed": hit.astype(np.int64),
         "teams": [""] * rows, "credit_a": np.zeros(rows, np.int64), "credit_b": np.zeros(rows, np.int64)},
        schema=IMPRESSION_SCHEMA,
    )  # fmt: skip
    folder = MonitorLayout(var).impressions
    folder.mkdir(parents=True)
    pq.write_table(table, folder / "part-00000000.parquet")


def test_the_path_filter_reads_only_the_lists_that_path_answered(tmp_path: Path) -> None:
    _impressions(tmp_path, 2000)
    shares = {"control": 0.5, "treatment": 0.5}
    every = analyze(tmp_path, "x", ["control", "treatment"], shares, "control", None, None)
    cold = analyze(tmp_path, "x", ["control", "treatment"], shares, "control", None, None, path="cold_start")
    assert sum(a.users for a in every.arms) == 4000  # without the filter: as before
    assert 1800 < sum(a.users for a in cold.arms) < 2200
    assert cold.comparisons[0].estimates["hit_rate"].effect == pytest.approx(0.4, abs=0.06)
    assert every.comparisons[0].estimates["hit_rate"].effect == pytest.approx(0.2, abs=0.05)
    assert "only lists answered by path 'cold_start'" in cold.notes
