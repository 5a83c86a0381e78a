"""Assignment as a statistician checks it: balanced by chi-square, and independent between experiments' salts."""

from __future__ import annotations

import numpy as np
from scipy import stats

from serving.experiments import Experiment, assign

USERS = range(1, 60_001)


def experiment(salt: str, weights: tuple[float, ...]) -> Experiment:
    arms = [{"name": f"a{i}", "weight": w, "model": "champion"} for i, w in enumerate(weights)]
    return Experiment.model_validate({"name": "e", "salt": salt, "arms": arms})


def counts(exp: Experiment) -> np.ndarray:
    names = [a.name for a in exp.arms]
    arms = [assign(u, exp).name for u in USERS]
    return np.array([arms.count(n) for n in names])


def test_assignment_is_balanced_by_chi_square_for_several_splits() -> None:
    for weights in ((50, 50), (90, 10), (50, 30, 20)):
        exp = experiment(f"balance-{len(weights)}-{weights[0]}", weights)
        observed = counts(exp)
        expected = np.array(weights) / sum(weights) * len(USERS)
        assert stats.chisquare(observed, expected).pvalue > 0.001, (weights, observed)


def test_a_skewed_assignment_is_caught_by_the_same_test() -> None:
    # The check above can fail: users 1..60,000 read under a 55/45 split are not 50/50.
    exp = experiment("balance-2-50", (55, 45))
    assert stats.chisquare(counts(exp), [len(USERS) / 2] * 2).pvalue < 1e-6


def test_salts_of_two_experiments_assign_independently() -> None:
    # A user's arm in one experiment says nothing about their arm in another (else effects leak across).
    first, second = experiment("checkout-2026", (50, 50)), experiment("ranker-2026", (50, 50))
    table = np.zeros((2, 2), dtype=np.int64)
    for user in USERS:
        table[int(assign(user, first).name[1]), int(assign(user, second).name[1])] += 1
    assert stats.chi2_contingency(table).pvalue > 0.001, table
    same = experiment("checkout-2026", (50, 50))
    agree = sum(assign(u, first).name == assign(u, same).name for u in range(1, 2001))
    assert agree == 2000, "the same salt is the same assignment"
