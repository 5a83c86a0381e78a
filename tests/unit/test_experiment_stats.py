"""Experiment statistics against references computed apart: statsmodels, scipy, textbook numbers, brute force."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW, ttest_ind

from monitoring.experiment_stats import (
    Estimate,
    bootstrap_diff,
    cuped,
    cuped_theta,
    cuped_variance_reduction,
    ratio_delta,
    srm_check,
    two_proportions,
    welch,
)
from monitoring.power import mde, users_needed


def _normal_arms(seed: int, n: int = 2000, effect: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(1.0, 1.0, n), rng.normal(1.0 + effect, 1.5, n + 300)


def test_to_dict_is_json_with_nan_as_none() -> None:
    est = Estimate("hit_rate", 0.0, 0.1, 0.1, math.nan, 0.05, 0.15, 0.01, 10, 10, "m")
    d = est.to_dict()
    assert d["relative"] is None and d["effect"] == 0.1 and d["n_control"] == 10
    assert json.loads(json.dumps(d)) == d


def test_two_proportions_match_newcombes_textbook_example_and_the_pooled_z_test() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 vs 48/80, difference 0.2,
    # hybrid score interval (method 10) 0.0524 to 0.3339.
    est = two_proportions(48, 80, 56, 70, metric="hit_rate")
    assert (est.control, est.treatment, est.effect) == pytest.approx((0.6, 0.8, 0.2))
    assert est.relative == pytest.approx(0.2 / 0.6)
    assert (est.ci_low, est.ci_high) == pytest.approx((0.0524, 0.3339), abs=5e-5)
    pooled = 104 / 150
    z = 0.2 / math.sqrt(pooled * (1 - pooled) * (1 / 70 + 1 / 80))
    assert est.p_value == pytest.approx(2 * stats.norm.sf(z), rel=1e-9)
    assert (est.n_control, est.n_treatment) == (80, 70)


def test_two_proportions_with_no_hits_anywhere_is_p_one_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = two_proportions(0, 500, 0, 400)
    assert est.p_value == 1.0 and est.effect == 0.0 and math.isnan(est.relative)
    assert est.ci_low < 0 < est.ci_high
    with pytest.raises(ValueError):
        two_proportions(5, 0, 1, 10)


def test_welch_matches_statsmodels_unequal_variance_t_test() -> None:
    c, t = _normal_arms(1)
    est = welch(c, t, "watch_minutes")
    _, p, _ = ttest_ind(t, c, usevar="unequal")
    low, high = CompareMeans(DescrStatsW(t), DescrStatsW(c)).tconfint_diff(usevar="unequal")
    assert est.effect == pytest.approx(t.mean() - c.mean())
    assert est.p_value == pytest.approx(p, rel=1e-9)
    assert (est.ci_low, est.ci_high) == pytest.approx((low, high), rel=1e-9)
    wide = welch(c, t, "watch_minutes", alpha=0.01)
    assert wide.ci_low < est.ci_low and wide.ci_high > est.ci_high


def test_bootstrap_ci_agrees_with_welch_on_normal_data_and_is_reproducible() -> None:
    c, t = _normal_arms(2)
    boot, ref = bootstrap_diff(c, t, "watch_minutes"), welch(c, t, "watch_minutes")
    width = ref.ci_high - ref.ci_low
    # 2,000 resamples put each percentile within a few % of the interval's width of the normal one.
    assert boot.ci_low == pytest.approx(ref.ci_low, abs=0.05 * width)
    assert boot.ci_high == pytest.approx(ref.ci_high, abs=0.05 * width)
    assert boot.p_value == ref.p_value and "Welch" in boot.method
    assert bootstrap_diff(c, t, "watch_minutes") == boot
    assert bootstrap_diff(c, t, "watch_minutes", seed=8).ci_low != boot.ci_low


def _ratio_users(rng: np.random.Generator, n: int, cost: float) -> tuple[np.ndarray, np.ndarray]:
    watches = rng.poisson(rng.gamma(2.0, 2.0, n)).astype(float)  # heavy and light users
    return watches * cost + rng.normal(0, 1.0, n) * np.sqrt(watches + 1), watches


def test_ratio_delta_standard_error_matches_a_brute_force_user_bootstrap() -> None:
    rng = np.random.default_rng(4)
    num_c, den_c = _ratio_users(rng, 20_000, cost=1.0)
    num_t, den_t = _ratio_users(rng, 20_000, cost=1.03)
    est = ratio_delta(num_c, den_c, num_t, den_t, "cost_per_watch")
    assert est.control == pytest.approx(num_c.sum() / den_c.sum())
    assert est.treatment == pytest.approx(num_t.sum() / den_t.sum())
    diffs = []
    for _ in range(400):
        ic, it = rng.integers(0, 20_000, 20_000), rng.integers(0, 20_000, 20_000)
        diffs.append(num_t[it].sum() / den_t[it].sum() - num_c[ic].sum() / den_c[ic].sum())
    boot_se = float(np.std(diffs, ddof=1))
    se = (est.ci_high - est.ci_low) / (2 * stats.norm.ppf(0.975))
    # 400 resamples estimate an SE to about ±3.5% (1/sqrt(2·400)); 10% leaves room for that.
    assert se == pytest.approx(boot_se, rel=0.10)
    assert est.p_value == pytest.approx(2 * stats.norm.sf(abs(est.effect) / se), rel=1e-6)
    assert est.p_value < 0.05  # a 3% cost increase on 20,000 users per arm is found


def test_ratio_delta_rejects_mismatched_or_zero_denominators() -> None:
    with pytest.raises(ValueError):
        ratio_delta([1.0, 2.0], [1.0], [1.0, 2.0], [1.0, 1.0], "r")
    with pytest.raises(ValueError):
        ratio_delta([1.0, 2.0], [0.0, 0.0], [1.0, 2.0], [1.0, 1.0], "r")


def _cuped_arms(seed: int, n: int = 1000, effect: float = 0.1) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    xc, xt = rng.normal(5, 1, n), rng.normal(5, 1, n)
    # y = 2x + noise: correlation 2/sqrt(5) ≈ 0.89, so CUPED should remove about ρ² = 80% of the variance.
    return 2 * xc + rng.normal(0, 1, n), xc, 2 * xt + effect + rng.normal(0, 1, n), xt


def test_cuped_theta_is_the_least_squares_slope() -> None:
    yc, xc, yt, xt = _cuped_arms(5)
    x, y = np.concatenate([xc, xt]), np.concatenate([yc, yt])
    assert cuped_theta(y, x) == pytest.approx(np.polyfit(x, y, 1)[0], rel=1e-9)
    assert cuped_theta(y, np.ones_like(x)) == 0.0


def test_cuped_removes_the_variance_the_covariate_explains_and_narrows_the_ci() -> None:
    yc, xc, yt, xt = _cuped_arms(6)
    reduction = cuped_variance_reduction(yc, xc, yt, xt)
    assert reduction == pytest.approx(0.8, abs=0.04)
    adjusted, raw = cuped(yc, xc, yt, xt, "watch_minutes"), welch(yc, yt, "watch_minutes")
    ratio = (adjusted.ci_high - adjusted.ci_low) / (raw.ci_high - raw.ci_low)
    assert ratio == pytest.approx(math.sqrt(1 - reduction), rel=0.01)
    assert f"−{100 * reduction:.0f}%" in adjusted.method
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, 1000)
    assert abs(cuped_variance_reduction(yc, noise, yt, noise[::-1])) < 0.02  # an unrelated x removes ~nothing


def test_cuped_effect_is_unbiased_over_seeds() -> None:
    effects = np.array([cuped(*_cuped_arms(seed), "m").effect for seed in range(200)])
    # Each adjusted effect has SE sqrt(2·1/1000) ≈ 0.045; the mean of 200 is within ±0.0095 at 3 SE.
    assert effects.mean() == pytest.approx(0.1, abs=3 * effects.std(ddof=1) / np.sqrt(len(effects)))
    assert effects.std(ddof=1) < 0.06  # vs ≈ 0.1 unadjusted: the reduction is real, not a bias


def test_srm_flags_a_skewed_split_and_passes_a_balanced_one() -> None:
    skewed = srm_check({"control": 5000, "treatment": 5400}, {"control": 0.5, "treatment": 0.5})
    assert not skewed.ok
    assert skewed.chi2 == pytest.approx(2 * 200**2 / 5200)
    assert skewed.p_value == pytest.approx(stats.chi2.sf(2 * 200**2 / 5200, df=1))
    balanced = srm_check({"control": 5000, "treatment": 5080}, {"control": 0.5, "treatment": 0.5})
    assert balanced.ok and balanced.p_value > 0.001
    uneven = srm_check({"a": 9000, "b": 1000}, {"a": 9, "b": 1})
    assert uneven.ok and uneven.expected == pytest.approx({"a": 0.9, "b": 0.1})


def test_srm_handles_empty_and_missing_arms() -> None:
    empty = srm_check({}, {"control": 0.5, "treatment": 0.5})
    assert empty.ok and empty.counts == {"control": 0, "treatment": 0}
    one_arm_empty = srm_check({"control": 300}, {"control": 0.5, "treatment": 0.5})
    assert not one_arm_empty.ok and one_arm_empty.counts["treatment"] == 0
    stray = srm_check({"control": 500, "treatment": 500, "old": 3}, {"control": 0.5, "treatment": 0.5})
    assert not stray.ok and stray.p_value == 0.0 and stray.expected["old"] == 0.0
    assert srm_check({"control": 10}, {"control": 1.0}).ok
    with pytest.raises(ValueError):
        srm_check({"a": 1}, {"a": 0.0})


def test_users_needed_for_a_mean_matches_the_textbook_formula() -> None:
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    textbook = 2 * (z * 2.0 / 0.1) ** 2  # n per arm = 2 (z_α/2 + z_β)² σ² / δ²
    assert users_needed(0.1, sd=2.0) == math.ceil(textbook)
    assert users_needed(0.1, sd=2.0, ratio=2.0) < users_needed(0.1, sd=2.0)


def test_users_needed_for_a_proportion_is_near_the_unpooled_normal_formula() -> None:
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    textbook = z**2 * (0.05 * 0.95 + 0.055 * 0.945) / 0.005**2
    # Cohen's h (arcsine) and the unpooled normal formula agree to within a percent for small moves.
    assert users_needed(0.005, baseline_rate=0.05) == pytest.approx(textbook, rel=0.01)


@pytest.mark.parametrize("scale", [{"baseline_rate": 0.05}, {"sd": 3.0}])
def test_mde_and_users_needed_round_trip(scale: dict[str, float]) -> None:
    for n_c, n_t in [(10_000, 10_000), (4000, 12_000)]:
        effect = mde(n_c, n_t, **scale)
        assert effect > 0
        n = users_needed(effect, ratio=n_t / n_c, **scale)
        assert n_c <= n <= n_c + 1  # ceil of the exact solution
        assert mde(n, round(n * n_t / n_c), **scale) <= effect * 1.001
    assert mde(40_000, 40_000, **scale) == pytest.approx(mde(10_000, 10_000, **scale) / 2, rel=0.02)


def test_mde_rejects_ambiguous_scales_and_says_nan_when_no_rate_is_enough() -> None:
    with pytest.raises(ValueError):
        mde(100, 100)
    with pytest.raises(ValueError):
        mde(100, 100, baseline_rate=0.1, sd=1.0)
    assert math.isnan(mde(3, 3, baseline_rate=0.9))


def test_ratio_delta_with_a_constant_ratio_per_user_does_not_fail() -> None:
    # Every user's cost per watch is exactly 1.1: the delta variance is 0 up to rounding, never negative.
    rng = np.random.default_rng(3)
    den_c, den_t = rng.integers(1, 9, 500).astype(float), rng.integers(1, 9, 500).astype(float)
    est = ratio_delta(1.1 * den_c, den_c, 1.1 * den_t, den_t, "cost_per_watch")
    assert est.effect == pytest.approx(0.0, abs=1e-12) and est.p_value == pytest.approx(1.0)
