"""Always-valid sequential test of a difference of means: the mixture SPRT (mSPRT).

Johari, Koomen, Pekelis, Walsh, "Peeking at A/B tests: why it matters, and what to do about it"
(KDD 2017) and "Always valid inference: continuous monitoring of A/B tests" (arXiv:1512.04922,
Operations Research 2022). With n users per arm, mean difference d and σ² the variance of one
treatment − control pair (var_c + var_t), the likelihood ratio of a N(0, τ²) mixture of effects
against no effect is

    Λ_n = sqrt(σ² / (σ² + n τ²)) · exp(n² τ² d² / (2 σ² (σ² + n τ²)))

and p_n = min(1, 1 / Λ_n), taken as a running minimum over looks, stays valid however often one
looks: P(p_n ≤ α at any n) ≤ α under no effect (Ville's inequality). The paper assumes a known σ²;
here it is the sample variance at each look, the usual plug-in once each arm has some users.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt


def msprt_p_value(diff: float, var: float, n: float, tau2: float) -> float:
    """mSPRT p-value 1 / Λ_n of one look (capped at 1); not yet the running minimum over looks."""
    if n <= 0 or var <= 0:
        return 1.0  # no users or no spread yet: no evidence either way
    if tau2 <= 0:
        raise ValueError(f"tau2 must be > 0, got {tau2}")
    spread = var + n * tau2
    # log Λ, so a large n · d² cannot overflow exp.
    log_lambda = 0.5 * math.log(var / spread) + n * n * tau2 * diff * diff / (2 * var * spread)
    return 1.0 if log_lambda <= 0 else math.exp(-log_lambda)


def msprt_tau2(expected_effect: float) -> float:
    """Mixing variance τ² for the effect one expects: τ² = effect², so the mixture centres its mass there.

    Any τ² keeps the test valid; it only sets the sample size at which the test is most powerful.
    """
    if expected_effect == 0:
        raise ValueError("the expected effect must be non-zero")
    return float(expected_effect) ** 2


class SequentialTest:
    """mSPRT fed cumulative looks; keeps the running-minimum p-value, so it may be checked at every look."""

    def __init__(self, tau2: float) -> None:
        if tau2 <= 0:
            raise ValueError(f"tau2 must be > 0, got {tau2}")
        self.tau2 = tau2
        self.p_value = 1.0
        self.looks = 0

    def update(self, diff: float, var: float, n: float) -> float:
        """Add a look (cumulative mean difference, pair variance, users per arm); returns the running p-value."""
        self.looks += 1
        # The minimum, not the latest value: a rejection once made stays made (that is what is valid).
        self.p_value = min(self.p_value, msprt_p_value(diff, var, n, self.tau2))
        return self.p_value

    def update_samples(self, control: npt.ArrayLike, treatment: npt.ArrayLike) -> float:
        """Add a look from all observations so far of each arm; returns the running p-value."""
        c = np.asarray(control, dtype=np.float64).ravel()
        t = np.asarray(treatment, dtype=np.float64).ravel()
        if len(c) < 2 or len(t) < 2:
            self.looks += 1
            return self.p_value
        var_c, var_t = float(np.var(c, ddof=1)), float(np.var(t, ddof=1))
        var = var_c + var_t
        # Unequal arms: the n per arm that gives d the same variance, σ²/n = var_c/n_c + var_t/n_t.
        per_arm = var_c / len(c) + var_t / len(t)
        n = var / per_arm if per_arm > 0 else float(min(len(c), len(t)))
        return self.update(float(t.mean() - c.mean()), var, n)

    def significant(self, alpha: float = 0.05) -> bool:
        """Whether the effect is non-zero at level `alpha`, valid at any look."""
        return self.p_value <= alpha
