"""Log and recompute: the value-by-value comparison (NaN, float32 tolerance), the sample, the decision it drives."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from core.layout import FEATURE_LOG_DIR
from monitoring.skew import SCORE, compare
from monitoring.skew_replay import (
    AS_OF,
    RECOMPUTED,
    ReplayUnavailableError,
    ValueMatch,
    compare_values,
    differ,
    replay_served,
    sample_rows,
)
from ranking.transforms import CANDIDATE_COLUMNS, FEATURE_COLUMNS
from serving.feature_log import FeatureLog, LoggedAnswer
from serving.recommender import ScoredRows


def _frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    data = {name: rng.normal(size=n) for name in FEATURE_COLUMNS}
    data[SCORE] = rng.normal(size=n)
    return pd.DataFrame(data)


def test_identical_computations_never_differ() -> None:
    rng = np.random.default_rng(1)
    logged = _frame(rng, 500)
    out = compare_values(logged, logged.copy())
    assert set(out) == set(RECOMPUTED)
    assert all(m.mismatch_share == 0.0 and m.missing_offline == 0.0 for m in out.values())
    assert out[RECOMPUTED[0]].mean_logged == pytest.approx(out[RECOMPUTED[0]].mean_replayed)


def test_nan_on_both_sides_is_equal_and_nan_against_a_value_differs() -> None:
    logged = np.array([np.nan, np.nan, 1.0, 2.0])
    replayed = np.array([np.nan, 3.0, np.nan, 2.0])
    assert differ(logged, replayed).tolist() == [False, True, True, False]
    m = compare_values(pd.DataFrame({"f": logged}), pd.DataFrame({"f": replayed}), ("f",))["f"]
    assert m.mismatch_share == pytest.approx(0.5)
    assert m.missing_offline == pytest.approx(0.25)  # a value online, NaN offline (a TTL, a lost row)


def test_tolerance_absorbs_float32_rounding_and_nothing_larger() -> None:
    rng = np.random.default_rng(2)
    exact = rng.exponential(30.0, 10_000)
    as_logged = exact.astype(np.float32).astype(np.float64)  # the matrix is float32
    assert not differ(as_logged, exact).any()
    one_ulp = np.nextafter(exact.astype(np.float32), np.float32(np.inf)).astype(np.float64)
    assert not differ(as_logged, one_ulp).any()
    assert differ(exact, exact * (1 + 1e-4)).all()  # a real difference, however small it looks
    assert not differ(np.array([0.0]), np.array([1e-11])).any()  # a microsecond in days, near zero
    assert differ(np.array([0.0]), np.array([1e-6])).all()


def test_written_after_is_the_share_of_differing_rows_that_read_late_data() -> None:
    logged = pd.DataFrame({"f": [1.0, 2.0, 3.0, 4.0]})
    replayed = pd.DataFrame({"f": [1.0, 9.0, 9.0, 4.0]})
    late = np.array([True, True, False, False])
    m = compare_values(logged, replayed, ("f",), late)["f"]
    assert m.mismatch_share == pytest.approx(0.5) and m.written_after == pytest.approx(0.5)


def test_sample_is_seeded_bounded_and_fills_as_of_from_ts() -> None:
    ts = pd.Timestamp("2026-12-06 01:00", tz="UTC")
    served = pd.DataFrame(
        {"ts": [ts] * 50, AS_OF: [ts - pd.Timedelta(hours=1)] * 25 + [pd.NaT] * 25, "v": range(50)}
    )
    a, b = sample_rows(served, 20), sample_rows(served, 20)
    assert len(a) == 20 and a["v"].tolist() == b["v"].tolist()
    assert a[AS_OF].notna().all()
    assert (a[AS_OF] == np.where(a["v"] < 25, ts - pd.Timedelta(hours=1), ts)).all()
    old = sample_rows(served.drop(columns=[AS_OF]), 100)  # a file from before `as_of` existed
    assert len(old) == 50 and (old[AS_OF] == ts).all()


def test_recomputed_features_are_decided_by_mismatch_the_rest_by_psi() -> None:
    rng = np.random.default_rng(3)
    train, served = _frame(rng, 5_000), _frame(rng, 2_000)
    clock = RECOMPUTED[0]
    served[clock] += 3.0  # a distribution far from training's (time), recomputed identically
    served[CANDIDATE_COLUMNS[0]] += 3.0  # a candidate column: only PSI can judge it
    matches = {name: ValueMatch(0.0, 0.0, 0.0, 0.0) for name in RECOMPUTED}
    matches[RECOMPUTED[1]] = ValueMatch(0.5, 0.0, 0.0, 0.4)  # half the rows differ, mostly NaN offline
    rows = {r.feature: r for r in compare(train, served, 0.2, {}, matches, 0.05)}
    assert rows[clock].psi > 0.2 and not rows[clock].skewed and rows[clock].mismatch_share == 0.0
    assert rows[RECOMPUTED[1]].skewed and "ttl" in rows[RECOMPUTED[1]].note
    assert rows[CANDIDATE_COLUMNS[0]].skewed and rows[CANDIDATE_COLUMNS[0]].mismatch_share is None
    assert rows[SCORE].mismatch_share is None
    # Without a replay every row falls back to PSI.
    fallback = {r.feature: r for r in compare(train, served, 0.2, {})}
    assert fallback[clock].skewed and fallback[clock].mismatch_share is None


def test_replay_says_why_it_cannot_run(tmp_path: Path) -> None:
    served = pd.DataFrame({"ts": [pd.Timestamp.now(tz="UTC")]})
    with pytest.raises(ReplayUnavailableError, match="off"):
        replay_served(tmp_path, "redis://127.0.0.1:1/0", tmp_path, served, 0)
    with pytest.raises(ReplayUnavailableError, match="no Feast registry"):
        replay_served(tmp_path, "redis://127.0.0.1:1/0", tmp_path, served, 100)


def test_feature_log_rows_carry_the_feature_time_rank_used(tmp_path: Path) -> None:
    folder = tmp_path / FEATURE_LOG_DIR
    log = FeatureLog(folder, 1.0, rows_per_request=5, queue_size=10, seed=1)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(5, len(FEATURE_COLUMNS))).astype(np.float32)
    vocab = np.asarray([f"movie+{i}+2000" for i in range(5)], dtype=object)
    feature_time = 1_765_000_000.25  # the stream clock, hours behind the wall clock
    log.offer(
        LoggedAnswer(
            time.time(),
            "r1",
            1,
            7,
            "control",
            ScoredRows(x, rng.normal(size=5), np.arange(5), vocab, feature_time),
        )
    )
    log.offer(
        LoggedAnswer(
            time.time(), "r2", 2, 7, "control", ScoredRows(x, rng.normal(size=5), np.arange(5), vocab)
        )
    )
    log.close()
    table = pq.read_table(next(folder.rglob("*.parquet"))).to_pandas()
    first, second = table[table.request_id == "r1"], table[table.request_id == "r2"]
    assert (first[AS_OF] == pd.Timestamp(feature_time, unit="s", tz="UTC")).all()
    assert (second[AS_OF] == second["ts"]).all()  # no feature time known: the log time
