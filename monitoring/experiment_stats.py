"""Statistics of an A/B experiment: effect estimates with CIs and the sample-ratio check.

Every estimate is treatment − control and comes back as an `Estimate`; the distributions are
scipy's and statsmodels', never re-derived here. The always-valid sequential test (mSPRT) is in
`monitoring.sequential`, power (MDE, users needed) in `monitoring.power`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import stats
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportions_ztest,
)

ALPHA: Final = 0.05
"""Two-sided significance level of the estimates' p-values and CIs (95% intervals)."""
SRM_ALPHA: Final = 0.001
"""Sample-ratio mismatch threshold: industry practice (Kohavi et al., Trustworthy Online Controlled
Experiments) because the check runs on every experiment and a false alarm stops a valid one."""

F64 = npt.NDArray[np.float64]


def _f64(values: npt.ArrayLike) -> F64:
    return np.asarray(values, dtype=np.float64).ravel()


@dataclass(frozen=True)
class Estimate:
    """One metric's treatment − control effect with its CI and p-value."""

    metric: str
    control: float
    treatment: float
    effect: float
    relative: float
    ci_low: float
    ci_high: float
    p_value: float
    n_control: int
    n_treatment: int
    method: str

    def to_dict(self) -> dict[str, object]:
        """Fields as JSON-ready values (NaN and infinities, which JSON cannot hold, become None)."""
        return {
            k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in asdict(self).items()
        }


def _estimate(
    metric: str,
    control: float,
    treatment: float,
    ci: tuple[float, float],
    p: float,
    n_c: int,
    n_t: int,
    method: str,
) -> Estimate:
    effect = treatment - control
    relative = effect / control if control != 0 else math.nan
    return Estimate(
        metric, float(control), float(treatment), float(effect), float(relative),
        float(ci[0]), float(ci[1]), float(p), n_c, n_t, method,
    )  # fmt: skip


def two_proportions(
    x_c: int, n_c: int, x_t: int, n_t: int, metric: str = "hit_rate", alpha: float = ALPHA
) -> Estimate:
    """Difference of two rates: pooled two-proportion z-test, Newcombe CI of the difference."""
    if n_c <= 0 or n_t <= 0 or not (0 <= x_c <= n_c and 0 <= x_t <= n_t):
        raise ValueError(f"counts need 0 <= x <= n and n > 0, got {x_c}/{n_c} and {x_t}/{n_t}")
    p_c, p_t = x_c / n_c, x_t / n_t
    # Both arms all 0 (or all 1): identical rates and a zero pooled variance the z-test divides by.
    flat = x_c + x_t in (0, n_c + n_t)
    p = 1.0 if flat else float(proportions_ztest([x_t, x_c], [n_t, n_c])[1])
    # Newcombe's hybrid score interval rather than Wald: hit rates are small, and near 0 (or for
    # small arms) Wald's interval under-covers and can leave [-1, 1]; Newcombe keeps ~95% coverage.
    ci = confint_proportions_2indep(x_t, n_t, x_c, n_c, method="newcomb", compare="diff", alpha=alpha)
    return _estimate(metric, p_c, p_t, ci, p, n_c, n_t, "two-proportion z-test, Newcombe CI")


def welch(control: npt.ArrayLike, treatment: npt.ArrayLike, metric: str, alpha: float = ALPHA) -> Estimate:
    """Difference of means: Welch's t-test (unequal variances) and its CI."""
    c, t = _f64(control), _f64(treatment)
    res = stats.ttest_ind(t, c, equal_var=False)
    ci = res.confidence_interval(confidence_level=1 - alpha)
    return _estimate(
        metric, c.mean(), t.mean(), (ci.low, ci.high), res.pvalue, len(c), len(t), "Welch t-test"
    )


def _mean_diff(t: F64, c: F64, axis: int = -1) -> F64:
    return np.asarray(np.mean(t, axis=axis) - np.mean(c, axis=axis), dtype=np.float64)


