"""Licence cost and runtime per movie, from the offline store's `movie_metadata` view (latest row per movie)."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import pyarrow.dataset as ds

log = logging.getLogger(__name__)


class MovieFacts:
    """movie id -> (cost per play, runtime minutes); re-read at most every `refresh_s` when new files landed."""

    def __init__(self, var: Path, refresh_s: float = 60.0) -> None:
        self.folder = var / "offline" / "features" / "movie_metadata"
        self.refresh_s = refresh_s
        self.facts: dict[str, tuple[float | None, float | None]] = {}
        self._files = -1
        self._read_at = 0.0

    def __call__(self, movie: str) -> tuple[float | None, float | None]:
        """(cost, runtime) of a movie, None for what is unknown."""
        return self.facts.get(movie, (None, None))

    def refresh(self) -> None:
        """Re-read when the folder has a different number of files; never raises (keeps what it had)."""
        now = time.monotonic()
        if now - self._read_at < self.refresh_s and self._files >= 0:
            return
        self._read_at = now
        try:
            files = sorted(self.folder.glob("*.parquet"))
            if len(files) == self._files:
                return
            self._files = len(files)
            if not files:
                return
            table = ds.dataset([str(f) for f in files], format="parquet").to_table(
                columns=["movie_id", "cost", "runtime", "event_timestamp"]
            )
        except (OSError, ValueError) as exc:  # a half-written file: next time
            log.warning("movie metadata not read: %s", exc)
            return
        df = table.to_pandas().sort_values("event_timestamp").drop_duplicates("movie_id", keep="last")
        cost = df["cost"].astype("float64").to_numpy()
        runtime = df["runtime"].astype("float64").to_numpy()
        self.facts = {
            str(m): (None if math.isnan(c) else float(c), None if math.isnan(r) or r <= 0 else float(r))
            for m, c, r in zip(df["movie_id"], cost, runtime, strict=True)
        }
