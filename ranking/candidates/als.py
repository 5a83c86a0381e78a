"""Implicit-feedback matrix factorisation (implicit's ALS) over minutes watched.

Confidence follows Hu, Koren and Volinsky: a (user, movie) pair the user watched gets
c = 1 + alpha * log1p(total minutes watched), every other pair c = 1 with preference 0. The
log keeps one binge from drowning out a user's other movies. implicit's own `alpha` stays
1.0 because the matrix already holds c (implicit reads the stored value as the confidence).

Users and movies get stable indices: both sorted (user ids numerically, movie ids as
strings), so the same training data gives the same maps. Users absent from training get no
candidates here (the caller falls back to popularity or cold start).

Threads: implicit runs with `num_threads` (default 1) and fitting happens under a
one-thread BLAS limit, so a fit on a shared 2-core box does not oversubscribe; set
`OPENBLAS_NUM_THREADS=1` in processes that recommend (implicit warns otherwise).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from ranking.candidates.base import (
    Exclusions,
    as_utc,
    candidate_frame,
    check_before,
    empty_candidates,
    exclusion_matrix,
    load_artifacts,
    require_columns,
    save_artifacts,
    unique_users,
)
from ranking.columns import ITEM, MINUTES, USER

_FORMAT: Final = "ranking.candidates.als/1"
"""Version tag of the saved JSON; bump when its layout changes."""
_FILTERED: Final = float(np.finfo(np.float32).min)
"""Score implicit gives filtered movies when a user has fewer than N allowed ones."""


class ALSConfig(BaseModel):
    """Knobs of the ALS generator."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # 32/10 rather than 64/15: at full scale (1M users, 10M sessions) as good on NDCG@20 and
    # candidate recall@100 (0.0070 / 0.054 against 0.0074 / 0.048, 10,000 test users) in 96 s
    # instead of 232 s (2 threads). Training and serving's candidate index use the same defaults.
    factors: int = Field(32, ge=1, description="Latent dimensions per user and movie.")
    iterations: int = Field(10, ge=1, description="Alternating least-squares sweeps.")
    regularization: float = Field(0.05, ge=0, description="L2 penalty on the factors.")
    alpha: float = Field(2.0, ge=0, description="Confidence slope: c = 1 + alpha * log1p(minutes watched).")
    random_state: int = Field(42, description="Seed of the factor initialisation (reproducible fits).")
    num_threads: int = Field(1, ge=1, description="implicit's worker threads for fit and recommend.")
    batch_size: int = Field(1000, ge=1, description="Users scored per recommend batch (bounds memory).")
    source: str = Field("als", min_length=1, description="Name in `candidate_source` and feature columns.")


def _new_model(config: ALSConfig) -> Any:
    """An untrained implicit ALS model (CPU, float32, conjugate-gradient solver)."""
    from implicit.cpu.als import AlternatingLeastSquares

    # implicit checks the BLAS pool size when constructed; under the limit it sees one thread.
    with threadpool_limits(limits=1, user_api="blas"):
        return AlternatingLeastSquares(
            factors=config.factors,
            regularization=config.regularization,
            alpha=1.0,  # the matrix already holds the confidence
            iterations=config.iterations,
            random_state=config.random_state,
            num_threads=config.num_threads,
            dtype=np.float32,
        )


