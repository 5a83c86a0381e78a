"""The candidate generators packed for one user at a time: what training, evaluation and serving all call.

`CandidateIndex` holds, over one sorted movie vocabulary, the fitted generators as flat NumPy
arrays: recency-decayed popularity (the tuned half-life), all-time popularity, ALS factors with
each user's watched set, and the pruned item-item similarity. `candidates(user, recent)` gives
one user's merged candidates with their per-source features in well under a millisecond; the
training set, the offline evaluation and the service call this same method, so the lists a
model is judged on are the lists it serves.

Item-item scores come from the user's *recent* watches (the Feast feature
`user_watch_stats__recent_movie_ids`, most recent first, each weighted RECENT_DECAY ** position),
not from the index's frozen history: at serving time that list is fresher than the index.

An index is fit as of a time (`build`: history strictly before it), saved next to the model it
was trained with (`<model>/candidates/`, plain `.npz` + JSON, no pickle) and swapped with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from ranking.candidates import (
    ALSConfig,
    ALSGenerator,
    ItemItemConfig,
    ItemItemGenerator,
    PopularityConfig,
    PopularityGenerator,
)
from ranking.candidates.merge import MISSING_RANK
from ranking.interactions import history
from ranking.sparse_topk import lookup, rows_max_at, rows_weighted_sum, top, top_outside
from ranking.transforms import CANDIDATE_COLUMNS

INDEX_DIR: Final = "candidates"
"""Sub-folder of a model directory that holds its candidate index (the registry ships it with the model)."""
ALL_TIME_DAYS: Final = 1e9
"""Half-life that makes popularity an all-time play count (the plain popularity baseline)."""
RECENT_DECAY: Final = 0.85
"""Weight of the i-th most recent watch in item-item scoring (0.85 ** i): recent taste counts most."""
LAST_N: Final = 5
"""Most recent watches the `sim_*_last` features compare a candidate with."""
_FORMAT: Final = "ranking.candidate_index/2"
_META: Final = "index.json"
_SIM: Final = "item_sim.npz"

GENERATORS: Final[tuple[str, ...]] = ("pop", "als", "item")
"""Generators merged into the candidate set, in feature-column order."""
POLICIES: Final[dict[str, str]] = {
    "popularity": "pop_all",
    "recency_popularity": "pop",
    "als": "als",
    "item_item": "item",
}
"""Baseline policies (a list one generator makes alone) -> the generator that makes it."""


class IndexConfig(BaseModel):
    """How many candidates each generator proposes, and the popularity half-life."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    half_life_days: float = Field(
        7.0, gt=0, description="Recency popularity: age at which a play counts half."
    )
    k_pop: int = Field(40, ge=0, description="Recency-popularity candidates per user.")
    k_als: int = Field(60, ge=0, description="ALS candidates per user.")
    k_item: int = Field(60, ge=0, description="Item-item candidates per user (from their recent watches).")


@dataclass(frozen=True)
class UserCandidates:
    """One user's candidates (union of the generators' lists) as positions in `CandidateIndex.items`."""

    items: npt.NDArray[np.int64]
    features: dict[str, npt.NDArray[np.float64]]
    """Per-candidate columns: rank_<gen>, score_<gen>, sim_als_last, sim_item_last."""
    known_user: bool
    """The ALS model knows the user."""

    def sources(self) -> dict[str, int]:
        """Candidates each generator contributed, for the provenance record."""
        return {g: int((self.features[f"rank_{g}"] != MISSING_RANK).sum()) for g in GENERATORS}


CANDIDATE_FEATURES: Final[tuple[str, ...]] = CANDIDATE_COLUMNS
"""The per-candidate columns `UserCandidates.features` holds (ranker inputs)."""


@dataclass
class _Proposals:
    """One user's generator tops and the sparse scores behind them (`CandidateIndex._proposals`)."""

    tops: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)
    """Generator -> its top k outside the user's seen movies, best first."""
    als: npt.NDArray[np.float32] | None = None
    """ALS scores of the movies with factors (`CandidateIndex._als_at`); None: the user is unknown."""
    item: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]] = (
        np.empty(0, dtype=np.int64),
        np.empty(0, dtype=np.float64),
    )
    """Item-item: the movies with a positive summed similarity (sorted) and those sums."""


