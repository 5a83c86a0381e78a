"""The test-cut-off comparison: every baseline policy, the ranker (λ = 0 and its cost rule), the oracle, the verdict.

Every list is the one the service would serve at the test cut-off: baselines through
`CandidateIndex.generator_list`, the ranker through the same candidates and features as
`CandidateIndex.candidates` gives the service (see `ranking.dataset`). Users are the test
users (those the oracle knows when there is one). What was absent (oracle, license costs,
movie metadata) is recorded, so a report on a bare log says what it could not judge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ranking import columns as C  # noqa: N812 (the Recommenders idiom)
from ranking.candidate_index import GENERATORS, POLICIES, CandidateIndex
from ranking.candidates.merge import MISSING_RANK
from ranking.cost_policy import CostRule
from ranking.evaluate import (
    K,
    ModelScores,
    OracleFn,
    model_lists,
    policy_lists,
    request_latency_ms,
    score_lists,
    seen_sets,
)
from ranking.metrics import ndcg_per_user
from ranking.ranker import Ranker
from ranking.verdict import Verdict, decide


@dataclass
class Comparison:
    """What the test-cut-off comparison found."""

    scores: list[ModelScores]
    verdict: Verdict
    candidate_recall: dict[str, float]
    absent: list[str]
    users: int
    per_user: dict[str, pd.Series] = field(default_factory=dict)
    lists: dict[str, pd.DataFrame] = field(default_factory=dict)
    cost_test: dict[str, Any] = field(default_factory=dict)
    """The cost rules' operating points on test and the business rule's pick there (`cost_rule.test_cost_cut`)."""


def candidate_recall(cands: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    """Share of held-out positives each generator's own candidates hold, and the merged set (their union)."""
    positives = truth[truth[C.GAIN] > 0][[C.USER, C.ITEM]].drop_duplicates()
    if positives.empty:
        return {g: float("nan") for g in (*GENERATORS, "merged")}
    hit = positives.merge(cands, on=[C.USER, C.ITEM], how="left")
    out = {g: float((hit[f"rank_{g}"].fillna(MISSING_RANK) < MISSING_RANK).mean()) for g in GENERATORS}
    out["merged"] = float(hit[f"rank_{GENERATORS[0]}"].notna().mean())
    return out


def compare(
    test: Any,
    truth: pd.DataFrame,
    index: CandidateIndex,
    rankers: dict[str, tuple[Ranker, CostRule]],
    cost: pd.Series,
    absent: list[str],
    oracle: OracleFn | None = None,
    extra: dict[str, dict[str, float]] | None = None,
) -> Comparison:
    """Score baselines, each ranker at λ = 0 and under its cost rule (`rankers`: name -> (ranker, rule)), the oracle.

    The verdict compares the first ranker under its cost rule (what would be served) with the best baseline, per user.
    """
    users = np.asarray(sorted(set(test.frame[C.USER])), dtype=np.int64)
    at = pd.Timestamp(test.splits[-1].cutoff) if test.splits else pd.Timestamp.now(tz="UTC")
    oracle_recs = oracle(users, seen_sets(index, users, test.recent), K, at) if oracle is not None else None
    if oracle_recs is not None:
        # Every model is judged on the users the ground truth knows, so shares of the oracle compare like with like.
        users = np.asarray(sorted(set(oracle_recs[C.USER])), dtype=np.int64)
    truth_eval = truth[truth[C.USER].isin(users)]
    n_items = max(1, len(index.items))
    scores: list[ModelScores] = []
    per_user: dict[str, pd.Series] = {}
    lists: dict[str, pd.DataFrame] = {}

    def add(name: str, recs: pd.DataFrame, **figures: float) -> None:
        scores.append(score_lists(name, recs, truth_eval, n_items, cost, **figures))
        per_user[name] = ndcg_per_user(recs, truth_eval, K)
        lists[name] = recs

    baselines, times = policy_lists(index, users, test.recent, list(POLICIES))
    # All four lists of a user come from one call: each policy is charged that call's time.
    p50, p99 = (float(np.percentile(times, q)) for q in (50, 99)) if times else (float("nan"),) * 2
    for policy, recs in baselines.items():
        add(policy, recs, p50_ms=p50, p99_ms=p99, **(extra or {}).get(policy, {}))
    sub = _subset(test, users)
    served: dict[str, str] = {}
    for name, (ranker, rule) in rankers.items():
        p50, p99 = request_latency_ms(ranker, sub, rule)
        figures = {"p50_ms": p50, "p99_ms": p99, **(extra or {}).get(name, {})}
        add(f"{name} (λ=0)", model_lists(ranker, sub, CostRule()), **figures)
        served[name] = f"{name} (λ=0)"
        if rule != CostRule():
            served[name] = f"{name} ({rule.label})"
            add(served[name], model_lists(ranker, sub, rule), **figures)
    if oracle_recs is not None:
        add("oracle", oracle_recs)
        best = scores[-1].ndcg20
        for s in scores:
            s.share_of_oracle = s.ndcg20 / best if best > 0 else float("nan")
    verdict = decide(served[next(iter(rankers))], per_user, list(POLICIES))
    recall = candidate_recall(sub.frame, truth_eval)
    return Comparison(scores, verdict, recall, absent, len(users), per_user, lists)


def _subset(ex: Any, users: npt.NDArray[np.int64]) -> Any:
    """The example set's rows of `users` only (same object type, groups recomputed)."""
    from ranking.dataset import ExampleSet

    keep = ex.frame[C.USER].isin(users).to_numpy()
    frame = ex.frame[keep].reset_index(drop=True)
    groups = np.asarray(frame.groupby(C.USER, sort=False).size().to_numpy(), dtype=np.int64)
    return ExampleSet(frame, ex.x[keep], ex.y[keep], groups, ex.splits, ex.recent)
