"""Skew arithmetic (PSI, missing values, constants, mean shift) and the result's JSON format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring.psi import bin_shares, compare_column, psi
from monitoring.skew import (
    SCORE,
    SkewInputError,
    SkewResult,
    compare,
    read_reference,
    read_served,
    write_result,
)
from ranking.transforms import FEATURE_COLUMNS

THRESHOLD = 0.2


def test_identical_distributions_have_psi_near_zero() -> None:
    rng = np.random.default_rng(1)
    assert psi(rng.normal(size=20_000), rng.normal(size=5_000)) < 0.02
    assert psi(rng.exponential(size=20_000), rng.exponential(size=5_000)) < 0.02
    same = rng.normal(size=1_000)
    assert psi(same, same) == pytest.approx(0.0, abs=1e-12)


def test_shifted_or_rescaled_distributions_exceed_the_threshold() -> None:
    rng = np.random.default_rng(2)
    train = rng.normal(size=20_000)
    assert psi(train, rng.normal(0.5, 1.0, 5_000)) > THRESHOLD
    assert psi(train, rng.normal(0.0, 3.0, 5_000)) > THRESHOLD  # same mean, other spread
    assert psi(train, rng.normal(0.1, 1.0, 5_000)) < THRESHOLD  # a small shift stays under


def test_missing_values_are_a_bin_of_their_own() -> None:
    rng = np.random.default_rng(3)
    train = rng.normal(size=10_000)
    served = rng.normal(size=5_000)
    served[: len(served) // 2] = np.nan  # half the served rows lack the feature
    t, s = bin_shares(train, served)
    assert t[-1] == 0.0 and s[-1] == pytest.approx(0.5)
    assert psi(train, served) > THRESHOLD
    both = np.where(rng.random(10_000) < 0.3, np.nan, train)
    assert psi(both, np.where(rng.random(5_000) < 0.3, np.nan, rng.normal(size=5_000))) < 0.02
    assert psi(np.full(100, np.nan), np.full(50, np.nan)) == pytest.approx(0.0)


def test_constants_and_few_valued_columns_are_binned_by_value() -> None:
    assert psi(np.full(1_000, 5.0), np.full(500, 5.0)) == pytest.approx(0.0)
    assert psi(np.full(1_000, 5.0), np.full(500, 7.0)) > THRESHOLD  # a moved constant is caught
    rng = np.random.default_rng(4)
    flags = (rng.random(10_000) < 0.3).astype(float)
    assert psi(flags, (rng.random(5_000) < 0.3).astype(float)) < 0.02
    assert psi(flags, (rng.random(5_000) < 0.6).astype(float)) > THRESHOLD


def test_mean_shift_is_in_training_standard_deviations() -> None:
    rng = np.random.default_rng(5)
    c = compare_column(rng.normal(10, 2, 20_000), rng.normal(11, 2, 5_000))
    assert c.mean_shift == pytest.approx(0.5, abs=0.05)
    assert c.mean_train == pytest.approx(10, abs=0.05)
    empty = compare_column(np.full(10, np.nan), rng.normal(size=10))
    assert empty.mean_train is None and empty.mean_shift == 0.0
    constant = compare_column(np.ones(10), np.full(10, 2.0))
    assert constant.mean_shift > 1e3 and np.isfinite(constant.mean_shift)


def _frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    data = {name: rng.normal(size=n) for name in FEATURE_COLUMNS}
    data[SCORE] = rng.normal(size=n)
    return pd.DataFrame(data)


def test_one_planted_feature_is_the_only_skewed_row_and_the_json_keeps_the_contract(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    train, served = _frame(rng, 20_000), _frame(rng, 3_000)
    planted = FEATURE_COLUMNS[6]
    served[planted] = served[planted] * 12.0
    served[FEATURE_COLUMNS[0]] = np.nan  # also a feature serving cannot read: skewed, with a note why
    rows = compare(train, served, THRESHOLD, notes={"score_als": "explained"})
    assert [r.feature for r in rows] == [*FEATURE_COLUMNS, SCORE]
    assert {r.feature for r in rows if r.skewed} == {planted, FEATURE_COLUMNS[0]}
    by = {r.feature: r for r in rows}
    assert "missing in 100% of served rows" in by[FEATURE_COLUMNS[0]].note
    assert by[FEATURE_COLUMNS[0]].mean_served is None
    assert by["score_als"].note == "explained"
    result = SkewResult("2026-12-06T01:00:00+00:00", 3, len(served), len(train), THRESHOLD, rows)
    stamped = write_result(result, tmp_path)
    latest = json.loads((tmp_path / "latest.json").read_text())
    assert stamped.name == "20261206T010000Z.json" and json.loads(stamped.read_text()) == latest
    assert set(latest) == {"computed_at", "model_version", "served_rows", "train_rows", "threshold", "rows",
                           "mismatch_threshold", "replayed_rows", "replay"}  # fmt: skip
    assert (
        latest["model_version"] == 3 and latest["served_rows"] == 3_000 and latest["threshold"] == THRESHOLD
    )
    row = latest["rows"][0]
    assert set(row) == {"feature", "psi", "mean_train", "mean_served", "mean_shift", "skewed", "note",
                        "mismatch_share", "mean_replayed", "written_after"}  # fmt: skip
    assert row["mean_served"] is None and isinstance(row["psi"], float) and row["skewed"] is True


def test_missing_inputs_raise_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SkewInputError, match="no training reference sample"):
        read_reference(tmp_path, 4)
    with pytest.raises(SkewInputError, match="no served feature log"):
        read_served(tmp_path, pd.Timestamp.now(tz="UTC").to_pydatetime(), 4)
