"""The candidate generators packed for one user at a time: the serving side of `dataset.candidates`.

Training builds candidates for thousands of users in one pandas pass (`dataset.candidates`:
popularity and ALS `recommend`, then the RRF `merge_candidates`). Serving needs the same
candidates, with the same `rank_pop`, `rank_als` and `score_als` features, for one user in well
under a millisecond. `CandidateIndex` holds the fitted generators as flat NumPy arrays over one
movie vocabulary and reproduces that pipeline for a single user; a unit test checks it against
`dataset.candidates` row for row.

An index is fit as of a time (`build`: history strictly before it), saved next to the model it
was trained with (`<model>/candidates/`, plain `.npz` + JSON, no pickle) and swapped with it, so
the model always sees candidate features from the generators it learned them from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from ranking.candidates import ALSConfig, ALSGenerator, PopularityGenerator
from ranking.candidates.merge import MISSING_RANK, RRF_K
from ranking.interactions import history
from ranking.registry import CANDIDATES_DIR

INDEX_DIR: Final = CANDIDATES_DIR
"""Sub-folder of a model directory that holds its candidate index (the registry ships it with the model)."""
K_POP: Final = 50
"""Popularity candidates per user (as in training)."""
K_ALS: Final = 100
"""ALS candidates per user (as in training)."""
K_TOTAL: Final = 120
"""Merged candidates per user (as in training)."""


@dataclass(frozen=True)
class UserCandidates:
    """One user's merged candidates, best fused rank first, as positions in `CandidateIndex.items`."""

    items: npt.NDArray[np.int64]
    rank_pop: npt.NDArray[np.int64]
    rank_als: npt.NDArray[np.int64]
    score_als: npt.NDArray[np.float64]
    known_user: bool
    """The ALS model knows the user (else only popularity candidates)."""

    def sources(self) -> dict[str, int]:
        """Candidates each generator contributed, for the provenance record."""
        return {
            "pop": int((self.rank_pop != MISSING_RANK).sum()),
            "als": int((self.rank_als != MISSING_RANK).sum()),
        }


