"""mSPRT: the closed form against scipy's normal densities, its error rate under peeking, its power."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from monitoring.sequential import SequentialTest, msprt_p_value, msprt_tau2

EXPERIMENTS, LOOKS, PER_LOOK = 400, 50, 20  # 1,000 users per arm at the last look
ALPHA = 0.05
# The seeded runs are fixed, so the bound is not a flaky coin flip; the 2-standard-error slack
# (binomial at α over 400 runs: 2·sqrt(.05·.95/400) ≈ 0.022) only admits a plug-in variance that
# is slightly off at the first looks. Naive peeking at 50 looks lands near 0.3, far outside it.
FPR_BOUND = ALPHA + 2 * np.sqrt(ALPHA * (1 - ALPHA) / EXPERIMENTS)


def _arms(seed: int, effect: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = LOOKS * PER_LOOK
    return rng.normal(0.0, 1.0, (EXPERIMENTS, n)), rng.normal(effect, 1.0, (EXPERIMENTS, n))


def _msprt_ever_significant(control: np.ndarray, treatment: np.ndarray, tau2: float) -> np.ndarray:
    hits = np.zeros(len(control), dtype=bool)
    ns = PER_LOOK * np.arange(1, LOOKS + 1)
    # Cumulative means and sample variances of every experiment at every look, computed once.
    c_mean = np.cumsum(control, axis=1)[:, ns - 1] / ns
    t_mean = np.cumsum(treatment, axis=1)[:, ns - 1] / ns
    c_var = (np.cumsum(control**2, axis=1)[:, ns - 1] - ns * c_mean**2) / (ns - 1)
    t_var = (np.cumsum(treatment**2, axis=1)[:, ns - 1] - ns * t_mean**2) / (ns - 1)
    for i in range(len(control)):
        test = SequentialTest(tau2)
        for k, n in enumerate(ns):
            test.update(t_mean[i, k] - c_mean[i, k], c_var[i, k] + t_var[i, k], float(n))
        hits[i] = test.significant(ALPHA)
    return hits


def test_the_closed_form_is_the_ratio_of_the_mixture_and_null_densities_of_the_mean_difference() -> None:
    # Under H0, d ~ N(0, σ²/n); under the N(0, τ²) mixture, d ~ N(0, σ²/n + τ²).
    for d, var, n, tau2 in [(0.1, 2.0, 500, 0.01), (-0.3, 1.5, 40, 0.09), (0.0, 2.0, 1000, 0.04)]:
        lam = stats.norm.pdf(d, scale=np.sqrt(var / n + tau2)) / stats.norm.pdf(d, scale=np.sqrt(var / n))
        assert msprt_p_value(d, var, n, tau2) == pytest.approx(min(1.0, 1 / lam), rel=1e-9)


def test_no_users_or_no_spread_gives_p_one_and_a_huge_effect_does_not_overflow() -> None:
    assert msprt_p_value(0.5, 2.0, 0, 0.04) == 1.0
    assert msprt_p_value(0.5, 0.0, 100, 0.04) == 1.0
    assert msprt_p_value(50.0, 1.0, 1e6, 0.04) == 0.0
    with pytest.raises(ValueError):
        msprt_p_value(0.5, 2.0, 10, 0.0)
    assert msprt_tau2(-0.2) == pytest.approx(0.04)


def test_the_running_p_value_never_rises_and_a_rejection_stays() -> None:
    test = SequentialTest(tau2=0.04)
    p1 = test.update(0.3, 2.0, 400)
    assert test.significant(0.05)
    p2 = test.update(0.0, 2.0, 800)  # the effect vanished: the latest look alone would say p = 1
    assert p2 == p1 < 0.05
    assert test.significant(0.05) and test.looks == 2


def test_samples_of_equal_arms_give_the_same_look_as_their_summary() -> None:
    rng = np.random.default_rng(3)
    c, t = rng.normal(0, 1, 300), rng.normal(0.2, 1.5, 300)
    expected = msprt_p_value(t.mean() - c.mean(), c.var(ddof=1) + t.var(ddof=1), 300, 0.04)
    assert SequentialTest(0.04).update_samples(c, t) == pytest.approx(expected)
    assert SequentialTest(0.04).update_samples(c[:1], t) == 1.0


def test_peeking_at_50_looks_keeps_the_msprt_false_positive_rate_under_alpha_but_not_welch() -> None:
    control, treatment = _arms(seed=11, effect=0.0)
    msprt_rate = _msprt_ever_significant(control, treatment, msprt_tau2(0.2)).mean()
    naive = np.zeros(EXPERIMENTS, dtype=bool)
    for n in PER_LOOK * np.arange(1, LOOKS + 1):
        naive |= stats.ttest_ind(treatment[:, :n], control[:, :n], axis=1, equal_var=False).pvalue <= ALPHA
    assert msprt_rate <= FPR_BOUND
    # The contrast that makes the check mean something: the same data, peeked at with a fixed-n test.
    assert naive.mean() > 2 * ALPHA


def test_with_a_real_effect_the_msprt_rejects_in_most_runs() -> None:
    control, treatment = _arms(seed=12, effect=0.2)
    assert _msprt_ever_significant(control, treatment, msprt_tau2(0.2)).mean() >= 0.8