class CandidateIndex:
    """Popularity orders, ALS factors, watched sets and item-item similarity over one sorted vocabulary."""

    def __init__(
        self,
        popularity: PopularityGenerator,
        popularity_all: PopularityGenerator,
        als: ALSGenerator,
        similar: sp.csr_matrix,
        config: IndexConfig,
    ) -> None:
        """Pack fitted generators; `similar` is over the vocabulary (see `build` and `load`)."""
        self.popularity, self.popularity_all, self.als, self.config = popularity, popularity_all, als, config
        vocab = pd.Index(sorted(set(map(str, popularity.item_scores().index)) | set(als.item_ids.tolist())))
        self.items: npt.NDArray[Any] = vocab.to_numpy(dtype=object)
        """Movie ids, sorted."""
        self.position: dict[str, int] = {str(m): i for i, m in enumerate(self.items)}
        n = len(vocab)
        self._pop_score = self._dense(popularity.item_scores(), vocab)
        self._pop_all_score = self._dense(popularity_all.item_scores(), vocab)
        self._als_to_vocab = vocab.get_indexer(als.item_ids).astype(np.int64)
        factors = np.zeros((n, als.item_factors.shape[1] if len(als.item_ids) else 0), dtype=np.float32)
        factors[self._als_to_vocab] = als.item_factors
        self._item_factors = factors
        # The movies with ALS factors in vocabulary order, their rows gathered once: a request scores
        # just these (ties then break to the smaller vocabulary position, as a dense pass would).
        self._als_at = np.sort(self._als_to_vocab)
        self._als_factors = np.ascontiguousarray(factors[self._als_at])
        norms = np.linalg.norm(factors, axis=1)
        self._unit_factors = factors / np.where(norms > 0, norms, 1.0)[:, None]
        self._user_factors = np.ascontiguousarray(als.user_factors, dtype=np.float32)
        # Sorted user ids and their factor rows: a binary search per request (a dict of 1M ids costs ~100 MB).
        users = np.asarray(als.user_ids, dtype=np.int64)
        self._user_order = np.argsort(users, kind="stable")
        self._users_sorted = users[self._user_order]
        liked = als._liked.tocsr()  # the generator's own training matrix
        self._liked_indptr, self._liked_indices = liked.indptr, liked.indices
        self._similar = similar.tocsr().astype(np.float32)
        if self._similar.shape != (n, n):
            raise ValueError(f"item similarity is {self._similar.shape}, vocabulary has {n} movies")
        self._similar.sort_indices()
        self._sim = (self._similar.indptr, self._similar.indices, self._similar.data)
        # Best-first orders of the two popularity scores: a request skips its user's seen movies in them.
        self._orders = {"pop": top(self._pop_score, n), "pop_all": top(self._pop_all_score, n)}

    @staticmethod
    def _dense(scores: pd.Series, vocab: pd.Index) -> npt.NDArray[np.float64]:
        out = np.full(len(vocab), -np.inf)
        at = vocab.get_indexer(pd.Index(scores.index.astype(str)))
        out[at[at >= 0]] = scores.to_numpy(dtype=np.float64)[at >= 0]
        return out

    @classmethod
    def build(
        cls,
        sessions: pd.DataFrame,
        as_of: pd.Timestamp,
        als: ALSConfig | None = None,
        config: IndexConfig | None = None,
        fit_users: npt.NDArray[np.int64] | None = None,
        hist: pd.DataFrame | None = None,
    ) -> CandidateIndex:
        """Fit every generator on sessions that ended before `as_of`.

        `fit_users`: restrict ALS and item-item to these users' history (training samples users
        per cut-off to bound the fit time); popularity always counts everyone.
        """
        cfg = config or IndexConfig()
        hist = history(sessions, as_of)
        pop = PopularityGenerator(PopularityConfig(half_life_days=cfg.half_life_days)).fit(
            hist, now=as_of, cutoff=as_of
        )
        pop_all = PopularityGenerator(PopularityConfig(half_life_days=ALL_TIME_DAYS)).fit(
            hist, now=as_of, cutoff=as_of
        )
        fit_hist = hist if fit_users is None else hist[hist["user_id"].isin(fit_users)]
        als_gen = ALSGenerator(als).fit(fit_hist, cutoff=as_of)
        item = ItemItemGenerator(ItemItemConfig(max_history=50)).fit(fit_hist, cutoff=as_of)
        vocab = pd.Index(sorted(set(map(str, pop.item_scores().index)) | set(als_gen.item_ids.tolist())))
        return cls(pop, pop_all, als_gen, _to_vocab(item, vocab), cfg)

    def save(self, directory: Path) -> Path:
        """Write every generator under `directory` (created); returns it."""
        directory.mkdir(parents=True, exist_ok=True)
        self.popularity.save(directory)
        self.popularity_all.save(directory / "all_time")
        self.als.save(directory)
        sp.save_npz(directory / _SIM, self._similar, compressed=False)
        (directory / _META).write_text(json.dumps({"format": _FORMAT, "config": self.config.model_dump()}))
        return directory

    @classmethod
    def load(cls, directory: Path) -> CandidateIndex:
        """Read an index written by `save`."""
        meta = json.loads((directory / _META).read_text())
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{directory}: candidate index format {meta.get('format')!r}, want {_FORMAT!r}")
        similar = sp.load_npz(directory / _SIM)
        return cls(
            PopularityGenerator.load(directory),
            PopularityGenerator.load(directory / "all_time"),
            ALSGenerator.load(directory),
            similar,
            IndexConfig.model_validate(meta["config"]),
        )

    @property
    def n_users(self) -> int:
        """Users the ALS model knows."""
        return len(self._users_sorted)

    def popular(self, k: int) -> npt.NDArray[np.int64]:
        """The k most popular movies (recency-decayed) as vocabulary positions (fallbacks and cold start)."""
        return top_outside(self._orders["pop"], np.zeros(len(self.items), dtype=bool), k)

    def watched(self, user_id: int) -> npt.NDArray[np.int64]:
        """Vocabulary positions of what the user had watched when the index was fit."""
        row = self._row(user_id)
        if row < 0:
            return np.empty(0, dtype=np.int64)
        cols = self._liked_indices[self._liked_indptr[row] : self._liked_indptr[row + 1]]
        positions: npt.NDArray[np.int64] = self._als_to_vocab[cols]
        return positions

    def positions(self, movies: list[str]) -> npt.NDArray[np.int64]:
        """Vocabulary positions of movie ids, in order, unknown ones dropped."""
        pos = [self.position.get(m, -1) for m in movies]
        return np.asarray([p for p in pos if p >= 0], dtype=np.int64)

    def _row(self, user_id: int) -> int:
        at = int(np.searchsorted(self._users_sorted, user_id))
        if at < len(self._users_sorted) and self._users_sorted[at] == user_id:
            return int(self._user_order[at])
        return -1

    def _proposals(
        self, user_id: int, recent: npt.NDArray[np.int64], seen: npt.NDArray[np.int64], which: dict[str, int]
    ) -> _Proposals:
        """Each named generator's top k (`which`: generator -> k) outside `seen`, best first.

        Only what the user touches is scored: the popularity orders are precomputed, ALS scores
        the movies it has factors for, item-item sums the rows of the recent watches
        (`ranking.sparse_topk`); `_score_at` reads those scores back for any movies.
        """
        found = _Proposals()
        blocked = np.zeros(len(self.items), dtype=bool)
        blocked[seen] = True
        for gen in ("pop", "pop_all"):
            if gen in which:
                found.tops[gen] = top_outside(self._orders[gen], blocked, which[gen])
        if "als" in which:
            found.tops["als"] = np.empty(0, dtype=np.int64)
            row = self._row(user_id)
            if row >= 0 and self._item_factors.shape[1]:
                found.als = self._als_factors @ self._user_factors[row]  # float32, as fitted
                own = np.where(blocked[self._als_at], np.float32(-np.inf), found.als)
                found.tops["als"] = self._als_at[top(own, which["als"])]
        if "item" in which:
            weights = RECENT_DECAY ** np.arange(len(recent), dtype=np.float64)
            cols, sums = rows_weighted_sum(*self._sim, recent, weights)
            found.item = cols[sums > 0], sums[sums > 0]  # only a positive similarity proposes
            free = ~blocked[found.item[0]]
            found.tops["item"] = found.item[0][free][top(found.item[1][free], which["item"])]
        return found

    def _score_at(self, found: _Proposals, gen: str, at: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """A generator's scores of the movies at `at` for the user of `found` (-inf: it cannot propose them)."""
        if gen == "pop":
            return self._pop_score[at]
        if gen == "pop_all":
            return self._pop_all_score[at]
        if gen == "als":
            return lookup(self._als_at, found.als, at)
        return lookup(*found.item, at)

    def _seen(self, user_id: int, recent: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return np.concatenate([self.watched(user_id), recent]).astype(np.int64)

    def generator_lists(
        self, policies: list[str], user_id: int, recent: npt.NDArray[np.int64], k: int
    ) -> dict[str, npt.NDArray[np.int64]]:
        """Each baseline policy's top k for the user (seen excluded), topped up with recency popularity."""
        seen = self._seen(user_id, recent)
        tops = self._proposals(user_id, recent, seen, {POLICIES[p]: k for p in policies}).tops
        out: dict[str, npt.NDArray[np.int64]] = {}
        for policy in policies:
            best = tops[POLICIES[policy]]
            if len(best) < k:
                blocked = np.zeros(len(self.items), dtype=bool)
                blocked[seen] = blocked[best] = True
                best = np.concatenate([best, top_outside(self._orders["pop"], blocked, k - len(best))])
            out[policy] = best
        return out

    def generator_list(
        self, policy: str, user_id: int, recent: npt.NDArray[np.int64], k: int
    ) -> npt.NDArray[np.int64]:
        """A baseline policy's top k for the user (seen excluded), topped up with recency popularity."""
        return self.generator_lists([policy], user_id, recent, k)[policy]

    def candidates(self, user_id: int, recent: npt.NDArray[np.int64] | None = None) -> UserCandidates:
        """The union of every generator's top k for the user, without what they watched.

        `recent`: vocabulary positions of the user's recent watches, most recent first (Feast's
        `recent_movie_ids`), used for item-item scores, the `sim_*_last` features and exclusion.
        Candidates are ordered by vocabulary position (the ranker orders them).
        """
        recent = np.empty(0, dtype=np.int64) if recent is None else np.asarray(recent, dtype=np.int64)
        seen = self._seen(user_id, recent)
        cfg = self.config
        found = self._proposals(
            user_id, recent, seen, {"pop": cfg.k_pop, "als": cfg.k_als, "item": cfg.k_item}
        )
        proposed = np.unique(np.concatenate(list(found.tops.values()))).astype(np.int64)
        features: dict[str, npt.NDArray[np.float64]] = {}
        for gen in GENERATORS:
            best, own = found.tops[gen], self._score_at(found, gen, proposed)
            rank = np.full(len(proposed), float(MISSING_RANK))
            rank[np.searchsorted(proposed, best)] = np.arange(1, len(best) + 1)
            features[f"rank_{gen}"] = rank
            features[f"score_{gen}"] = np.where(np.isfinite(own), own, np.nan)
        features["score_pop"] = np.log1p(np.maximum(features["score_pop"], 0.0))
        last = recent[:LAST_N]
        if len(last) and self._unit_factors.shape[1]:
            cos = self._unit_factors[proposed] @ self._unit_factors[last].T
            features["sim_als_last"] = cos.max(axis=1).astype(np.float64)
            features["sim_item_last"] = rows_max_at(*self._sim, last, proposed, len(self.items))
        else:
            features["sim_als_last"] = np.full(len(proposed), np.nan)
            features["sim_item_last"] = np.full(len(proposed), np.nan)
        return UserCandidates(proposed, features, self._row(user_id) >= 0)


def _to_vocab(item: ItemItemGenerator, vocab: pd.Index) -> sp.csr_matrix:
    """The item-item similarity re-indexed onto the index's vocabulary (movies it never saw: empty rows)."""
    at = vocab.get_indexer(item.item_ids).astype(np.int64)
    sim = item.similarity.tocoo()
    keep = (at[sim.row] >= 0) & (at[sim.col] >= 0)
    return sp.csr_matrix(
        (sim.data[keep], (at[sim.row[keep]], at[sim.col[keep]])),
        shape=(len(vocab), len(vocab)),
        dtype=np.float32,
    )