class CandidateIndex:
    """Popularity order, ALS factors and each user's watched set over one sorted movie vocabulary."""

    def __init__(self, popularity: PopularityGenerator, als: ALSGenerator) -> None:
        """Pack fitted generators (see `build` and `load`)."""
        self.popularity, self.als = popularity, als
        pop_items = np.asarray(popularity.item_scores().index, dtype=object)
        vocab = pd.Index(sorted(set(pop_items.tolist()) | set(als.item_ids.tolist())), dtype=object)
        self.items: npt.NDArray[Any] = vocab.to_numpy(dtype=object)
        """Movie ids, sorted (the merge's last tie-break is this order)."""
        self.position: dict[str, int] = {str(m): i for i, m in enumerate(self.items)}
        # Popularity: vocabulary positions in rank order.
        self._pop_order = vocab.get_indexer(pd.Index(pop_items, dtype=object)).astype(np.int64)
        # ALS: its item rows -> vocabulary positions; factors; watched sets as CSR over ALS items.
        self._als_to_vocab = vocab.get_indexer(als.item_ids).astype(np.int64)
        self._vocab_to_als = np.full(len(vocab), -1, dtype=np.int64)
        self._vocab_to_als[self._als_to_vocab] = np.arange(len(self._als_to_vocab))
        self._item_factors = np.ascontiguousarray(als.item_factors, dtype=np.float32)
        self._user_factors = np.ascontiguousarray(als.user_factors, dtype=np.float32)
        # Sorted user ids and their factor rows: a binary search per request (a dict of 1M ids costs ~100 MB).
        users = np.asarray(als.user_ids, dtype=np.int64)
        self._user_order = np.argsort(users, kind="stable")
        self._users_sorted = users[self._user_order]
        liked = als._liked.tocsr()  # the generator's own training matrix
        self._liked_indptr, self._liked_indices = liked.indptr, liked.indices

    @classmethod
    def build(
        cls, sessions: pd.DataFrame, as_of: pd.Timestamp, als: ALSConfig | None = None
    ) -> CandidateIndex:
        """Fit both generators on sessions that ended before `as_of`, as `dataset.fit_generators` does."""
        hist = history(sessions, as_of)
        pop = PopularityGenerator().fit(hist, now=as_of, cutoff=as_of)
        return cls(pop, ALSGenerator(als).fit(hist, cutoff=as_of))

    def save(self, directory: Path) -> Path:
        """Write both generators under `directory` (created); returns it."""
        directory.mkdir(parents=True, exist_ok=True)
        self.popularity.save(directory)
        self.als.save(directory)
        return directory

    @classmethod
    def load(cls, directory: Path) -> CandidateIndex:
        """Read an index written by `save`."""
        return cls(PopularityGenerator.load(directory), ALSGenerator.load(directory))

    @property
    def n_users(self) -> int:
        """Users the ALS model knows."""
        return len(self._users_sorted)

    def popular(self, k: int) -> npt.NDArray[np.int64]:
        """The k most popular movies as vocabulary positions (for fallbacks and cold start)."""
        return self._pop_order[: max(k, 0)]

    def watched(self, user_id: int) -> npt.NDArray[np.int64]:
        """Vocabulary positions of what the user had watched when the index was fit."""
        row = self._row(user_id)
        if row < 0:
            return np.empty(0, dtype=np.int64)
        cols = self._liked_indices[self._liked_indptr[row] : self._liked_indptr[row + 1]]
        positions: npt.NDArray[np.int64] = self._als_to_vocab[cols]
        return positions

    def _row(self, user_id: int) -> int:
        at = int(np.searchsorted(self._users_sorted, user_id))
        if at < len(self._users_sorted) and self._users_sorted[at] == user_id:
            return int(self._user_order[at])
        return -1

    def candidates(
        self,
        user_id: int,
        also_seen: npt.NDArray[np.int64] | None = None,
        k_pop: int = K_POP,
        k_als: int = K_ALS,
        k_total: int = K_TOTAL,
    ) -> UserCandidates:
        """Merged candidates for one user, excluding what they watched (index history + `also_seen`).

        Works on the few hundred positions involved, not on arrays over the whole vocabulary:
        at 20,000 movies the full-size version cost ~1 ms per request, this one a fraction.
        """
        n = len(self.items)
        row = self._row(user_id)
        seen_parts = [self.watched(user_id)] if row >= 0 else []
        if also_seen is not None and len(also_seen):
            seen_parts.append(also_seen[(also_seen >= 0) & (also_seen < n)])
        seen_pos = np.concatenate(seen_parts) if seen_parts else np.empty(0, dtype=np.int64)
        seen = np.zeros(n, dtype=bool)
        seen[seen_pos] = True
        # Popularity: at most len(seen_pos) of the first k_pop + len(seen_pos) are filtered out.
        pop_pos = np.empty(0, dtype=np.int64)
        if k_pop > 0:
            head = self._pop_order[: k_pop + len(seen_pos)]
            pop_pos = head[~seen[head]][:k_pop]
        als_pos = np.empty(0, dtype=np.int64)
        als_scores = np.empty(0, dtype=np.float32)
        if row >= 0 and k_als > 0 and len(self._item_factors):
            scores = self._item_factors @ self._user_factors[row]
            als_seen = self._vocab_to_als[seen_pos]
            scores[als_seen[als_seen >= 0]] = -np.inf
            k = min(k_als, int(np.isfinite(scores).sum()))
            if k > 0:
                top = (
                    np.argpartition(scores, len(scores) - k)[-k:]
                    if k < len(scores)
                    else np.arange(len(scores))
                )
                top = top[np.lexsort((top, -scores[top]))]
                als_pos, als_scores = self._als_to_vocab[top], scores[top]
        proposed = np.union1d(pop_pos, als_pos).astype(np.int64)  # sorted: the movie-id tie-break order
        m = len(proposed)
        rp = np.full(m, MISSING_RANK, dtype=np.int64)
        rp[np.searchsorted(proposed, pop_pos)] = np.arange(1, len(pop_pos) + 1)
        ra = np.full(m, MISSING_RANK, dtype=np.int64)
        sa = np.full(m, np.nan)
        at = np.searchsorted(proposed, als_pos)
        ra[at] = np.arange(1, len(als_pos) + 1)
        sa[at] = als_scores
        fused = np.where(rp != MISSING_RANK, 1.0 / (RRF_K + rp), 0.0) + np.where(
            ra != MISSING_RANK, 1.0 / (RRF_K + ra), 0.0
        )
        # As merge_candidates: fused score descending, then best single rank, then movie id.
        order = np.lexsort((proposed, np.minimum(rp, ra), -fused))[:k_total]
        return UserCandidates(proposed[order], rp[order], ra[order], sa[order], row >= 0)
