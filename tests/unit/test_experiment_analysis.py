"""The experiment analysis on synthetic impressions, ratings and sessions: planted effects found, A/A quiet, SRM, CUPED, delta method, plot, interleaving."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from monitoring.experiment_analysis import analyze, analyze_interleaving, render_table
from monitoring.experiment_plot import plot_arms
from monitoring.layout import MonitorLayout
from monitoring.tables import IMPRESSION_SCHEMA, RATING_SCHEMA

START = datetime(2026, 11, 1, tzinfo=UTC)
EXP = "cost-aware"
HALF = {"control": 0.5, "treatment": 0.5}


def _ts(rng: np.random.Generator, n: int, start: datetime, hours: float) -> pa.Array:
    us = int(start.timestamp() * 1e6) + rng.integers(0, int(hours * 3600e6), n)
    return pa.array(us, type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))


def _write(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _world(
    var: Path,
    users: Mapping[str, int],
    hit_p: Mapping[str, float],
    seed: int = 1,
    pre_weight: float = 0.6,
    teams: str = "",
) -> None:
    """Two impressions per user; one user-level hit chance per arm; minutes tied to pre-period minutes."""
    rng = np.random.default_rng(seed)
    arm = np.concatenate([[a] * n for a, n in users.items()])
    hit_chance = np.concatenate([[hit_p[a]] * n for a, n in users.items()])
    n = len(arm)
    uid = np.arange(n, dtype=np.int64) + 1000
    pre = rng.gamma(2.0, 60.0, n)  # pre-period minutes: heavy users watch more in both periods
    hit = rng.random(n) < hit_chance
    minutes = np.where(hit, np.maximum(1, np.round(pre_weight * pre + rng.normal(20, 5, n))), 0).astype(
        np.int64
    )
    hit_cost = np.where(hit, rng.uniform(0.5, 2.0, n), 0.0)
    list_cost = rng.uniform(8, 12, n)
    # Row 1 carries the user's outcome; row 2 is a second list without a hit.
    rows = 2 * n
    both = np.concatenate
    zeros = np.zeros(n, dtype=np.int64)
    credit_b = np.where(hit & (rng.random(n) < 0.65), 1, 0)
    credit_a = np.where(hit & (credit_b == 0), 1, 0)
    table = pa.table(
        {"ts": _ts(rng, rows, START, 24), "user_id": both([uid, uid]), "experiment": [EXP] * rows,
         "arm": both([arm, arm]), "model": ["v3"] * rows, "path": ["model"] * rows,
         "status": np.full(rows, 200), "latency_ms": np.full(rows, 40), "hit": both([hit.astype(np.int64), zeros]),
         "hit_rank": both([hit.astype(np.int64) * 2, zeros]), "hit_minutes": both([minutes, zeros]),
         "hit_completion": np.full(rows, np.nan), "list_cost": both([list_cost, list_cost]),
         "hit_cost": both([hit_cost, np.zeros(n)]), "watched_listed": both([hit.astype(np.int64), zeros]),
         "teams": [teams] * rows, "credit_a": both([credit_a, zeros]), "credit_b": both([credit_b, zeros])},
        schema=IMPRESSION_SCHEMA,
    )  # fmt: skip
    # Noise the analysis must leave out: another experiment, and this one's lines before the start.
    other = table.slice(0, 50).set_column(2, "experiment", pa.array(["other"] * 50))
    early = table.slice(0, 50).set_column(0, "ts", _ts(rng, 50, START - timedelta(days=1), 1))
    layout = MonitorLayout(var)
    _write(layout.impressions / "part-00000000.parquet", pa.concat_tables([table, other, early]))
    raters = np.flatnonzero(hit)
    ratings = pa.table(
        {"ts": _ts(rng, len(raters), START, 30), "window_start": _ts(rng, len(raters), START, 24),
         "arm": arm[raters], "model": ["v3"] * len(raters), "path": ["model"] * len(raters),
         "user_id": uid[raters], "movie_id": ["a+2001"] * len(raters),
         "rating": np.clip(np.round(rng.normal(3.5, 1.0, len(raters))), 1, 5).astype(np.int64)},
        schema=RATING_SCHEMA,
    )  # fmt: skip
    _write(layout.ratings / "part-00000000.parquet", ratings)
    sessions = pa.table(
        {"user_id": uid, "movie_id": ["x+1999"] * n, "minutes_watched": pre.round().astype(np.int32),
         "start_ts": _ts(rng, n, START - timedelta(days=7), 20), "end_ts": _ts(rng, n, START - timedelta(days=6), 1)}
    )  # fmt: skip
    _write(var / "offline" / "sessions" / "date=2026-10-25" / "sessions.parquet", sessions)


def test_a_planted_hit_rate_effect_is_found_with_a_ci_above_zero(tmp_path: Path) -> None:
    _world(tmp_path, {"control": 1500, "treatment": 1500}, {"control": 0.30, "treatment": 0.40})
    result = analyze(tmp_path, EXP, ["control", "treatment"], HALF, "control", START, None)
    assert result.decision == "treatment wins" and result.winner == "treatment" and result.srm.ok
    (comp,) = result.comparisons
    hit = comp.estimates["hit_rate"]
    assert hit.ci_low > 0 and comp.always_valid_p < 0.05 and 0 < comp.mde < 0.1
    assert (hit.n_control, hit.n_treatment) == (
        1500,
        1500,
    )  # per user; the other experiment and early rows left out
    assert {a.arm: a.requests for a in result.arms} == {"control": 3000, "treatment": 3000}
    assert set(comp.estimates) >= {"watch_minutes", "watch_minutes_cuped", "rating", "cost_per_watch"}
    record = json.loads(json.dumps(result.to_dict()))
    assert record["decision"] == "treatment wins" and record["srm"]["ok"] is True
    assert render_table(result).row_count == len(comp.estimates)


def test_an_a_a_run_finds_no_significant_difference(tmp_path: Path) -> None:
    _world(tmp_path, {"control": 1500, "treatment": 1500}, {"control": 0.35, "treatment": 0.35}, seed=2)
    result = analyze(tmp_path, EXP, ["control", "treatment"], HALF, "control", START, None)
    assert result.decision == "no significant difference" and result.winner is None
    assert result.comparisons[0].always_valid_p > 0.05


def test_a_skewed_assignment_invalidates_the_run_even_with_a_planted_effect(tmp_path: Path) -> None:
    _world(tmp_path, {"control": 5000, "treatment": 5400}, {"control": 0.30, "treatment": 0.40}, seed=3)
    result = analyze(tmp_path, EXP, ["control", "treatment"], HALF, "control", START, None)
    assert not result.srm.ok and result.srm.p_value < 0.001
    assert result.decision == "invalid (SRM)" and result.winner is None


def test_too_few_users_gives_no_decision(tmp_path: Path) -> None:
    _world(tmp_path, {"control": 40, "treatment": 40}, {"control": 0.1, "treatment": 0.9}, seed=4)
    result = analyze(tmp_path, EXP, ["control", "treatment"], HALF, "control", START, None)
    assert result.decision == "too few users" and result.comparisons == ()


def test_cuped_narrows_the_watch_minutes_interval_when_pre_period_minutes_correlate(tmp_path: Path) -> None:
    _world(
        tmp_path,
        {"control": 1500, "treatment": 1500},
        {"control": 0.95, "treatment": 0.95},
        seed=5,
        pre_weight=1.0,
    )
    est = (
        analyze(tmp_path, EXP, ["control", "treatment"], HALF, "control", START, None)
        .comparisons[0]
        .estimates
    )
    raw, adjusted = est["watch_minutes"], est["watch_minutes_cuped"]
    assert adjusted.ci_high - adjusted.ci_low < 0.75 * (raw.ci_high - raw.ci_low)
    # Without the pre-period (sessions of another month), the analysis says so and skips CUPED.
    later = analyze(
        tmp_path, EXP, ["control", "treatment"], HALF, "control", START + timedelta(days=40), None
    )
    assert later.notes and later.decision == "too few users"


def test_cost_per_watch_by_the_delta_method_matches_a_direct_computation(tmp_path: Path) -> None:
    _world(tmp_path, {"control": 800, "treatment": 800}, {"control": 0.3, "treatment": 0.5}, seed=6)
    est = (
        analyze(tmp_path, EXP, ["control", "treatment"], HALF, "control", START, None)
        .comparisons[0]
        .estimates
    )
    table = pq.read_table(MonitorLayout(tmp_path).impressions / "part-00000000.parquet").to_pandas()
    table = table[(table["experiment"] == EXP) & (table["ts"] >= START)]
    per_user = table.groupby(["arm", "user_id"])[["hit_cost", "hit"]].sum()
    ratios, variances = {}, {}
    for arm in ("control", "treatment"):
        num, den = per_user.loc[arm, "hit_cost"].to_numpy(), per_user.loc[arm, "hit"].to_numpy()
        ratios[arm] = num.sum() / den.sum()
        linear = (num - ratios[arm] * den) / den.mean()  # the ratio's influence function per user
        variances[arm] = linear.var(ddof=1) / len(num)
    cpw = est["cost_per_watch"]
    assert cpw.control == pytest.approx(ratios["control"]) and cpw.treatment == pytest.approx(
        ratios["treatment"]
    )
    half = 1.959963984540054 * math.sqrt(variances["control"] + variances["treatment"])
    assert cpw.ci_high - cpw.ci_low == pytest.approx(2 * half, rel=1e-9)


def test_the_forest_plot_png_is_written(tmp_path: Path) -> None:
    _world(tmp_path, {"control": 300, "treatment": 300}, {"control": 0.3, "treatment": 0.4}, seed=7)
    result = analyze(tmp_path, EXP, ["control", "treatment"], HALF, "control", START, None)
    png = plot_arms(result, tmp_path / "plots" / "arms.png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000


def test_interleaving_analysis_finds_a_planted_preference_for_b(tmp_path: Path) -> None:
    _world(tmp_path, {"interleave": 1200}, {"interleave": 0.5}, seed=8, teams="AB")
    result = analyze_interleaving(tmp_path, EXP, START, None)
    pref = result.preference
    assert result.decision == "B wins" and pref.winner == "B" and pref.delta > 0 and pref.ci_low > 0
    assert result.users == 1200 and pref.ties == 0 and 0 < pref.n < 1200
    assert result.users_needed is not None and result.users_needed < 1200
    assert json.loads(json.dumps(result.to_dict()))["decision"] == "B wins"
