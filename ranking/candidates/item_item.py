"""Item-item co-occurrence: "people who watched what you watched also watched".

Two movies are similar when the same users watched both: similarity(i, j) = co-watchers /
(sqrt(watchers_i * watchers_j) + shrinkage), a cosine whose shrinkage keeps pairs seen by a
handful of users from outranking well-supported ones. Only each movie's `neighbours` most
similar movies are kept. A user's score for a movie is the sum of its similarities to the
user's recent movies. Every user contributes at most `max_history` (most recent) movies,
which bounds the quadratic pair count of heavy users. Unknown users get no candidates.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Final, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from ranking.candidates.base import (
    Exclusions,
    candidate_frame,
    check_before,
    empty_candidates,
    exclusion_matrix,
    load_artifacts,
    require_columns,
    save_artifacts,
    top_k_dense,
    unique_users,
)
from ranking.columns import ITEM, TIMESTAMP, USER

_FORMAT: Final = "ranking.candidates.item_item/1"
"""Version tag of the saved JSON; bump when its layout changes."""
_BLOCK: Final = 2048
"""Movie rows per block of the co-watch product (bounds its memory)."""


class ItemItemConfig(BaseModel):
    """Knobs of the item-item generator."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    neighbours: int = Field(50, ge=1, description="Most similar movies kept per movie.")
    shrinkage: float = Field(10.0, ge=0, description="Added to the cosine denominator to damp rare pairs.")
    max_history: int = Field(
        200, ge=1, description="Most recent distinct movies per user used to fit and score."
    )
    batch_size: int = Field(
        256, ge=1, description="Users scored per recommend batch (a dense users x movies block)."
    )
    source: str = Field("item", min_length=1, description="Name in `candidate_source` and feature columns.")


