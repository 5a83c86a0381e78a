"""Choosing how license cost enters the ranking, on the validation cut-off, by a stated business rule.

Operating points (`ranking.pareto.candidate_rules`): the penalty λ over `LAMBDAS` (score −
λ · cost / median cost) and a cap on the mean cost of the served list at fractions of the λ = 0
lists' mean cost (`ranking.cost_policy.rerank`), alone and with the small penalties `CROSS_LAMBDAS`. Each point's NDCG@20, mean list cost,
expected watches and cost paid are measured on the validation cut-off; `pareto.BUSINESS_RULE`
picks one, and the same rule on the test cut-off gives the reported cost cut. Without any known
license cost there is nothing to trade: λ = 0, no cap, and the report says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from ranking import columns as C  # noqa: N812 (the Recommenders idiom)
from ranking.cost_policy import CostRule
from ranking.pareto import Choice, OperatingPoint, candidate_rules, choose, evaluate_rules, plot_fronts
from ranking.ranker import Ranker

LAMBDAS: Final = [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
"""Cost-penalty weights swept on the validation cut-off."""
CROSS_LAMBDAS: Final = (0.01, 0.02, 0.05)
"""Small penalties also tried together with each cap (a mild penalty orders the list, the cap bounds its cost)."""


@dataclass
class CostChoice:
    """The chosen cost rule and the operating points it was chosen from."""

    rule: CostRule
    reason: str
    valid: list[OperatingPoint] = field(default_factory=list)
    choice: Choice | None = None

    @property
    def lam(self) -> float:
        """The chosen penalty weight."""
        return self.rule.lam

    @property
    def budget(self) -> float | None:
        """The chosen cap on the mean list cost (None: no cap)."""
        return self.rule.max_mean_cost


def sweep(
    ranker: Ranker, ex: Any, truth: pd.DataFrame, cost: pd.Series, base_cost20: float | None = None
) -> list[OperatingPoint]:
    """Every candidate rule's operating point on one example set (budgets relative to its λ = 0 lists)."""
    frame = ex.frame
    scores = ranker.score(ex.x)
    users, items = frame[C.USER].to_numpy(), frame[C.ITEM].to_numpy()
    meta = ranker.meta
    assumed = meta.cost_scale if meta.unknown_cost is None else meta.unknown_cost
    args = (users, items, scores, truth, cost, meta.cost_scale, assumed)
    if base_cost20 is None:
        base_cost20 = evaluate_rules([CostRule()], *args)[0].cost20
    rules = candidate_rules(LAMBDAS, base_cost20)
    caps = sorted({r.max_mean_cost for r in rules if r.max_mean_cost is not None})
    rules += [CostRule(lam=lam, max_mean_cost=cap) for lam in CROSS_LAMBDAS for cap in caps]
    return evaluate_rules(rules, *args)


def choose_cost_rule(
    ranker: Ranker, valid: Any, truth: pd.DataFrame, cost: pd.Series, costs_absent: bool
) -> CostChoice:
    """Sweep the rules on the validation set and apply the business rule (no penalty when no cost is known)."""
    if costs_absent:
        return CostChoice(
            CostRule(), "no license cost is known: nothing to trade against relevance, λ = 0, no cap"
        )
    points = sweep(ranker, valid, truth, cost)
    choice = choose(points)
    rule = choice.point.rule
    return CostChoice(
        rule,
        f"{rule.label}: cuts the validation lists' mean cost by {choice.cost_cut:.0%} at NDCG@20 "
        f"{choice.point.ndcg20:.4f} vs {choice.baseline_ndcg:.4f} at λ = 0",
        points,
        choice,
    )


def test_cost_cut(
    ranker: Ranker, test: Any, truth: pd.DataFrame, cost: pd.Series, path: Path
) -> dict[str, Any]:
    """The business rule applied on the test cut-off: its Pareto fronts (PNG) and the largest cost cut within 5%."""
    points = sweep(ranker, test, truth, cost)
    choice = choose(points)
    plot_fronts(points, choice, path)
    return {"points": [p.as_dict() for p in points], **choice.as_dict(),
            "cost_cut_at_5pct_ndcg_loss": float(np.round(choice.cost_cut, 6))}  # fmt: skip
