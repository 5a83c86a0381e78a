"""Power of an A/B comparison: the minimum detectable effect of a sample, and the users an effect needs.

statsmodels' normal power curve (`NormalIndPower`); proportions through Cohen's h.
"""

from __future__ import annotations

import math

from scipy import optimize
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from monitoring.experiment_stats import ALPHA


def _scale(baseline_rate: float | None, sd: float | None) -> None:
    if (baseline_rate is None) == (sd is None):
        raise ValueError("give exactly one of baseline_rate (a proportion) or sd (a mean)")
    if baseline_rate is not None and not 0 < baseline_rate < 1:
        raise ValueError(f"baseline_rate must be in (0, 1), got {baseline_rate}")
    if sd is not None and sd <= 0:
        raise ValueError(f"sd must be > 0, got {sd}")


def mde(
    n_c: int,
    n_t: int,
    *,
    baseline_rate: float | None = None,
    sd: float | None = None,
    alpha: float = ALPHA,
    power: float = 0.8,
) -> float:
    """Smallest absolute effect these arm sizes detect with `power` (two-sided at `alpha`).

    For a proportion it is the upward move from `baseline_rate`; NaN when even a rate of 1 is not enough.
    """
    _scale(baseline_rate, sd)
    if n_c <= 0 or n_t <= 0 or not alpha < power < 1:
        raise ValueError(f"arms need users and power must be in (alpha, 1), got {n_c}, {n_t}, {power}")
    # statsmodels' power curve, solved here for the effect size: its solve_power stops ~5e-5 short in
    # power, ~1e-4 off in effect size, so users_needed(mde(n)) came out a user below n.
    curve = NormalIndPower()
    h = float(
        optimize.brentq(
            lambda e: curve.power(e, nobs1=n_c, alpha=alpha, ratio=n_t / n_c) - power, 1e-9, 50.0, xtol=1e-14
        )
    )
    if sd is not None:
        return h * sd
    assert baseline_rate is not None
    # Invert Cohen's h = 2·asin(√p_t) − 2·asin(√p_c) for p_t.
    phi = 2 * math.asin(math.sqrt(baseline_rate)) + h
    return math.sin(phi / 2) ** 2 - baseline_rate if phi <= math.pi else math.nan


def users_needed(
    effect: float,
    *,
    baseline_rate: float | None = None,
    sd: float | None = None,
    alpha: float = ALPHA,
    power: float = 0.8,
    ratio: float = 1.0,
) -> int:
    """Control-arm users needed to detect an absolute `effect` (the treatment arm needs `ratio` times as many)."""
    _scale(baseline_rate, sd)
    if effect == 0:
        raise ValueError("a zero effect needs infinitely many users")
    if baseline_rate is not None:
        if not 0 < baseline_rate + effect < 1:
            raise ValueError(f"baseline_rate + effect must be in (0, 1), got {baseline_rate + effect}")
        size = float(proportion_effectsize(baseline_rate + effect, baseline_rate))
    else:
        assert sd is not None
        size = effect / sd
    n = NormalIndPower().solve_power(effect_size=abs(size), nobs1=None, alpha=alpha, power=power, ratio=ratio)
    return math.ceil(float(n))
