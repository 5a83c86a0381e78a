"""Offline comparison on the test cut-off: the baseline policies, LambdaRank (with the cost rule) and an oracle.

Every model ranks for the same users at the same cut-off and is scored against the same
graded labels of the following window: NDCG@20, recall@20, MAP@20, catalogue coverage, mean
license cost of the top 20, training time, per-request inference time and model size.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ranking import columns as C  # noqa: N812 (the Recommenders idiom)
from ranking.candidate_index import CandidateIndex
from ranking.cost_policy import CostRule, rerank, rerank_grouped
from ranking.dataset import ExampleSet
from ranking.metrics import catalog_coverage, map_at_k, mean_cost_at_k, ndcg_at_k, recall_at_k
from ranking.ranker import Ranker
from ranking.transforms import model_matrix, unknown_cost

K = 20
OracleFn = Callable[[npt.NDArray[np.int64], dict[int, set[str]], int, pd.Timestamp], pd.DataFrame]
"""(users, already-seen movies, k, as-of time) -> the ground truth's best k per user (user_id, movie_id, rank),
among movies released by then."""


@dataclass
class ModelScores:
    """One row of the comparison table."""

    model: str
    ndcg20: float
    recall20: float
    map20: float
    coverage: float
    cost20: float
    train_seconds: float = float("nan")
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    size_bytes: int = 0
    share_of_oracle: float = float("nan")

    def as_dict(self) -> dict[str, float | str | int]:
        """Plain dict for JSON."""
        return asdict(self)


def score_lists(
    name: str, recs: pd.DataFrame, truth: pd.DataFrame, n_items: int, cost: pd.Series, **extra: float
) -> ModelScores:
    """Metrics of top-k lists (user_id, movie_id, rank) against graded truth (user_id, movie_id, gain)."""
    return ModelScores(
        name,
        ndcg_at_k(recs, truth, K),
        recall_at_k(recs, truth, K),
        map_at_k(recs, truth, K),
        catalog_coverage(recs, n_items, K),
        mean_cost_at_k(recs, cost, K, missing_cost=unknown_cost(cost)),
        **extra,  # type: ignore[arg-type]
    )


def model_lists(ranker: Ranker, ex: ExampleSet, rule: CostRule | float | None, k: int = K) -> pd.DataFrame:
    """The ranker's top k per user from the example set's candidates under a cost rule (a bare λ: no cap; None: the model's)."""
    frame = ex.frame
    if rule is None:
        rule = CostRule(lam=ranker.meta.default_lambda or 0.0, max_mean_cost=ranker.meta.default_cost_budget)
    elif not isinstance(rule, CostRule):
        rule = CostRule(lam=rule)
    meta = ranker.meta
    assumed = meta.cost_scale if meta.unknown_cost is None else meta.unknown_cost
    scores = ranker.score(ex.x)
    users = frame[C.USER].to_numpy()
    rows = rerank_grouped(users, scores, frame["movie_metadata__cost"].to_numpy(dtype=np.float64), k, rule,
                          meta.cost_scale, unknown_cost=assumed)  # fmt: skip
    u = users[rows]
    out = pd.DataFrame({C.USER: u, C.ITEM: frame[C.ITEM].to_numpy()[rows], C.SCORE: scores[rows]})
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]]) if len(u) else np.zeros(0, dtype=np.int64)
    out[C.RANK] = np.arange(len(u)) - np.repeat(starts, np.diff(np.r_[starts, len(u)])) + 1
    return out


def policy_lists(
    index: CandidateIndex,
    users: npt.NDArray[np.int64],
    recent: dict[int, list[str]],
    policies: list[str],
    k: int = K,
) -> tuple[dict[str, pd.DataFrame], list[float]]:
    """Each baseline policy's top k per user, exactly as `CandidateIndex.generator_lists` serves it,
    and the milliseconds each user's lists took."""
    parts: dict[str, tuple[list[Any], list[Any]]] = {p: ([], []) for p in policies}
    times = []
    for u in users:
        t0 = time.perf_counter()
        tops = index.generator_lists(policies, int(u), index.positions(recent.get(int(u), [])), k)
        times.append((time.perf_counter() - t0) * 1000)
        for p, top in tops.items():
            parts[p][0].append(np.full(len(top), u, dtype=np.int64))
            parts[p][1].append(index.items[top])
    out = {}
    for p, (us, items) in parts.items():
        user = np.concatenate(us) if us else np.empty(0, np.int64)
        rank = np.concatenate([np.arange(1, len(x) + 1) for x in items]) if items else np.empty(0, np.int64)
        out[p] = pd.DataFrame(
            {C.USER: user, C.ITEM: np.concatenate(items) if items else np.empty(0, object), C.RANK: rank,
             C.SCORE: -rank.astype(np.float64)}
        )  # fmt: skip
    return out, times


def seen_sets(
    index: CandidateIndex, users: npt.NDArray[np.int64], recent: dict[int, list[str]]
) -> dict[int, set[str]]:
    """What each user had watched as the index and their recent list know it (the oracle excludes it too)."""
    return {
        int(u): {str(m) for m in index.items[index.watched(int(u))]} | set(recent.get(int(u), []))
        for u in users
    }


def request_latency_ms(
    ranker: Ranker, ex: ExampleSet, rule: CostRule | None = None, n_users: int = 200
) -> tuple[float, float]:
    """p50/p99 of one request's scoring: transform the user's candidate rows, predict, apply the cost rule, top 20."""
    rule = rule or CostRule(lam=ranker.meta.default_lambda or 0.0)
    meta = ranker.meta
    assumed = meta.cost_scale if meta.unknown_cost is None else meta.unknown_cost
    frame = ex.frame
    bounds = np.concatenate([[0], np.cumsum(ex.groups)])
    now = float(frame["cutoff"].iloc[0].timestamp()) if len(frame) else 0.0
    times = []
    for g in range(min(n_users, len(ex.groups))):
        rows = frame.iloc[bounds[g] : bounds[g + 1]]
        t0 = time.perf_counter()
        x = model_matrix(rows, now)
        cost = rows["movie_metadata__cost"].to_numpy(dtype=np.float64)
        rerank(ranker.score(x), cost, K, rule, meta.cost_scale, unknown_cost=assumed)
        times.append((time.perf_counter() - t0) * 1000)
    if not times:
        return float("nan"), float("nan")
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def lambda_sweep(
    ranker: Ranker, ex: ExampleSet, truth: pd.DataFrame, cost: pd.Series, lambdas: list[float]
) -> pd.DataFrame:
    """NDCG@20 and mean top-20 cost for each λ on one example set."""
    rows = []
    n_items = max(1, len(cost))
    for lam in lambdas:
        s = score_lists(f"λ={lam}", model_lists(ranker, ex, lam), truth, n_items, cost)
        rows.append({"lambda": lam, "ndcg20": s.ndcg20, "cost20": s.cost20})
    return pd.DataFrame(rows)