def bootstrap_diff(
    control: npt.ArrayLike,
    treatment: npt.ArrayLike,
    metric: str,
    n_resamples: int = 2000,
    seed: int = 7,
    alpha: float = ALPHA,
) -> Estimate:
    """Difference of means with a bootstrap CI (arms resampled independently); p-value from Welch."""
    c, t = _f64(control), _f64(treatment)
    # Percentile, not BCa: BCa's jackknife costs n evaluations of the statistic per arm (quadratic in
    # the arm size), and at experiment sizes the mean difference is near-symmetric, where the two agree.
    res = stats.bootstrap(
        (t, c), _mean_diff, n_resamples=n_resamples, vectorized=True, paired=False,
        confidence_level=1 - alpha, method="percentile", rng=np.random.default_rng(seed),
        batch=max(1, 2_000_000 // max(len(c), len(t), 1)),  # caps the resample matrix near 16 MB
    )  # fmt: skip
    p = stats.ttest_ind(t, c, equal_var=False).pvalue
    ci = (res.confidence_interval.low, res.confidence_interval.high)
    return _estimate(
        metric, c.mean(), t.mean(), ci, p, len(c), len(t), "bootstrap percentile CI, Welch p-value"
    )


def _ratio_and_variance(num: F64, den: F64) -> tuple[float, float]:
    if len(num) != len(den) or len(num) < 2:
        raise ValueError(
            f"numerator and denominator need the same length >= 2, got {len(num)} and {len(den)}"
        )
    mu_n, mu_d = num.mean(), den.mean()
    if mu_d == 0:
        raise ValueError("the denominator's mean is 0: the ratio is undefined")
    cov = np.cov(num, den, ddof=1)
    var_n, var_d, cov_nd = cov[0, 0], cov[1, 1], cov[0, 1]
    # Delta method: the users are the independent units, so the per-user (num, den) pairs carry
    # the ratio's variance, not the watches inside them.
    var = (var_n / mu_d**2 - 2 * mu_n * cov_nd / mu_d**3 + mu_n**2 * var_d / mu_d**4) / len(num)
    # A constant ratio per user (num = k * den) gives 0 up to rounding, which can land just below it.
    return float(mu_n / mu_d), max(0.0, float(var))


def ratio_delta(
    num_c: npt.ArrayLike,
    den_c: npt.ArrayLike,
    num_t: npt.ArrayLike,
    den_t: npt.ArrayLike,
    metric: str,
    alpha: float = ALPHA,
) -> Estimate:
    """Difference of ratio metrics sum(num) / sum(den) from per-user arrays: delta-method z-test."""
    nc, nt = _f64(num_c), _f64(num_t)
    r_c, v_c = _ratio_and_variance(nc, _f64(den_c))
    r_t, v_t = _ratio_and_variance(nt, _f64(den_t))
    effect, se = r_t - r_c, math.sqrt(v_c + v_t)
    z = abs(effect) / se if se > 0 else (0.0 if effect == 0 else math.inf)
    p = float(2 * stats.norm.sf(z))
    half = float(stats.norm.ppf(1 - alpha / 2)) * se
    return _estimate(
        metric, r_c, r_t, (effect - half, effect + half), p, len(nc), len(nt), "delta-method z-test"
    )


def cuped_theta(y: npt.ArrayLike, x: npt.ArrayLike) -> float:
    """CUPED slope cov(y, x) / var(x): the part of y that the pre-experiment covariate x predicts."""
    yy, xx = _f64(y), _f64(x)
    var_x = float(np.var(xx, ddof=1))
    if var_x == 0:
        return 0.0  # a constant covariate predicts nothing: no adjustment
    return float(np.cov(yy, xx, ddof=1)[0, 1] / var_x)


def _cuped_adjust(
    control_y: npt.ArrayLike, control_x: npt.ArrayLike, treatment_y: npt.ArrayLike, treatment_x: npt.ArrayLike
) -> tuple[F64, F64, F64, F64, float]:
    cy, cx, ty, tx = _f64(control_y), _f64(control_x), _f64(treatment_y), _f64(treatment_x)
    # One θ and one centre for both arms: x is pre-experiment, so randomisation makes it independent
    # of the arm, and the shared adjustment cannot move the effect (Deng et al. 2013).
    theta = cuped_theta(np.concatenate([cy, ty]), np.concatenate([cx, tx]))
    centre = float(np.concatenate([cx, tx]).mean())
    return cy, ty, cy - theta * (cx - centre), ty - theta * (tx - centre), theta


def _effect_variance(c: F64, t: F64) -> float:
    return float(np.var(c, ddof=1) / len(c) + np.var(t, ddof=1) / len(t))


def cuped_variance_reduction(
    control_y: npt.ArrayLike, control_x: npt.ArrayLike, treatment_y: npt.ArrayLike, treatment_x: npt.ArrayLike
) -> float:
    """Share of the effect estimate's variance that CUPED removes (0.3 = 30% less variance)."""
    cy, ty, ac, at, _ = _cuped_adjust(control_y, control_x, treatment_y, treatment_x)
    raw = _effect_variance(cy, ty)
    return 1.0 - _effect_variance(ac, at) / raw if raw > 0 else 0.0


def cuped(
    control_y: npt.ArrayLike,
    control_x: npt.ArrayLike,
    treatment_y: npt.ArrayLike,
    treatment_x: npt.ArrayLike,
    metric: str,
    alpha: float = ALPHA,
) -> Estimate:
    """Difference of means after CUPED adjustment by a pre-experiment covariate, then Welch.

    `control` and `treatment` are the adjusted means; `method` records θ and the variance removed.
    """
    cy, ty, ac, at, theta = _cuped_adjust(control_y, control_x, treatment_y, treatment_x)
    raw = _effect_variance(cy, ty)
    reduction = 1.0 - _effect_variance(ac, at) / raw if raw > 0 else 0.0
    est = welch(ac, at, metric, alpha)
    return replace(est, method=f"CUPED (θ={theta:.4g}, variance −{100 * reduction:.0f}%), Welch t-test")


@dataclass(frozen=True)
class SampleRatio:
    """Users per arm against the designed split: chi-square goodness of fit."""

    counts: Mapping[str, int]
    expected: Mapping[str, float]
    chi2: float
    p_value: float
    ok: bool


def srm_check(
    counts: Mapping[str, int], weights: Mapping[str, float], alpha: float = SRM_ALPHA
) -> SampleRatio:
    """Sample-ratio mismatch check: are the arms' user counts consistent with the designed weights?"""
    arms = list(weights) + [a for a in counts if a not in weights]
    w = np.array([float(weights.get(a, 0.0)) for a in arms])
    obs = np.array([int(counts.get(a, 0)) for a in arms], dtype=np.int64)
    if np.any(w < 0) or w.sum() <= 0 or np.any(obs < 0):
        raise ValueError(f"weights need to be >= 0 with a positive sum and counts >= 0: {weights}, {counts}")
    shares = w / w.sum()
    full = {a: int(n) for a, n in zip(arms, obs, strict=True)}
    expected = {a: float(s) for a, s in zip(arms, shares, strict=True)}
    if np.any((shares == 0) & (obs > 0)):
        # Users in an arm designed to get none: a mismatch no sample size explains.
        return SampleRatio(full, expected, math.inf, 0.0, False)
    live = shares > 0
    if obs.sum() == 0 or live.sum() < 2:
        return SampleRatio(full, expected, 0.0, 1.0, True)  # no users yet, or one arm: nothing to compare
    res = stats.chisquare(obs[live], shares[live] * obs.sum())
    p = float(res.pvalue)
    return SampleRatio(full, expected, float(res.statistic), p, p >= alpha)
