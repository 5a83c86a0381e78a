"""Operating points of cost rules, their Pareto fronts, and the business rule that picks one.

An operating point is one `CostRule` evaluated on one example set (every user's k-list built
by `cost_policy.rerank_grouped`, scored against the held-out window):

- `ndcg20`: mean NDCG@20 (`metrics.ndcg_at_k`).
- `cost20`: mean list cost, the mean license cost over all served slots (`metrics.mean_cost_at_k`,
  USD per play): what a play of a uniformly chosen recommendation would cost.
- `watches`: expected watches, the number of (user, movie) pairs in the users' first k that the
  user went on to watch in the held-out window (truth gain > 0), summed over users. Offline, a
  recommended movie is "watched" exactly when it is such a hit.
- `cost_paid`: the summed license cost of those hits (unknown costs at `missing_cost`), the
  licence bill those expected watches would run up.

Two fronts are reported: NDCG@20 against mean list cost, and expected watches against cost paid;
a point is on a front when no other point is at least as good on both axes and better on one.
The choice is `BUSINESS_RULE` (see `choose`); its `cost_cut` is the benchmark's
`cost_cut_at_5pct_ndcg_loss`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from ranking import columns as C  # noqa: N812 (the Recommenders idiom)
from ranking.cost_policy import CostRule, rerank_grouped
from ranking.metrics import mean_cost_at_k, ndcg_at_k, top_k_positions

K = 20
BUDGET_FRACTIONS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
"""Default budgets, as multiples of the λ = 0 lists' mean list cost."""
BUSINESS_RULE = (
    "The cheapest operating point (lowest mean list cost) whose NDCG@20 is at least (1 − max_loss) times the "
    "λ = 0, no-budget point's (max_loss 5%); equal cost: the higher NDCG@20. cost_cut = 1 − its mean list cost "
    "/ the λ = 0 point's."
)


@dataclass(frozen=True)
class OperatingPoint:
    """One cost rule's offline figures: NDCG@20, mean list cost, expected watches and the cost they incur."""

    rule: CostRule
    ndcg20: float
    cost20: float
    watches: float
    cost_paid: float

    def as_dict(self) -> dict[str, float | str | None]:
        """Flat JSON-ready form (rule fields first)."""
        return {
            "rule": self.rule.label,
            "lam": self.rule.lam,
            "max_mean_cost": self.rule.max_mean_cost,
            "ndcg20": self.ndcg20,
            "cost20": self.cost20,
            "watches": self.watches,
            "cost_paid": self.cost_paid,
        }


@dataclass(frozen=True)
class Choice:
    """The point `choose` picked, the λ = 0 baseline it was measured against, and the cost cut."""

    point: OperatingPoint
    baseline_ndcg: float
    baseline_cost: float
    max_loss: float
    cost_cut: float
    """1 − point.cost20 / baseline_cost: the benchmark's `cost_cut_at_5pct_ndcg_loss`."""

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form, with the rule text."""
        return {
            "chosen": self.point.as_dict(),
            "baseline_ndcg20": self.baseline_ndcg,
            "baseline_cost20": self.baseline_cost,
            "max_ndcg_loss": self.max_loss,
            "cost_cut": self.cost_cut,
            "business_rule": BUSINESS_RULE,
        }


def rule_lists(
    users: npt.ArrayLike,
    items: npt.ArrayLike,
    scores: npt.NDArray[np.float64],
    cost: npt.NDArray[np.float64],
    rule: CostRule,
    cost_scale: float,
    unknown_cost: float,
    k: int = K,
) -> pd.DataFrame:
    """Every user's k-list under `rule` from candidate rows: `user_id`, `movie_id`, `score` (the model's), `rank`."""
    rows = rerank_grouped(users, scores, cost, k, rule, cost_scale, unknown_cost=unknown_cost)
    u = np.asarray(users)[rows]
    out = pd.DataFrame({C.USER: u, C.ITEM: np.asarray(items)[rows], C.SCORE: np.asarray(scores)[rows]})
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]]) if len(u) else np.zeros(0, dtype=np.int64)
    out[C.RANK] = np.arange(len(u)) - np.repeat(starts, np.diff(np.r_[starts, len(u)])) + 1
    return out


def operating_point(
    rule: CostRule, recs: pd.DataFrame, truth: pd.DataFrame, cost: pd.Series, missing_cost: float, k: int = K
) -> OperatingPoint:
    """Score lists (user_id, movie_id, rank) against graded truth (user_id, movie_id, gain); `cost` by movie id."""
    watched = truth[truth[C.GAIN] > 0] if C.GAIN in truth.columns else truth  # metrics' relevance convention
    watched = watched[[C.USER, C.ITEM]].drop_duplicates()
    hits = top_k_positions(recs, k).merge(watched, on=[C.USER, C.ITEM], how="inner")
    paid = hits[C.ITEM].map(cost.astype("float64")).fillna(missing_cost)
    return OperatingPoint(
        rule,
        ndcg_at_k(recs, truth, k),
        mean_cost_at_k(recs, cost, k, missing_cost=missing_cost),
        float(len(hits)),
        float(paid.sum()),
    )


def evaluate_rules(
    rules: Iterable[CostRule],
    users: npt.ArrayLike,
    items: npt.ArrayLike,
    scores: npt.NDArray[np.float64],
    truth: pd.DataFrame,
    cost: pd.Series,
    cost_scale: float,
    unknown_cost: float,
    k: int = K,
) -> list[OperatingPoint]:
    """One operating point per rule from the same candidate rows; each row's cost is looked up in `cost`."""
    mapped = pd.Series(np.asarray(items)).map(cost.astype("float64"))
    row_cost: npt.NDArray[np.float64] = np.asarray(mapped, dtype=np.float64)  # NaN where unknown
    return [
        operating_point(
            rule,
            rule_lists(users, items, scores, row_cost, rule, cost_scale, unknown_cost, k),
            truth,
            cost,
            unknown_cost,
            k,
        )
        for rule in rules
    ]


