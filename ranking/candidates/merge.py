"""Union of several generators' candidates, and the recall of a candidate set.

`merge_candidates` keeps one row per (user, movie) with:
- `candidate_source`: the generators that proposed it, joined by '|' in the order the frames
  were given (e.g. "als|pop");
- `rank_<source>` per generator (its own rank, `MISSING_RANK` when it did not propose the
  movie: a large constant the ranker can split on, identical in training and serving) and
  `score_<source>` (NaN when missing; LightGBM treats NaN as missing);
- `score` / `rank`: reciprocal-rank fusion, sum over sources of 1 / (rrf_k + rank). It
  needs no score calibration across generators and favours movies several sources agree on;
  it decides which `k_total` movies per user survive and gives the ranker a prior.
Movies in the user's `exclude` set are dropped (the generators already do it; this is a
net for frames built elsewhere).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from ranking.candidates.base import CANDIDATE_COLUMNS, Exclusions, empty_candidates, require_columns
from ranking.columns import GAIN, ITEM, RANK, SCORE, SOURCE, USER, rank_column, score_column
from ranking.metrics import recall_at_k as _per_user_recall
from ranking.metrics import top_k_positions

MISSING_RANK: Final = 10_000
"""Per-source rank of a movie the source did not propose (larger than any list it returns)."""
RRF_K: Final = 60.0
"""Reciprocal-rank-fusion damping (Cormack et al.'s constant): how fast lower ranks fade."""


def _excluded_mask(
    users: npt.NDArray[np.int64], items: npt.NDArray[Any], exclude: Exclusions
) -> npt.NDArray[np.bool_]:
    """Which (users[i], items[i]) pairs are in `exclude` (only the users present are looked at)."""
    present = [int(u) for u in pd.unique(users) if int(u) in exclude]
    pairs = [(u, str(m)) for u in present for m in exclude[u]]
    if not pairs:
        return np.zeros(len(users), dtype=bool)
    banned = pd.MultiIndex.from_tuples(pairs)
    return np.asarray(pd.MultiIndex.from_arrays([users, items]).isin(banned), dtype=bool)


def _empty_merged(sources: Sequence[str]) -> pd.DataFrame:
    """A merged frame with no rows but every column."""
    empty = empty_candidates()
    for source in sources:
        empty[rank_column(source)] = pd.Series(dtype=np.int64)
        empty[score_column(source)] = pd.Series(dtype=np.float64)
    return empty


def merge_candidates(
    frames: Sequence[pd.DataFrame],
    k_total: int,
    exclude: Exclusions | None = None,
    sources: Sequence[str] | None = None,
    rrf_k: float = RRF_K,
) -> pd.DataFrame:
    """Union the generators' frames into at most `k_total` candidates per user (see module doc).

    `sources` fixes the feature columns (`rank_<s>`, `score_<s>` for each, in that order) so
    they do not depend on which generators happened to answer: pass the same list in training
    and serving. Without it, the sources found in `frames` are used in order of appearance.
    """
    parts = [f for f in frames if not f.empty]
    for part in parts:
        require_columns(part, CANDIDATE_COLUMNS, "merge_candidates")
    stacked = pd.concat([p[list(CANDIDATE_COLUMNS)] for p in parts], ignore_index=True) if parts else None
    found = [] if stacked is None else [str(s) for s in pd.unique(stacked[SOURCE])]
    names = found if sources is None else list(sources)
    if unknown := sorted(set(found) - set(names)):
        raise ValueError(f"frames hold sources {unknown} not listed in sources={names}")
    if stacked is None or k_total <= 0:
        return _empty_merged(names)
    users = stacked[USER].to_numpy(dtype=np.int64)
    items = stacked[ITEM].to_numpy(dtype=object)
    if exclude:
        keep = ~_excluded_mask(users, items, exclude)
        stacked, users, items = stacked[keep], users[keep], items[keep]
        if stacked.empty:
            return _empty_merged(names)
    # Codes: users in first-seen order (the output keeps the callers' order of users), movies
    # sorted (the last tie-break), one code per distinct (user, movie) pair.
    user_code, user_values = pd.factorize(users)
    item_code, item_values = pd.factorize(items, sort=True)
    n_items = len(item_values)
    pair_code, pair_values = pd.factorize(user_code.astype(np.int64) * n_items + item_code)
    n_pairs = len(pair_values)
    pair_user, pair_item = pair_values // n_items, pair_values % n_items

    source_col = stacked[SOURCE].to_numpy(dtype=object)
    ranks = stacked[RANK].to_numpy(dtype=np.int64)
    scores = stacked[SCORE].to_numpy(dtype=np.float64)
    fused = np.zeros(n_pairs)
    best = np.full(n_pairs, MISSING_RANK, dtype=np.int64)
    membership = np.zeros(n_pairs, dtype=np.int64)
    features: dict[str, npt.NDArray[Any]] = {}
    for bit, source in enumerate(names):
        sel = np.flatnonzero(source_col == source)
        # A source that proposed a movie twice keeps its best rank.
        sel = sel[np.lexsort((ranks[sel], pair_code[sel]))]
        sel = sel[np.r_[True, np.diff(pair_code[sel]) != 0]] if len(sel) else sel
        rank_s = np.full(n_pairs, MISSING_RANK, dtype=np.int64)
        score_s = np.full(n_pairs, np.nan)
        rank_s[pair_code[sel]] = ranks[sel]
        score_s[pair_code[sel]] = scores[sel]
        present = rank_s != MISSING_RANK
        fused += np.where(present, 1.0 / (rrf_k + rank_s), 0.0)
        best = np.minimum(best, rank_s)
        membership |= present.astype(np.int64) << bit
        features[rank_column(source)], features[score_column(source)] = rank_s, score_s
    # At most 2**sources distinct labels: build each once.
    labels = {m: "|".join(s for b, s in enumerate(names) if m >> b & 1) for m in np.unique(membership)}

    order = np.lexsort((pair_item, best, -fused, pair_user))
    starts = np.flatnonzero(np.r_[True, np.diff(pair_user[order]) != 0])
    position = np.arange(n_pairs) - np.repeat(starts, np.diff(np.r_[starts, n_pairs])) + 1
    within = position <= k_total
    take = order[within]
    return pd.DataFrame(
        {
            USER: np.asarray(user_values, dtype=np.int64)[pair_user[take]],
            ITEM: np.asarray(item_values, dtype=object)[pair_item[take]],
            SCORE: fused[take],
            RANK: position[within].astype(np.int64),
            SOURCE: pd.Series(membership[take]).map(labels).to_numpy(dtype=object),
            **{name: values[take] for name, values in features.items()},
        }
    )


def recall_at_k(
    candidates: pd.DataFrame,
    truth: pd.DataFrame,
    k: int | None = None,
    average: Literal["micro", "macro"] = "micro",
    col_user: str = USER,
    col_item: str = ITEM,
    col_rank: str = RANK,
    col_prediction: str = SCORE,
    col_relevance: str = GAIN,
) -> float:
    """Share of held-out positives present in each user's first k candidates (None: all of them).

    "micro" pools every positive (hits / positives, users with more positives weigh more: the
    share of future plays the ranker could possibly surface); "macro" averages per user as
    `ranking.metrics.recall_at_k` does. Positives are truth rows with gain > 0 (all rows when
    there is no gain column); users without positives are skipped, users without candidates
    count as misses. NaN when there are no positives.
    """
    if average == "macro":
        k_eff = k if k is not None else int(max(candidates.groupby(col_user).size().max(), 1))
        return _per_user_recall(
            candidates, truth, k_eff, col_user, col_item, col_rank, col_prediction, col_relevance
        )
    top = top_k_positions(candidates, k, col_user, col_item, col_rank, col_prediction)
    positives = truth[[col_user, col_item]]
    if col_relevance in truth.columns:
        positives = positives[truth[col_relevance].to_numpy() > 0]
    positives = positives.drop_duplicates()
    if positives.empty:
        return float("nan")
    hits = positives.merge(top[[col_user, col_item]], on=[col_user, col_item], how="inner")
    return len(hits) / len(positives)
