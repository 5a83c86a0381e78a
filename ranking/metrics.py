"""Offline ranking metrics: pandas frames in, floats out, column names as defaulted parameters.

Conventions shared by every frame metric here (Microsoft Recommenders style, recs first):

- `recs` holds one row per recommended (user, movie) with a `rank` column (1 is best) or,
  when it has none, a `score` column (higher is better). Only the order matters: positions
  are recomputed 1..n per user (ties keep input order), a repeated (user, movie) keeps its
  best position, and only positions 1..k count.
- `truth` holds the held-out (user, movie) pairs. With a `gain` column a pair is relevant
  when gain > `relevance_threshold` (default 0) and its gain grades it for NDCG; without
  one every row is relevant with gain 1. A repeated pair keeps its largest gain.
- Averaging is per user, then the mean over users with at least one relevant movie. Users
  with none are skipped (there is nothing to find, so every metric is undefined for them);
  users with relevant movies but no recommendations count as 0, so a generator cannot look
  better by staying silent. With no user to evaluate the result is NaN, not 0.
- `k` larger than a list: precision still divides by k (empty slots are misses); recall,
  MAP and NDCG only see the movies that are there.

Definitions (rel_i is the gain of the movie at position i, 0 when not relevant):
DCG@k = sum_{i<=k} (2**rel_i - 1) / log2(i + 1); IDCG@k is the DCG of the user's relevant
movies sorted by gain; NDCG@k = DCG@k / IDCG@k. Precision@k = hits / k; Recall@k = hits /
relevant; AP@k = sum over hit positions i of precision@i, divided by min(k, relevant).

Everything is vectorised (sort, merge, group-by): thousands of users x 20 movies evaluate in
milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from ranking.columns import GAIN, ITEM, RANK, SCORE, USER

DEFAULT_K: Final = 20
"""List length the service answers with, the default cut-off of every metric."""

_POS: Final = "__position"
"""Scratch column: 1-based position of a movie in a user's list."""
_REL: Final = "__relevance"
"""Scratch column: graded relevance of a held-out pair."""


def top_k_positions(
    recs: pd.DataFrame,
    k: int | None = DEFAULT_K,
    col_user: str = USER,
    col_item: str = ITEM,
    col_rank: str = RANK,
    col_prediction: str = SCORE,
) -> pd.DataFrame:
    """Each user's first k distinct movies with their 1-based position (column `__position`)."""
    if k is not None and k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if col_rank in recs.columns:
        key, ascending = col_rank, True
    elif col_prediction in recs.columns:
        key, ascending = col_prediction, False
    else:
        raise KeyError(f"recs need a {col_rank!r} or {col_prediction!r} column")
    df = recs[[col_user, col_item, key]].sort_values(
        [col_user, key], ascending=[True, ascending], kind="stable"
    )
    df = df.drop_duplicates([col_user, col_item], keep="first")
    df = df.assign(**{_POS: df.groupby(col_user, sort=False).cumcount().to_numpy() + 1})
    if k is not None:
        df = df[df[_POS] <= k]
    return df[[col_user, col_item, _POS]]


def _relevant(
    truth: pd.DataFrame, col_user: str, col_item: str, col_relevance: str, threshold: float
) -> pd.DataFrame:
    """Relevant held-out pairs with their gain (column `__relevance`), one row per pair."""
    if col_relevance in truth.columns:
        df = truth[[col_user, col_item, col_relevance]].rename(columns={col_relevance: _REL})
        df = df[df[_REL] > threshold]
    else:
        df = truth[[col_user, col_item]].assign(**{_REL: 1.0})
    return df.groupby([col_user, col_item], sort=False)[_REL].max().reset_index()


