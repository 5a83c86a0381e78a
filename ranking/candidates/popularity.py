"""Recency-weighted popularity: the generator every user gets, and the fallback list.

Each play (one interaction row) counts 0.5 ** (age / half_life), age measured back from
`now`, so a movie's score is its play count with old plays fading: a play one half-life old
counts half. Ties go to the smaller movie id so lists are reproducible.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ranking.candidates.base import (
    Exclusions,
    LeakageError,
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
from ranking.columns import ITEM, TIMESTAMP

_FORMAT: Final = "ranking.candidates.popularity/1"
"""Version tag of the saved JSON; bump when its layout changes."""


class PopularityConfig(BaseModel):
    """Knobs of the popularity generator."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    half_life_days: float = Field(
        7.0, gt=0, description="Age at which a play counts half as much as one now."
    )
    batch_size: int = Field(4096, ge=1, description="Users filtered per recommend batch (bounds memory).")
    source: str = Field("pop", min_length=1, description="Name in `candidate_source` and feature columns.")


class PopularityGenerator:
    """Most-played movies with exponential recency decay; the same list for every user."""

    def __init__(self, config: PopularityConfig | None = None) -> None:
        """Create an unfitted generator."""
        self.config = config or PopularityConfig()
        self._items: npt.NDArray[Any] = np.empty(0, dtype=object)
        self._scores: npt.NDArray[np.float64] = np.empty(0, dtype=np.float64)
        # Movies in rank order, so a movie's position in this index is its popularity rank - 1.
        self._position: pd.Index = pd.Index([], dtype=object)
        self.now: pd.Timestamp | None = None

    @property
    def source(self) -> str:
        """Name of this generator in candidate frames."""
        return self.config.source

    def fit(self, interactions: pd.DataFrame, now: pd.Timestamp, cutoff: pd.Timestamp | None = None) -> Self:
        """Score movies by decayed plays as of `now`; plays after `now` or at/after `cutoff` raise."""
        require_columns(interactions, (ITEM, TIMESTAMP), "PopularityGenerator.fit")
        check_before(interactions, cutoff)
        now_ts = as_utc(now)
        ts = pd.to_datetime(interactions[TIMESTAMP], utc=True)
        age_s = (now_ts - ts).dt.total_seconds().to_numpy(dtype=np.float64)
        if len(age_s) and float(age_s.min()) < 0:
            raise LeakageError(f"interactions reach {ts.max()}, after now={now_ts}")
        weight = np.exp2(-age_s / (self.config.half_life_days * 86_400.0))
        scores = pd.Series(weight, index=interactions[ITEM].astype(str).to_numpy()).groupby(level=0).sum()
        table = pd.DataFrame({ITEM: scores.index.to_numpy(dtype=object), "s": scores.to_numpy()})
        table = table.sort_values(["s", ITEM], ascending=[False, True], kind="stable")
        self._set(table[ITEM].to_numpy(dtype=object), table["s"].to_numpy(dtype=np.float64), now_ts)
        return self

    def _set(self, items: npt.NDArray[Any], scores: npt.NDArray[np.float64], now: pd.Timestamp) -> None:
        """Install a ranked table (fit and load)."""
        self._items, self._scores, self.now = items, scores, now
        self._position = pd.Index(items, dtype=object)

    def top(self, k: int) -> list[str]:
        """The k most popular movies, best first (the fallback list)."""
        return [str(m) for m in self._items[: max(k, 0)]]

    def item_scores(self) -> pd.Series:
        """Decayed play counts of every known movie, best first."""
        return pd.Series(self._scores, index=pd.Index(self._items, name=ITEM), name=self.source)

    def recommend(self, user_ids: Iterable[int], k: int, exclude: Exclusions | None = None) -> pd.DataFrame:
        """The k most popular movies per user, minus that user's `exclude` set."""
        users = unique_users(user_ids)
        n_items = len(self._items)
        if k <= 0 or n_items == 0 or len(users) == 0:
            return empty_candidates()
        frames = []
        for start in range(0, len(users), self.config.batch_size):
            batch = users[start : start + self.config.batch_size]
            excluded = exclusion_matrix(batch, exclude, self._position)
            per_user = np.diff(excluded.indptr)
            # Only the first k + (largest exclusion) ranks can be needed by any user of the batch.
            width = min(n_items, k + (int(per_user.max()) if len(per_user) else 0))
            mask = np.zeros((len(batch), width), dtype=bool)
            rows, cols = excluded.nonzero()
            inside = cols < width
            mask[rows[inside], cols[inside]] = True
            allowed = ~mask
            keep = allowed & (np.cumsum(allowed, axis=1) <= k)
            r, c = np.nonzero(keep)  # row-major: grouped by user, best rank first
            frames.append(candidate_frame(batch[r], self._items[c], self._scores[c], self.source))
        return pd.concat(frames, ignore_index=True)

    def save(self, path: str | Path) -> None:
        """Write the ranked table to `<path>/popularity.{npz,json}` (no pickle)."""
        if self.now is None:
            raise RuntimeError("fit the generator before saving it")
        meta = {
            "format": _FORMAT,
            "config": self.config.model_dump(),
            "now": self.now.isoformat(),
            "items": self.top(len(self._items)),
        }
        save_artifacts(path, "popularity", {"scores": self._scores}, meta)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a generator written by `save`."""
        arrays, meta = load_artifacts(path, "popularity", _FORMAT)
        gen = cls(PopularityConfig.model_validate(meta["config"]))
        items = np.asarray(meta["items"], dtype=object)
        if len(items) != len(arrays["scores"]):
            raise ValueError(f"{path}: {len(items)} movies but {len(arrays['scores'])} scores")
        gen._set(items, arrays["scores"].astype(np.float64), pd.Timestamp(meta["now"]))
        return gen
