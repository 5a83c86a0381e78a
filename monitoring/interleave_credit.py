"""Team-draft interleaving read-out, as plain logic: watches -> clicks per team -> per-user wins -> verdict.

An interleaved answer (`serving.interleaving`) stores its teams as a plain string, one character per
position (`"ABBA…"`, `A` or `B`), next to the list it answered. This module parses that string
itself (`teams_by_movie`) so monitoring never imports serving; both sides share only the format.

Verdict: each user with any credit is one unit; a user wins for the team whose movies they watched
more of (equal credit: a tie). ΔAB = (wins_B − wins_A) / (wins_A + wins_B + ties) is the standard
interleaving preference (positive: B preferred). The p-value is an exact two-sided sign test
(`scipy.stats.binomtest`, p = 0.5) over the users who are not tied; the confidence interval of ΔAB is
the normal approximation (Wald) of the mean of per-user scores +1 (B), −1 (A), 0 (tie).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from scipy.stats import binom, binomtest, norm
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

TEAM_A: Final = "A"
"""Team of the first model; the same character `serving.interleaving` writes."""
TEAM_B: Final = "B"
"""Team of the second model; the same character `serving.interleaving` writes."""


def teams_by_movie(movies: Sequence[str], record: str) -> dict[str, str]:
    """Movie -> team from an answered list and its record string; ValueError if they do not fit together."""
    if len(movies) != len(record):
        raise ValueError(f"{len(movies)} movies but a record of {len(record)} teams")
    bad = set(record) - {TEAM_A, TEAM_B}
    if bad:
        raise ValueError(f"record teams must be 'A' or 'B', got {sorted(bad)}")
    teams = dict(zip(movies, record, strict=True))
    if len(teams) != len(movies):
        raise ValueError("an interleaved list cannot repeat a movie")
    return teams


def credit(teams_by_movie: Mapping[str, str], watched: Iterable[str]) -> tuple[int, int]:
    """(clicks for A, clicks for B) of one interleaved impression: each distinct watched movie credits the team that placed it."""
    # Distinct movies, not watch lines: the watch log has a line per minute, and counting lines
    # would let one long film outvote several short ones. Unlisted movies credit nobody.
    a = b = 0
    for movie in set(watched):
        team = teams_by_movie.get(movie)
        if team == TEAM_A:
            a += 1
        elif team == TEAM_B:
            b += 1
    return a, b


@dataclass(frozen=True)
class Preference:
    """The interleaving verdict over users: wins, ΔAB with its normal-approximation CI, sign-test p-value, winner."""

    wins_a: int
    wins_b: int
    ties: int
    n: int
    """Users with any credit (wins_a + wins_b + ties); users who watched nothing listed carry no preference."""
    delta: float
    """ΔAB = (wins_b − wins_a) / n; positive: B preferred. 0 when n = 0."""
    ci_low: float
    """Lower end of the (1 − alpha) normal-approximation interval of ΔAB, clipped to [−1, 1]."""
    ci_high: float
    """Upper end of the (1 − alpha) normal-approximation interval of ΔAB, clipped to [−1, 1]."""
    p_value: float
    """Two-sided exact binomial (sign) test of wins_b out of wins_a + wins_b against 0.5; 1.0 with no wins."""
    alpha: float
    winner: str | None
    """`A` or `B` when p_value < alpha (the side with more wins), else None."""


def preference(per_user: Iterable[tuple[int, int]], alpha: float = 0.05) -> Preference:
    """The verdict from each user's total (credit_a, credit_b) over all their impressions."""
    # One vote per user, not per impression: a user's impressions share that user's taste and
    # habits, so they are not independent draws, and counting them separately would shrink the
    # p-value as if we had more evidence than we have (and let a few heavy users decide). Users
    # are independent of each other, so the sign test's assumptions hold at the user level.
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    wins_a = wins_b = ties = 0
    for credit_a, credit_b in per_user:
        if credit_a < 0 or credit_b < 0:
            raise ValueError(f"credit cannot be negative: ({credit_a}, {credit_b})")
        if credit_a > credit_b:
            wins_a += 1
        elif credit_b > credit_a:
            wins_b += 1
        elif credit_a > 0:
            ties += 1
    n = wins_a + wins_b + ties
    if n == 0:
        return Preference(0, 0, 0, 0, 0.0, -1.0, 1.0, 1.0, alpha, None)
    delta = (wins_b - wins_a) / n
    # Per-user score s ∈ {+1, −1, 0}: E[s] = ΔAB, Var[s] = P(B) + P(A) − ΔAB².
    variance = (wins_a + wins_b) / n - delta * delta
    half = float(norm.ppf(1 - alpha / 2)) * math.sqrt(max(variance, 0.0) / n)
    decided = wins_a + wins_b
    p_value = float(binomtest(wins_b, decided, 0.5).pvalue) if decided else 1.0
    winner = None
    if p_value < alpha and wins_a != wins_b:
        winner = TEAM_B if wins_b > wins_a else TEAM_A
    return Preference(
        wins_a=wins_a,
        wins_b=wins_b,
        ties=ties,
        n=n,
        delta=delta,
        ci_low=max(-1.0, delta - half),
        ci_high=min(1.0, delta + half),
        p_value=p_value,
        alpha=alpha,
        winner=winner,
    )


def users_needed_interleaving(
    p_prefer_b: float, tie_rate: float, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Users with any credit needed for `preference` to find the better side with the given power.

    `p_prefer_b` is the chance a user who is not tied prefers B; `tie_rate` the share of crediting
    users who tie (they add nothing to the sign test). Users who watch nothing from their lists are
    not counted here: divide by the share of users who watch something to get users exposed.

    The untied count starts at the normal approximation (statsmodels `NormalIndPower`, one sample,
    Cohen's h of `p_prefer_b` against 0.5) and is raised until the exact power of the two-sided
    binomial test reaches `power`: the exact test is conservative, so the approximation alone falls
    short. Exact power is a sawtooth in n, so a few more users can dip just below; then it is
    divided by (1 − tie_rate) and rounded up.
    """
    if not 0 < p_prefer_b < 1 or p_prefer_b == 0.5:
        raise ValueError(f"p_prefer_b must be in (0, 1) and not 0.5, got {p_prefer_b}")
    if not 0 <= tie_rate < 1:
        raise ValueError(f"tie_rate must be in [0, 1), got {tie_rate}")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha}, {power}")
    effect = abs(float(proportion_effectsize(p_prefer_b, 0.5)))
    approx = NormalIndPower().solve_power(effect_size=effect, alpha=alpha, power=power, ratio=0)
    untied = max(1, math.ceil(float(approx)))
    while _sign_test_power(untied, p_prefer_b, alpha) < power:
        untied += 1
    return math.ceil(untied / (1 - tie_rate))


def _sign_test_power(n: int, p: float, alpha: float) -> float:
    """Exact power of the two-sided binomial test at 0.5 with n untied users whose B-share is p."""
    # Under p = 0.5 the two-sided test rejects exactly when min(k, n − k) <= c, with c the largest
    # count whose doubled lower tail stays within alpha (the null is symmetric).
    c = int(binom.ppf(alpha / 2, n, 0.5))
    if 2 * binom.cdf(c, n, 0.5) >= alpha:  # `preference` rejects only when p < alpha
        c -= 1
    if c < 0:
        return 0.0
    return float(binom.cdf(c, n, p) + binom.sf(n - c - 1, n, p))