class ALSGenerator:
    """Personal candidates from implicit ALS factors; unknown users get none."""

    def __init__(self, config: ALSConfig | None = None) -> None:
        """Create an unfitted generator."""
        self.config = config or ALSConfig()
        self._model: Any = None
        self._users: pd.Index = pd.Index([], dtype=np.int64)
        self._items: pd.Index = pd.Index([], dtype=object)
        self._liked: sp.csr_matrix = sp.csr_matrix((0, 0), dtype=np.float32)
        self.trained_before: pd.Timestamp | None = None

    @property
    def source(self) -> str:
        """Name of this generator in candidate frames."""
        return self.config.source

    @property
    def user_ids(self) -> pd.Index:
        """Known users in factor-row order."""
        return self._users

    @property
    def item_ids(self) -> pd.Index:
        """Known movies in factor-row order."""
        return self._items

    @property
    def item_factors(self) -> npt.NDArray[np.float32]:
        """Movie factors, one row per `item_ids` entry."""
        self._require_fitted()
        return np.asarray(self._model.item_factors)

    @property
    def user_factors(self) -> npt.NDArray[np.float32]:
        """User factors, one row per `user_ids` entry."""
        self._require_fitted()
        return np.asarray(self._model.user_factors)

    def _require_fitted(self) -> None:
        """Raise RuntimeError before fit or load."""
        if self._model is None:
            raise RuntimeError("fit or load the ALS generator first")

    def confidence_matrix(self, interactions: pd.DataFrame) -> sp.csr_matrix:
        """Users x movies CSR of confidences, building the id maps from `interactions`."""
        require_columns(interactions, (USER, ITEM, MINUTES), "ALSGenerator.fit")
        user_codes, users = pd.factorize(interactions[USER].astype("int64"), sort=True)
        item_codes, items = pd.factorize(interactions[ITEM].astype(str), sort=True)
        self._users = pd.Index(np.asarray(users, dtype=np.int64))
        self._items = pd.Index(np.asarray(items, dtype=object), dtype=object)
        minutes = np.clip(interactions[MINUTES].to_numpy(dtype=np.float64), 0.0, None)
        # COO -> CSR sums the minutes of repeated (user, movie) sessions before the log is taken.
        matrix = sp.csr_matrix(
            (minutes, (user_codes, item_codes)), shape=(len(users), len(items)), dtype=np.float64
        )
        matrix.sum_duplicates()
        matrix.data = (1.0 + self.config.alpha * np.log1p(matrix.data)).astype(np.float32)
        return matrix.astype(np.float32)

    def fit(self, interactions: pd.DataFrame, cutoff: pd.Timestamp | None = None) -> Self:
        """Factorise the confidence matrix of `interactions` (all strictly before `cutoff`)."""
        check_before(interactions, cutoff)
        if interactions.empty:
            raise ValueError("ALSGenerator.fit needs at least one interaction")
        liked = self.confidence_matrix(interactions)
        model = _new_model(self.config)
        with threadpool_limits(limits=1, user_api="blas"):
            model.fit(liked, show_progress=False)
        self._model, self._liked = model, liked
        self.trained_before = None if cutoff is None else as_utc(cutoff)
        return self

    def user_vector(self, user_id: int) -> npt.NDArray[np.float32] | None:
        """A user's factor vector, None for a user unknown to the model."""
        self._require_fitted()
        row = int(self._users.get_indexer(pd.Index([int(user_id)]))[0])
        return None if row < 0 else np.asarray(self._model.user_factors[row])

    def score_pairs(self, pairs: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Dot product of user and movie factors per row of `pairs` (NaN where either is unknown)."""
        self._require_fitted()
        u = self._users.get_indexer(pd.Index(pairs[USER].astype("int64")))
        i = self._items.get_indexer(pd.Index(pairs[ITEM].astype(str)))
        out = np.full(len(pairs), np.nan, dtype=np.float64)
        ok = (u >= 0) & (i >= 0)
        user_f = np.asarray(self._model.user_factors)[u[ok]]
        item_f = np.asarray(self._model.item_factors)[i[ok]]
        out[ok] = np.einsum("ij,ij->i", user_f, item_f)
        return out

    def recommend(
        self,
        user_ids: Iterable[int],
        k: int,
        exclude: Exclusions | None = None,
        filter_liked: bool = True,
    ) -> pd.DataFrame:
        """Top-k movies per known user, without their training movies (`filter_liked`) and `exclude`."""
        self._require_fitted()
        users = unique_users(user_ids)
        rows = self._users.get_indexer(pd.Index(users))
        known = rows >= 0
        users, rows = users[known], rows[known]
        n = min(k, len(self._items))
        if n <= 0 or len(users) == 0:
            return empty_candidates()
        frames = []
        for start in range(0, len(users), self.config.batch_size):
            batch, batch_rows = (
                users[start : start + self.config.batch_size],
                rows[start : start + self.config.batch_size],
            )
            blocked = exclusion_matrix(batch, exclude, self._items)
            if filter_liked:
                blocked = (blocked + self._liked[batch_rows]).tocsr()
            ids, scores = self._model.recommend(batch_rows, blocked, N=n, filter_already_liked_items=True)
            ids, scores = np.asarray(ids), np.asarray(scores)
            keep = scores > _FILTERED
            r = np.broadcast_to(np.arange(len(batch))[:, None], ids.shape)[keep]
            frames.append(
                candidate_frame(batch[r], self._items.to_numpy()[ids[keep]], scores[keep], self.source)
            )
        return pd.concat(frames, ignore_index=True)

    def save(self, path: str | Path) -> None:
        """Write factors and training matrix to `<path>/als.npz` and id maps to `<path>/als.json`."""
        self._require_fitted()
        arrays = {
            "user_factors": self.user_factors,
            "item_factors": self.item_factors,
            "liked_indptr": self._liked.indptr,
            "liked_indices": self._liked.indices,
            "liked_data": self._liked.data,
        }
        meta = {
            "format": _FORMAT,
            "config": self.config.model_dump(),
            "trained_before": None if self.trained_before is None else self.trained_before.isoformat(),
            "user_ids": [int(u) for u in self._users],
            "item_ids": [str(m) for m in self._items],
        }
        save_artifacts(path, "als", arrays, meta)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a generator written by `save`; it recommends exactly as the saved one did."""
        arrays, meta = load_artifacts(path, "als", _FORMAT)
        gen = cls(ALSConfig.model_validate(meta["config"]))
        gen._users = pd.Index(np.asarray(meta["user_ids"], dtype=np.int64))
        gen._items = pd.Index(np.asarray(meta["item_ids"], dtype=object), dtype=object)
        shape = (len(gen._users), len(gen._items))
        user_f, item_f = arrays["user_factors"], arrays["item_factors"]
        if user_f.shape[0] != shape[0] or item_f.shape[0] != shape[1]:
            raise ValueError(f"{path}: factors {user_f.shape}/{item_f.shape} do not match id maps {shape}")
        gen._liked = sp.csr_matrix(
            (arrays["liked_data"], arrays["liked_indices"], arrays["liked_indptr"]), shape=shape
        )
        model = _new_model(gen.config)
        model.user_factors, model.item_factors = user_f, item_f
        gen._model = model
        before = meta.get("trained_before")
        gen.trained_before = None if before is None else pd.Timestamp(before)
        return gen