@dataclass(frozen=True)
class _Joined:
    """Top-k recommendations joined to the relevant held-out pairs; one per metric call."""

    hits: pd.DataFrame
    """Relevant movies found in the first k: user, movie, `__position`, `__relevance`."""
    relevant: pd.DataFrame
    """Relevant held-out pairs: user, movie, `__relevance`."""
    n_relevant: pd.Series
    """Relevant movies per evaluable user (its index is the set of evaluable users)."""
    k: int
    """Cut-off."""
    col_user: str
    """User column of both frames."""

    @classmethod
    def of(
        cls,
        recs: pd.DataFrame,
        truth: pd.DataFrame,
        k: int,
        col_user: str,
        col_item: str,
        col_rank: str,
        col_prediction: str,
        col_relevance: str,
        threshold: float,
    ) -> _Joined:
        """Join the first k of `recs` to the relevant pairs of `truth`."""
        top = top_k_positions(recs, k, col_user, col_item, col_rank, col_prediction)
        rel = _relevant(truth, col_user, col_item, col_relevance, threshold)
        hits = top.merge(rel, on=[col_user, col_item], how="inner")
        return cls(hits, rel, rel.groupby(col_user).size(), k, col_user)

    def _per_user(self, values: pd.Series) -> pd.Series:
        """A per-user sum aligned on the evaluable users, 0 for users without a hit."""
        return values.reindex(self.n_relevant.index, fill_value=0.0).astype("float64")

    def precision(self) -> float:
        """Mean hits / k."""
        return _mean(self._per_user(self.hits.groupby(self.col_user).size()) / self.k)

    def recall(self) -> float:
        """Mean hits / relevant."""
        return _mean(self._per_user(self.hits.groupby(self.col_user).size()) / self.n_relevant)

    def map(self) -> float:
        """Mean AP@k, AP divided by min(k, relevant)."""
        hits = self.hits.sort_values([self.col_user, _POS], kind="stable")
        n_hit = hits.groupby(self.col_user, sort=False).cumcount().to_numpy() + 1
        precision = pd.Series(n_hit / hits[_POS].to_numpy(), index=hits[self.col_user].to_numpy())
        ap_sum = self._per_user(precision.groupby(level=0).sum())
        return _mean(ap_sum / np.minimum(self.n_relevant, self.k))

    def ndcg(self) -> float:
        """Mean DCG@k / IDCG@k over users whose IDCG is positive."""
        return _mean(self.ndcg_per_user())

    def ndcg_per_user(self) -> pd.Series:
        """DCG@k / IDCG@k of every user whose IDCG is positive (index: user)."""
        user = self.col_user
        gains = np.exp2(self.hits[_REL].to_numpy()) - 1.0
        dcg = pd.Series(gains / np.log2(self.hits[_POS].to_numpy() + 1.0), index=self.hits[user].to_numpy())
        ideal = self.relevant.sort_values([user, _REL], ascending=[True, False], kind="stable")
        ideal_pos = ideal.groupby(user, sort=False).cumcount().to_numpy() + 1
        keep = ideal_pos <= self.k
        ideal_gain = (np.exp2(ideal[_REL].to_numpy()[keep]) - 1.0) / np.log2(ideal_pos[keep] + 1.0)
        idcg = pd.Series(ideal_gain, index=ideal[user].to_numpy()[keep]).groupby(level=0).sum()
        idcg = idcg[idcg > 0]
        dcg_sum = dcg.groupby(level=0).sum().reindex(idcg.index, fill_value=0.0).astype("float64")
        per_user: pd.Series = dcg_sum / idcg
        return per_user


def _mean(per_user: pd.Series) -> float:
    """Mean over users, NaN when there is no user to evaluate."""
    return float(per_user.mean()) if len(per_user) else math.nan


def precision_at_k(
    recs: pd.DataFrame,
    truth: pd.DataFrame,
    k: int = DEFAULT_K,
    col_user: str = USER,
    col_item: str = ITEM,
    col_rank: str = RANK,
    col_prediction: str = SCORE,
    col_relevance: str = GAIN,
    relevance_threshold: float = 0.0,
) -> float:
    """Mean share of the k slots that hold a relevant movie (empty slots are misses)."""
    return _Joined.of(
        recs, truth, k, col_user, col_item, col_rank, col_prediction, col_relevance, relevance_threshold
    ).precision()


def recall_at_k(
    recs: pd.DataFrame,
    truth: pd.DataFrame,
    k: int = DEFAULT_K,
    col_user: str = USER,
    col_item: str = ITEM,
    col_rank: str = RANK,
    col_prediction: str = SCORE,
    col_relevance: str = GAIN,
    relevance_threshold: float = 0.0,
) -> float:
    """Mean share of each user's relevant movies found in their first k."""
    return _Joined.of(
        recs, truth, k, col_user, col_item, col_rank, col_prediction, col_relevance, relevance_threshold
    ).recall()


def map_at_k(
    recs: pd.DataFrame,
    truth: pd.DataFrame,
    k: int = DEFAULT_K,
    col_user: str = USER,
    col_item: str = ITEM,
    col_rank: str = RANK,
    col_prediction: str = SCORE,
    col_relevance: str = GAIN,
    relevance_threshold: float = 0.0,
) -> float:
    """Mean average precision at k, each user's AP divided by min(k, relevant movies)."""
    return _Joined.of(
        recs, truth, k, col_user, col_item, col_rank, col_prediction, col_relevance, relevance_threshold
    ).map()


