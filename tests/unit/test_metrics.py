"""Offline ranking metrics: hand-computed figures, edge cases, a per-user reference, and speed."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ranking import columns as C  # noqa: N812 (the Recommenders idiom: C.USER, C.ITEM)
from ranking.metrics import (
    catalog_coverage,
    map_at_k,
    mean_cost_at_k,
    ndcg_at_k,
    ndcg_of_ranking,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
)


def recs_frame(lists: dict[int, list[str]]) -> pd.DataFrame:
    """Recommendations with 1-based ranks in list order."""
    rows = [(u, m, r) for u, items in lists.items() for r, m in enumerate(items, start=1)]
    return pd.DataFrame(rows, columns=[C.USER, C.ITEM, C.RANK])


def truth_frame(gains: dict[int, dict[str, float]]) -> pd.DataFrame:
    """Held-out pairs with graded gains."""
    rows = [(u, m, g) for u, items in gains.items() for m, g in items.items()]
    return pd.DataFrame(rows, columns=[C.USER, C.ITEM, C.GAIN])


# User 1: a mixed list; user 2: a list shorter than k; user 3: no positive (skipped);
# user 4: positives but no recommendations (counts as 0).
RECS = recs_frame({1: ["a", "b", "c", "d"], 2: ["x", "y"], 3: ["a", "b"]})
TRUTH = truth_frame({1: {"a": 3, "c": 1, "e": 2}, 2: {"y": 1}, 3: {"a": 0}, 4: {"f": 2}})


def test_precision_divides_by_k_even_for_short_lists() -> None:
    expected = (2 / 3 + 1 / 3 + 0) / 3
    assert precision_at_k(RECS, TRUTH, k=3) == pytest.approx(expected)


def test_recall_by_hand() -> None:
    expected = (2 / 3 + 1 + 0) / 3
    assert recall_at_k(RECS, TRUTH, k=3) == pytest.approx(expected)


def test_map_by_hand() -> None:
    ap1 = (1 / 1 + 2 / 3) / 3  # hits at positions 1 and 3, min(k=3, 3 relevant)
    ap2 = (1 / 2) / 1  # hit at position 2, one relevant
    assert map_at_k(RECS, TRUTH, k=3) == pytest.approx((ap1 + ap2 + 0) / 3)


def test_ndcg_graded_by_hand() -> None:
    dcg1 = (2**3 - 1) / math.log2(2) + (2**1 - 1) / math.log2(4)
    idcg1 = (2**3 - 1) / math.log2(2) + (2**2 - 1) / math.log2(3) + (2**1 - 1) / math.log2(4)
    ndcg2 = (1 / math.log2(3)) / 1.0
    assert dcg1 / idcg1 == pytest.approx(0.798484, abs=1e-6)
    assert ndcg_at_k(RECS, TRUTH, k=3) == pytest.approx((dcg1 / idcg1 + ndcg2 + 0) / 3)


def test_ranking_metrics_bundles_the_four() -> None:
    got = ranking_metrics(RECS, TRUTH, k=3)
    assert got == {
        "ndcg@3": pytest.approx(ndcg_at_k(RECS, TRUTH, k=3)),
        "map@3": pytest.approx(map_at_k(RECS, TRUTH, k=3)),
        "precision@3": pytest.approx(precision_at_k(RECS, TRUTH, k=3)),
        "recall@3": pytest.approx(recall_at_k(RECS, TRUTH, k=3)),
    }


def test_perfect_and_worst_rankings() -> None:
    truth = truth_frame({1: {"a": 2, "b": 1}, 2: {"c": 1}})
    perfect = recs_frame({1: ["a", "b", "z"], 2: ["c", "z"]})
    worst = recs_frame({1: ["z", "y", "x"], 2: ["z", "y"]})
    assert ndcg_at_k(perfect, truth, k=3) == pytest.approx(1.0)
    assert map_at_k(perfect, truth, k=3) == pytest.approx(1.0)
    assert recall_at_k(perfect, truth, k=3) == pytest.approx(1.0)
    assert precision_at_k(perfect, truth, k=3) == pytest.approx((2 / 3 + 1 / 3) / 2)
    for metric in (ndcg_at_k, map_at_k, recall_at_k, precision_at_k):
        assert metric(worst, truth, k=3) == 0.0


def test_reversed_graded_order_loses_exactly_the_discount() -> None:
    truth = truth_frame({1: {"a": 2, "b": 1}})
    reversed_list = recs_frame({1: ["b", "a"]})
    dcg = 1 / math.log2(2) + 3 / math.log2(3)
    idcg = 3 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(reversed_list, truth, k=2) == pytest.approx(dcg / idcg)


def test_only_the_first_k_positions_count() -> None:
    truth = truth_frame({1: {"c": 1}})
    recs = recs_frame({1: ["a", "b", "c"]})
    assert recall_at_k(recs, truth, k=2) == 0.0
    assert recall_at_k(recs, truth, k=3) == 1.0


def test_k_larger_than_every_list() -> None:
    truth = truth_frame({1: {"a": 1, "b": 1}})
    recs = recs_frame({1: ["a", "b"]})
    assert recall_at_k(recs, truth, k=50) == 1.0
    assert ndcg_at_k(recs, truth, k=50) == pytest.approx(1.0)
    assert map_at_k(recs, truth, k=50) == pytest.approx(1.0)
    assert precision_at_k(recs, truth, k=50) == pytest.approx(2 / 50)


def test_users_without_positives_are_skipped_and_none_at_all_is_nan() -> None:
    only_zero = truth_frame({1: {"a": 0}, 2: {"b": 0}})
    recs = recs_frame({1: ["a"], 2: ["b"]})
    for metric in (ndcg_at_k, map_at_k, recall_at_k, precision_at_k):
        assert math.isnan(metric(recs, only_zero, k=5))
    # Adding a zero-gain user to a scored set leaves the figure unchanged.
    truth = truth_frame({1: {"a": 1}})
    assert ndcg_at_k(recs, pd.concat([truth, only_zero]), k=5) == ndcg_at_k(recs, truth, k=5)


def test_relevance_threshold_turns_graded_truth_binary() -> None:
    truth = truth_frame({1: {"a": 1, "b": 3}})
    recs = recs_frame({1: ["a", "b"]})
    assert recall_at_k(recs, truth, k=1) == pytest.approx(0.5)
    assert recall_at_k(recs, truth, k=1, relevance_threshold=2) == 0.0


def test_truth_without_gain_column_is_binary() -> None:
    truth = pd.DataFrame({C.USER: [1, 1], C.ITEM: ["a", "b"]})
    recs = recs_frame({1: ["b", "z", "a"]})
    expected = (1 / math.log2(2) + 1 / math.log2(4)) / (1 / math.log2(2) + 1 / math.log2(3))
    assert ndcg_at_k(recs, truth, k=3) == pytest.approx(expected)


def test_score_column_orders_when_rank_is_absent() -> None:
    truth = truth_frame({1: {"a": 1}})
    recs = pd.DataFrame({C.USER: [1, 1, 1], C.ITEM: ["z", "a", "y"], C.SCORE: [0.1, 0.9, 0.5]})
    assert precision_at_k(recs, truth, k=1) == 1.0


def test_duplicate_recommendations_count_once() -> None:
    truth = truth_frame({1: {"a": 1}})
    recs = pd.DataFrame({C.USER: [1, 1, 1], C.ITEM: ["a", "a", "b"], C.RANK: [1, 2, 3]})
    assert precision_at_k(recs, truth, k=2) == pytest.approx(1 / 2)  # positions: a=1, b=2
    assert recall_at_k(recs, truth, k=2) == 1.0


def test_custom_column_names() -> None:
    recs = pd.DataFrame({"u": [7, 7], "m": ["a", "b"], "r": [2, 1]})
    truth = pd.DataFrame({"u": [7], "m": ["b"], "rel": [2.0]})
    kwargs = {"col_user": "u", "col_item": "m", "col_rank": "r", "col_relevance": "rel"}
    assert ndcg_at_k(recs, truth, k=1, **kwargs) == pytest.approx(1.0)
    assert catalog_coverage(recs, 4, k=1, col_user="u", col_item="m", col_rank="r") == pytest.approx(1 / 4)


def test_catalog_coverage() -> None:
    recs = recs_frame({1: ["a", "b", "c"], 2: ["a", "d", "e"]})
    assert catalog_coverage(recs, n_items=10, k=2) == pytest.approx(3 / 10)  # a, b, d
    assert catalog_coverage(recs, n_items=10, k=None) == pytest.approx(5 / 10)
    with pytest.raises(ValueError):
        catalog_coverage(recs, n_items=0)


def test_mean_cost_at_k() -> None:
    recs = recs_frame({1: ["a", "b", "c"], 2: ["a"]})
    costs = {"a": 1.0, "b": 3.0, "c": 100.0}
    assert mean_cost_at_k(recs, costs, k=2) == pytest.approx((1 + 3 + 1) / 3)
    assert mean_cost_at_k(recs, pd.Series(costs), k=3) == pytest.approx((1 + 3 + 100 + 1) / 4)
    with pytest.raises(ValueError, match="no cost"):
        mean_cost_at_k(recs, {"a": 1.0}, k=2)
    assert mean_cost_at_k(recs, {"a": 1.0}, k=2, missing_cost=0.0) == pytest.approx(2 / 3)
    assert math.isnan(mean_cost_at_k(recs.iloc[0:0], costs))


def test_ndcg_of_ranking_by_hand() -> None:
    relevance = {"a": 3.0, "c": 1.0, "e": 2.0}
    dcg = 7 / math.log2(2) + 1 / math.log2(4)
    idcg = 7 / math.log2(2) + 3 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_of_ranking(["a", "b", "c", "d"], relevance, k=3) == pytest.approx(dcg / idcg)
    assert ndcg_of_ranking(["a", "e", "c"], relevance, k=3) == pytest.approx(1.0)
    assert ndcg_of_ranking(["x"], relevance, k=3) == 0.0
    assert math.isnan(ndcg_of_ranking(["a"], {"a": 0.0}, k=3))
    # A repeated movie gains once; its second slot is wasted.
    assert ndcg_of_ranking(["a", "a", "e"], relevance, k=3) == pytest.approx((7 + 3 / math.log2(4)) / idcg)
    with pytest.raises(ValueError):
        ndcg_of_ranking(["a"], relevance, k=0)


def _random_case(n_users: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random 20-item lists over 500 movies and random graded truth for `n_users` users."""
    rng = np.random.default_rng(seed)
    movies = np.array([f"m{i}" for i in range(500)], dtype=object)
    rec_items = np.concatenate([rng.choice(movies, 20, replace=False) for _ in range(n_users)])
    recs = pd.DataFrame(
        {
            C.USER: np.repeat(np.arange(n_users), 20),
            C.ITEM: rec_items,
            C.RANK: np.tile(np.arange(1, 21), n_users),
        }
    )
    n_truth = rng.integers(0, 15, n_users)
    truth = pd.DataFrame(
        {
            C.USER: np.repeat(np.arange(n_users), n_truth),
            C.ITEM: np.concatenate([rng.choice(movies[:100], n, replace=False) for n in n_truth]),
            C.GAIN: rng.integers(0, 5, int(n_truth.sum())),
        }
    )
    return recs, truth