class ItemItemGenerator:
    """Candidates similar to each user's recent movies."""

    def __init__(self, config: ItemItemConfig | None = None) -> None:
        """Create an unfitted generator."""
        self.config = config or ItemItemConfig()
        self._users: pd.Index = pd.Index([], dtype=np.int64)
        self._items: pd.Index = pd.Index([], dtype=object)
        self._history: sp.csr_matrix = sp.csr_matrix((0, 0), dtype=np.float32)
        self._similar: sp.csr_matrix = sp.csr_matrix((0, 0), dtype=np.float32)

    @property
    def source(self) -> str:
        """Name of this generator in candidate frames."""
        return self.config.source

    def fit(self, interactions: pd.DataFrame, cutoff: pd.Timestamp | None = None) -> Self:
        """Build the pruned similarity matrix from `interactions` (all strictly before `cutoff`)."""
        require_columns(interactions, (USER, ITEM, TIMESTAMP), "ItemItemGenerator.fit")
        check_before(interactions, cutoff)
        last = (
            interactions[[USER, ITEM, TIMESTAMP]]
            .astype({USER: "int64", ITEM: str})
            .groupby([USER, ITEM])[TIMESTAMP]
            .max()
            .reset_index()
            .sort_values([USER, TIMESTAMP], ascending=[True, False], kind="stable")
        )
        last = last[last.groupby(USER, sort=False).cumcount().to_numpy() < self.config.max_history]
        user_codes, users = pd.factorize(last[USER], sort=True)
        item_codes, items = pd.factorize(last[ITEM], sort=True)
        self._users = pd.Index(np.asarray(users, dtype=np.int64))
        self._items = pd.Index(np.asarray(items, dtype=object), dtype=object)
        ones = np.ones(len(last), dtype=np.float32)
        self._history = sp.csr_matrix((ones, (user_codes, item_codes)), shape=(len(users), len(items)))
        self._similar = self._similarities(self._history)
        return self

    def _similarities(self, history: sp.csr_matrix) -> sp.csr_matrix:
        """Shrunk cosine of co-watch counts, top `neighbours` per movie row, no self-pairs.

        Computed in blocks of movie rows: the full co-watch matrix of a 20,000-movie catalogue can
        be nearly dense (gigabytes), one block of rows is not, and only its top rows are kept.
        """
        n_items = history.shape[1]
        watchers = np.asarray(history.sum(axis=0)).ravel()
        by_item = history.T.tocsr()
        k = self.config.neighbours
        parts: list[sp.csr_matrix] = []
        for lo in range(0, n_items, _BLOCK):
            co = (by_item[lo : lo + _BLOCK] @ history).tocsr()
            co.sort_indices()
            rows = np.repeat(np.arange(co.shape[0]), np.diff(co.indptr))
            co.data = co.data / (np.sqrt(watchers[rows + lo] * watchers[co.indices]) + self.config.shrinkage)
            co.data[co.indices == rows + lo] = 0.0  # no self-pairs
            keep_idx: list[np.ndarray] = []
            for r in range(co.shape[0]):
                a, b = co.indptr[r], co.indptr[r + 1]
                if b - a > k:
                    keep_idx.append(a + np.argpartition(-co.data[a:b], k - 1)[:k])
                else:
                    keep_idx.append(np.arange(a, b))
            kept = np.concatenate(keep_idx) if keep_idx else np.empty(0, dtype=np.int64)
            kept = kept[co.data[kept] > 0]
            parts.append(
                sp.csr_matrix(
                    (co.data[kept].astype(np.float32), (rows[kept], co.indices[kept])),
                    shape=(co.shape[0], n_items),
                )
            )
        if not parts:
            return sp.csr_matrix((n_items, n_items), dtype=np.float32)
        return sp.vstack(parts, format="csr").astype(np.float32)

    @property
    def item_ids(self) -> pd.Index:
        """Movies in similarity-row order."""
        return self._items

    @property
    def similarity(self) -> sp.csr_matrix:
        """Pruned movie x movie similarity (rows and columns in `item_ids` order)."""
        return self._similar

    def recommend(self, user_ids: Iterable[int], k: int, exclude: Exclusions | None = None) -> pd.DataFrame:
        """Top-k movies per known user by summed similarity, without their history and `exclude`."""
        users = unique_users(user_ids)
        rows = self._users.get_indexer(pd.Index(users))
        known = rows >= 0
        users, rows = users[known], rows[known]
        if k <= 0 or len(users) == 0 or len(self._items) == 0:
            return empty_candidates()
        frames = []
        item_ids = self._items.to_numpy()
        for start in range(0, len(users), self.config.batch_size):
            batch = users[start : start + self.config.batch_size]
            history = self._history[rows[start : start + self.config.batch_size]]
            scores = (history @ self._similar).toarray()
            blocked = (history + exclusion_matrix(batch, exclude, self._items)).tocoo()
            scores[blocked.row, blocked.col] = -np.inf
            r, c, s = top_k_dense(scores, k, min_score=0.0)
            frames.append(candidate_frame(batch[r], item_ids[c], s, self.source))
        return pd.concat(frames, ignore_index=True)

    def save(self, path: str | Path) -> None:
        """Write history and similarities to `<path>/item_item.{npz,json}` (no pickle)."""
        arrays = {
            "history_indptr": self._history.indptr,
            "history_indices": self._history.indices,
            "similar_indptr": self._similar.indptr,
            "similar_indices": self._similar.indices,
            "similar_data": self._similar.data,
        }
        meta = {
            "format": _FORMAT,
            "config": self.config.model_dump(),
            "user_ids": [int(u) for u in self._users],
            "item_ids": [str(m) for m in self._items],
        }
        save_artifacts(path, "item_item", arrays, meta)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a generator written by `save`."""
        arrays, meta = load_artifacts(path, "item_item", _FORMAT)
        gen = cls(ItemItemConfig.model_validate(meta["config"]))
        gen._users = pd.Index(np.asarray(meta["user_ids"], dtype=np.int64))
        gen._items = pd.Index(np.asarray(meta["item_ids"], dtype=object), dtype=object)
        n_users, n_items = len(gen._users), len(gen._items)
        ones = np.ones(len(arrays["history_indices"]), dtype=np.float32)
        gen._history = sp.csr_matrix(
            (ones, arrays["history_indices"], arrays["history_indptr"]), shape=(n_users, n_items)
        )
        gen._similar = sp.csr_matrix(
            (arrays["similar_data"], arrays["similar_indices"], arrays["similar_indptr"]),
            shape=(n_items, n_items),
        )
        return gen