def ndcg_at_k(
    recs: pd.DataFrame,
    truth: pd.DataFrame,
    k: int = DEFAULT_K,
    col_user: str = USER,
    col_item: str = ITEM,
    col_rank: str = RANK,
    col_prediction: str = SCORE,
    col_relevance: str = GAIN,
    relevance_threshold: float = 0.0,
) -> float:
    """Mean NDCG at k with graded gains: DCG = sum((2**rel - 1) / log2(position + 1))."""
    return _Joined.of(
        recs, truth, k, col_user, col_item, col_rank, col_prediction, col_relevance, relevance_threshold
    ).ndcg()


def ndcg_per_user(
    recs: pd.DataFrame, truth: pd.DataFrame, k: int = DEFAULT_K, col_user: str = USER, col_item: str = ITEM
) -> pd.Series:
    """NDCG at k of every user with a relevant held-out movie (index: user id; 0 for users without a hit)."""
    return _Joined.of(recs, truth, k, col_user, col_item, RANK, SCORE, GAIN, 0.0).ndcg_per_user()


def ranking_metrics(
    recs: pd.DataFrame,
    truth: pd.DataFrame,
    k: int = DEFAULT_K,
    col_user: str = USER,
    col_item: str = ITEM,
    col_rank: str = RANK,
    col_prediction: str = SCORE,
    col_relevance: str = GAIN,
    relevance_threshold: float = 0.0,
) -> dict[str, float]:
    """All four accuracy metrics at k in one dict (`ndcg@k`, `map@k`, `precision@k`, `recall@k`), one join."""
    joined = _Joined.of(
        recs, truth, k, col_user, col_item, col_rank, col_prediction, col_relevance, relevance_threshold
    )
    return {
        f"ndcg@{k}": joined.ndcg(),
        f"map@{k}": joined.map(),
        f"precision@{k}": joined.precision(),
        f"recall@{k}": joined.recall(),
    }


def catalog_coverage(
    recs: pd.DataFrame,
    n_items: int,
    k: int | None = DEFAULT_K,
    col_user: str = USER,
    col_item: str = ITEM,
    col_rank: str = RANK,
    col_prediction: str = SCORE,
) -> float:
    """Share of the catalogue's `n_items` movies that appear in some user's first k (None: all)."""
    if n_items < 1:
        raise ValueError(f"n_items must be at least 1, got {n_items}")
    top = top_k_positions(recs, k, col_user, col_item, col_rank, col_prediction)
    return float(top[col_item].nunique() / n_items)


def mean_cost_at_k(
    recs: pd.DataFrame,
    cost_by_item: Mapping[str, float] | pd.Series,
    k: int = DEFAULT_K,
    missing_cost: float | None = None,
    col_user: str = USER,
    col_item: str = ITEM,
    col_rank: str = RANK,
    col_prediction: str = SCORE,
) -> float:
    """Mean license cost (USD per play) over all recommended slots in the users' first k.

    Every slot weighs the same (the cost a play of a uniformly chosen recommendation would
    incur). A movie without a known cost raises ValueError unless `missing_cost` says what
    to charge for it, so an incomplete price list never silently lowers the figure. NaN when
    there is no recommendation at all.
    """
    top = top_k_positions(recs, k, col_user, col_item, col_rank, col_prediction)
    if top.empty:
        return math.nan
    costs = cost_by_item if isinstance(cost_by_item, pd.Series) else pd.Series(dict(cost_by_item))
    charged = top[col_item].map(costs.astype("float64"))
    unknown = charged.isna()
    if unknown.any():
        if missing_cost is None:
            sample = sorted(set(top.loc[unknown, col_item]))[:5]
            raise ValueError(f"{int(unknown.sum())} recommended slots have no cost, e.g. {sample}")
        charged = charged.fillna(missing_cost)
    return float(charged.mean())


def ndcg_of_ranking(
    ranked_items: Sequence[str], relevance_by_item: Mapping[str, float], k: int = DEFAULT_K
) -> float:
    """NDCG at k of one user's list against graded relevance (e.g. the simulator's ground truth).

    Same DCG as `ndcg_at_k`. Movies missing from `relevance_by_item` or with relevance <= 0
    gain nothing; a repeated movie gains only at its first position (the later slot is
    wasted, as it would be on screen). NaN when the user has no relevant movie.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    ideal = sorted((g for g in relevance_by_item.values() if g > 0), reverse=True)[:k]
    if not ideal:
        return math.nan
    idcg = sum((math.exp2(g) - 1.0) / math.log2(i + 2) for i, g in enumerate(ideal))
    seen: set[str] = set()
    dcg = 0.0
    for i, item in enumerate(ranked_items[:k]):
        gain = relevance_by_item.get(item, 0.0)
        if item not in seen and gain > 0:
            dcg += (math.exp2(gain) - 1.0) / math.log2(i + 2)
        seen.add(item)
    return dcg / idcg