def candidate_rules(
    lambdas: Sequence[float],
    base_cost20: float,
    fractions: Sequence[float] = BUDGET_FRACTIONS,
    cross: bool = False,
) -> list[CostRule]:
    """The sweep: λ = 0 first, each λ without budget, then budgets `fraction · base_cost20` at λ = 0 (`cross`: at every λ).

    `base_cost20` is the mean list cost of the λ = 0, no-budget lists; a fraction of 1.0 is a
    budget those lists meet on average, but not every user's list does, so it still bites.
    """
    lams = sorted({0.0, *map(float, lambdas)})
    budgets = sorted({round(f * base_cost20, 6) for f in fractions})
    rules = [CostRule(lam=lam) for lam in lams]
    rules += [CostRule(lam=lam, max_mean_cost=b) for lam in (lams if cross else [0.0]) for b in budgets]
    return rules


def pareto_front(
    points: Sequence[OperatingPoint], axes: Literal["ndcg", "watches"] = "ndcg"
) -> list[OperatingPoint]:
    """Non-dominated points by cheapest cost; `ndcg`: NDCG@20 vs mean list cost, `watches`: watches vs cost paid."""

    def xy(p: OperatingPoint) -> tuple[float, float]:
        return (p.cost20, p.ndcg20) if axes == "ndcg" else (p.cost_paid, p.watches)

    def dominates(a: OperatingPoint, b: OperatingPoint) -> bool:
        (ca, va), (cb, vb) = xy(a), xy(b)
        return ca <= cb and va >= vb and (ca < cb or va > vb)

    front = [p for p in points if not any(dominates(q, p) for q in points)]
    unique = {xy(p): p for p in reversed(front)}  # exact duplicates: keep the first listed
    return sorted(unique.values(), key=lambda p: (xy(p)[0], -xy(p)[1]))


def baseline(points: Sequence[OperatingPoint]) -> OperatingPoint:
    """The λ = 0, no-budget point; ValueError when the sweep lacks it."""
    for p in points:
        if p.rule == CostRule():
            return p
    raise ValueError("no λ = 0, no-budget point among the operating points: the business rule needs it")


def choose(
    points: Sequence[OperatingPoint],
    baseline_ndcg: float | None = None,
    max_loss: float = 0.05,
    baseline_cost: float | None = None,
) -> Choice:
    """Apply BUSINESS_RULE; baseline figures default to the λ = 0, no-budget point's."""
    if not 0 <= max_loss < 1:
        raise ValueError(f"max_loss must be in [0, 1), got {max_loss}")
    if baseline_ndcg is None or baseline_cost is None:
        base = baseline(points)
        baseline_ndcg = base.ndcg20 if baseline_ndcg is None else baseline_ndcg
        baseline_cost = base.cost20 if baseline_cost is None else baseline_cost
    floor = (1 - max_loss) * baseline_ndcg
    eligible = [p for p in points if p.ndcg20 >= floor]
    if not eligible:
        raise ValueError(f"no operating point keeps NDCG@20 >= {floor:.6g}")
    best = min(eligible, key=lambda p: (p.cost20, -p.ndcg20))
    cut = 1.0 - best.cost20 / baseline_cost if baseline_cost > 0 else 0.0
    return Choice(best, baseline_ndcg, baseline_cost, max_loss, cut)


def plot_fronts(points: Sequence[OperatingPoint], choice: Choice, path: Path) -> Path:
    """PNG of both fronts (NDCG@20 vs mean list cost; expected watches vs cost paid), the choice circled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    panels = (
        ("ndcg", "mean license cost per served slot (USD per play)", "NDCG@20"),
        ("watches", "license cost of the expected watches (USD)", "expected watches (hits in the top 20)"),
    )
    for ax, (kind, xlabel, ylabel) in zip(axes, panels, strict=True):

        def xy(p: OperatingPoint, kind: str = kind) -> tuple[float, float]:
            return (p.cost20, p.ndcg20) if kind == "ndcg" else (p.cost_paid, p.watches)

        for p in points:
            marker = "s" if p.rule.max_mean_cost is not None else "o"
            ax.scatter(*xy(p), marker=marker, color="0.6", s=22)
            ax.annotate(p.rule.label, xy(p), fontsize=6, xytext=(3, 3), textcoords="offset points")
        front = pareto_front(points, "ndcg" if kind == "ndcg" else "watches")
        ax.plot(
            [xy(p)[0] for p in front], [xy(p)[1] for p in front], "-", color="tab:blue", label="Pareto front"
        )
        ax.scatter(*xy(choice.point), s=220, facecolors="none", edgecolors="red", linewidths=1.8,
                   label=f"chosen: {choice.point.rule.label} (cost cut {choice.cost_cut:.1%})")  # fmt: skip
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(alpha=0.3)
    axes[0].axhline((1 - choice.max_loss) * choice.baseline_ndcg, color="red", ls=":", lw=0.8)
    fig.suptitle("Cost rules: circles λ only, squares λ plus a list-cost budget", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
