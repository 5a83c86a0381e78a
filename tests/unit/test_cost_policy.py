"""Cost rules: λ penalty plus list-cost budget re-rank, grouped evaluation, Pareto fronts and the business rule."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from ranking.cost_policy import CostRule, rerank, rerank_grouped
from ranking.pareto import (
    BUSINESS_RULE,
    OperatingPoint,
    candidate_rules,
    choose,
    evaluate_rules,
    operating_point,
    pareto_front,
    plot_fronts,
    rule_lists,
)


def random_list(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(size=n), rng.lognormal(-2.0, 0.8, size=n)


def lexicographic_best(p: np.ndarray, c: np.ndarray, k: int, total: float) -> list[int] | None:
    """Brute force: the feasible k-set whose members, in penalised order, are position-wise best."""
    order = list(np.argsort(-p, kind="stable"))
    feasible = [s for s in itertools.combinations(range(len(p)), k) if c[list(s)].sum() <= total + 1e-12]
    if not feasible:
        return None
    best = min(feasible, key=lambda s: sorted(order.index(i) for i in s))
    return sorted(best, key=order.index)


# --- one list ---------------------------------------------------------------------------------


def test_without_budget_it_is_the_penalised_top_k() -> None:
    scores = np.array([3.0, 2.0, 1.0, 0.5])
    cost = np.array([1.0, 0.0, 0.0, 0.0])
    assert rerank(scores, cost, 2, CostRule(), 1.0).tolist() == [0, 1]
    assert rerank(scores, cost, 2, CostRule(lam=1.5), 1.0).tolist() == [1, 0]  # 3 − 1.5 = 1.5 < 2
    assert rerank(scores, cost, 2, CostRule(lam=1.5), 0.5).tolist() == [1, 2]  # cost_scale halves the price
    assert rerank(scores, cost, 9, CostRule(), 1.0).tolist() == [0, 1, 2, 3]


def test_the_budget_holds_whenever_it_can_and_is_the_best_feasible_list() -> None:
    rng = np.random.default_rng(1)
    for trial in range(300):
        n, k = int(rng.integers(3, 9)), int(rng.integers(1, 4))
        scores, cost = random_list(rng, n)
        if trial % 5 == 0:
            cost = np.round(cost, 1)  # ties in cost
        budget = float(rng.uniform(0.0, 0.3))
        rule = CostRule(lam=float(rng.choice([0.0, 0.5])), max_mean_cost=budget)
        got = rerank(scores, cost, k, rule, 0.1).tolist()
        assert len(got) == len(set(got)) == min(k, n)
        best = lexicographic_best(scores - rule.lam * cost / 0.1, cost, min(k, n), budget * min(k, n))
        if best is None:  # infeasible: the k cheapest
            assert sorted(cost[got]) == sorted(np.sort(cost)[:k])
        else:
            assert cost[got].mean() <= budget + 1e-12
            assert got == best, (scores, cost, k, budget)


def test_a_budget_the_top_k_already_meet_changes_nothing() -> None:
    rng = np.random.default_rng(2)
    scores, cost = random_list(rng, 120)
    plain = rerank(scores, cost, 20, CostRule(lam=0.3), 0.1)
    for budget in (1e9, float(cost[plain].mean())):
        assert (
            rerank(scores, cost, 20, CostRule(lam=0.3, max_mean_cost=budget), 0.1).tolist() == plain.tolist()
        )


def test_an_infeasible_budget_serves_the_cheapest_set_in_score_order() -> None:
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    cost = np.array([0.9, 0.3, 0.5, 0.1, 0.3])
    got = rerank(scores, cost, 3, CostRule(max_mean_cost=0.01), 1.0).tolist()
    assert got == [1, 3, 4]  # the three cheapest (0.3 tie: both 0.3s fit), best first


def test_tight_budget_swaps_only_what_it_must() -> None:
    scores = np.array([5.0, 4.0, 3.0, 2.0])
    cost = np.array([0.5, 0.5, 0.5, 0.1])
    # Mean ≤ 0.3 over 2 slots = 0.6 total: the best (0.5) plus the cheap one (0.1), never two cheap ones.
    assert rerank(scores, cost, 2, CostRule(max_mean_cost=0.3), 1.0).tolist() == [0, 3]


def test_unknown_costs_are_charged_the_given_price_and_must_be_priced() -> None:
    scores = np.array([2.0, 1.0, 0.0])
    cost = np.array([np.nan, 0.2, 0.2])
    with pytest.raises(ValueError, match="unknown_cost"):
        rerank(scores, cost, 2, CostRule(lam=1.0), 1.0)
    assert rerank(scores, cost, 1, CostRule(lam=1.0), 1.0, unknown_cost=0.0).tolist() == [0]
    assert rerank(scores, cost, 1, CostRule(lam=1.0), 1.0, unknown_cost=5.0).tolist() == [1]
    budget = CostRule(max_mean_cost=0.2)
    assert rerank(scores, cost, 2, budget, 1.0, unknown_cost=5.0).tolist() == [1, 2]


def test_rule_validation() -> None:
    for bad in ({"lam": -1}, {"max_mean_cost": -0.1}, {"max_mean_cost": float("inf")}, {"colour": 1}):
        with pytest.raises(ValidationError):
            CostRule.model_validate(bad)
    assert CostRule(lam=0.5, max_mean_cost=0.12).label == "λ=0.5 budget≤0.120"
    with pytest.raises(ValueError, match="k must be"):
        rerank(np.zeros(3), np.zeros(3), 0, CostRule(), 1.0)


def test_one_request_is_fast() -> None:
    rng = np.random.default_rng(3)
    scores, cost = random_list(rng, 120)
    base = float(cost[np.argsort(-scores)[:20]].mean())
    for rule in (CostRule(lam=0.5), CostRule(lam=0.5, max_mean_cost=0.6 * base)):
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(200):
                rerank(scores, cost, 20, rule, 0.1)
            best = min(best, (time.perf_counter() - t0) / 200)
        assert best < 0.2e-3, (rule, best)


# --- many lists -------------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [None, 0.08, 0.12, 0.0])
def test_grouped_equals_a_loop_over_lists(budget: float | None) -> None:
    rng = np.random.default_rng(4)
    sizes = rng.integers(1, 40, size=60)
    users = rng.permutation(np.repeat(np.arange(60) * 7, sizes))  # rows of a user scattered
    scores = np.round(rng.normal(size=len(users)), 1)  # ties in score
    cost = rng.lognormal(-2.0, 0.8, size=len(users))
    cost[rng.random(len(users)) < 0.05] = np.nan
    rule = CostRule(lam=0.4, max_mean_cost=budget)
    got = rerank_grouped(users, scores, cost, 10, rule, 0.1, unknown_cost=0.5)
    expected: list[int] = []
    for u in np.unique(users):
        rows = np.flatnonzero(users == u)
        expected.extend(rows[rerank(scores[rows], cost[rows], 10, rule, 0.1, unknown_cost=0.5)])
    assert got.tolist() == expected


def test_grouped_handles_ten_thousand_users_in_seconds() -> None:
    rng = np.random.default_rng(5)
    users = np.repeat(np.arange(10_000), 120)
    scores, cost = random_list(rng, len(users))
    t0 = time.perf_counter()
    rows = rerank_grouped(users, scores, cost, 20, CostRule(lam=0.2, max_mean_cost=0.1), 0.1)
    assert time.perf_counter() - t0 < 5.0
    assert len(rows) == 200_000
    per_user = pd.Series(cost[rows]).groupby(users[rows]).mean()
    assert (per_user <= 0.1 + 1e-12).all()


# --- operating points, fronts, the choice -----------------------------------------------------


def point(
    lam: float, budget: float | None, ndcg: float, cost: float, watches: float = 0, paid: float = 0
) -> OperatingPoint:
    return OperatingPoint(CostRule(lam=lam, max_mean_cost=budget), ndcg, cost, watches, paid)


POINTS = [
    point(0.0, None, 0.100, 0.20, 100, 20.0),  # baseline
    point(0.5, None, 0.097, 0.16, 98, 15.0),
    point(1.0, None, 0.090, 0.12, 90, 11.0),
    point(0.0, 0.15, 0.096, 0.15, 97, 16.0),  # cheapest within 5%
    point(0.0, 0.17, 0.094, 0.17, 95, 16.5),  # dominated by λ=0.5 and the 0.15 budget
    point(2.0, None, 0.060, 0.12, 60, 7.0),  # same cost as λ=1 and worse: dominated
]


def test_pareto_fronts_on_a_hand_example() -> None:
    assert [p.rule.label for p in pareto_front(POINTS)] == [
        "λ=1",
        "λ=0 budget≤0.150",
        "λ=0.5",
        "λ=0",
    ]
    assert [p.rule.label for p in pareto_front(POINTS, "watches")] == [
        "λ=2",
        "λ=1",
        "λ=0.5",
        "λ=0",
    ]


def test_choose_takes_the_cheapest_point_within_the_allowed_ndcg_loss() -> None:
    choice = choose(POINTS)
    assert choice.point.rule == CostRule(max_mean_cost=0.15)
    assert choice.cost_cut == pytest.approx(0.25) and choice.baseline_cost == 0.20
    assert choose(POINTS, max_loss=0.11).point.rule == CostRule(lam=1.0)
    assert choose(POINTS, max_loss=0.0).point.rule == CostRule()
    assert choose(POINTS, baseline_ndcg=0.1, max_loss=0.05, baseline_cost=0.3).cost_cut == pytest.approx(0.5)
    assert "cheapest" in BUSINESS_RULE and choice.as_dict()["cost_cut"] == choice.cost_cut
    with pytest.raises(ValueError, match="no λ = 0"):
        choose(POINTS[1:])


def test_candidate_rules_cover_the_lambda_grid_and_the_budgets() -> None:
    rules = candidate_rules([0.5, 1.0], 0.2, fractions=(0.5, 1.0))
    assert [r.label for r in rules] == ["λ=0", "λ=0.5", "λ=1", "λ=0 budget≤0.100", "λ=0 budget≤0.200"]
    assert len(candidate_rules([0.5], 0.2, fractions=(0.5,), cross=True)) == 2 + 2


def test_operating_points_from_candidate_rows(tmp_path: Path) -> None:
    users = np.array([1, 1, 1, 2, 2, 2])
    items = np.array(["a", "b", "c", "a", "b", "d"])
    scores = np.array([3.0, 2.0, 1.0, 3.0, 2.0, 1.0])
    cost = pd.Series({"a": 0.5, "b": 0.1, "c": 0.1})  # d unknown
    truth = pd.DataFrame({"user_id": [1, 1, 2], "movie_id": ["a", "c", "d"], "gain": [2.0, 1.0, 1.0]})
    lists = rule_lists(
        users, items, scores, np.array([0.5, 0.1, 0.1, 0.5, 0.1, np.nan]), CostRule(), 1.0, 0.9, k=2
    )
    assert lists[["user_id", "movie_id", "rank"]].values.tolist() == [
        [1, "a", 1],
        [1, "b", 2],
        [2, "a", 1],
        [2, "b", 2],
    ]
    base, cheap = evaluate_rules(
        [CostRule(), CostRule(max_mean_cost=0.1)], users, items, scores, truth, cost, 1.0, 0.9, k=2
    )
    assert (base.watches, base.cost_paid) == (1.0, 0.5) and base.cost20 == pytest.approx(0.3)
    # User 1 fits [b, c] in 0.2; user 2 cannot (cheapest pair 0.6): its two cheapest, a and b.
    assert (
        cheap.cost20 == pytest.approx(0.2) and cheap.watches == 1.0 and cheap.cost_paid == pytest.approx(0.1)
    )
    assert cheap.ndcg20 < base.ndcg20
    direct = operating_point(CostRule(), lists, truth, cost, 0.9, k=2)
    assert direct == base
    png = plot_fronts([base, cheap], choose([base, cheap], max_loss=0.9), tmp_path / "fronts.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