def _reference(recs: pd.DataFrame, truth: pd.DataFrame, k: int) -> dict[str, float]:
    """The four metrics by plain per-user loops, straight from the definitions."""
    sums = {"ndcg": 0.0, "map": 0.0, "precision": 0.0, "recall": 0.0}
    users = 0
    for user, group in truth[truth[C.GAIN] > 0].groupby(C.USER):
        gains = dict(zip(group[C.ITEM], group[C.GAIN].astype(float), strict=True))
        ranked = recs.loc[recs[C.USER] == user].sort_values(C.RANK)[C.ITEM].tolist()[:k]
        hit_positions = [i for i, m in enumerate(ranked, start=1) if m in gains]
        users += 1
        sums["ndcg"] += ndcg_of_ranking(ranked, gains, k=k)
        sums["precision"] += len(hit_positions) / k
        sums["recall"] += len(hit_positions) / len(gains)
        ap = sum(n / pos for n, pos in enumerate(hit_positions, start=1))
        sums["map"] += ap / min(k, len(gains))
    return {f"{name}@{k}": total / users for name, total in sums.items()}


def test_vectorised_metrics_match_per_user_reference() -> None:
    recs, truth = _random_case(300, seed=1)
    expected = _reference(recs, truth, k=10)
    assert ranking_metrics(recs, truth, k=10) == pytest.approx(expected)
