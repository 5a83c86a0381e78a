"""The movie side of every request, held in memory: Feast online movie features as NumPy columns.

Fetching 500 candidate movies' features from Redis per request costs ~18 ms (FIELD-NOTES);
a table of all 20,000 movies in memory answers the same lookup in microseconds. The table is
read from the Feast online store (the same values `get_online_features` would return) by a
background refresher and replaced whole, so a request sees one consistent snapshot.

Besides the ranker's NUMERIC columns it holds `ADULT` (1.0 adult, 0.0 not, NaN unknown), which
only the post-scoring constraints read (`serving.constraints`).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from events.metadata import GENRES
from feature_repo.online_signal import MOVIE_VIEWS
from ranking.transforms import (
    MOVIE_COLUMNS,
    MOVIE_FIRST_PLAY,
    MOVIE_GENRES,
    MOVIE_YEAR,
    genre_onehot,
    unknown_cost,
)
from serving.online_reader import OnlineLayout

log = logging.getLogger(__name__)

NUMERIC: Final = (*MOVIE_COLUMNS, MOVIE_YEAR, MOVIE_FIRST_PLAY)
"""Numeric movie columns the transforms read."""
COST: Final = "movie_metadata__cost"
ADULT: Final = "movie_metadata__adult"
"""The adult flag as a float column: 1.0 adult, 0.0 not, NaN unknown (never fed to the ranker)."""
EXTRA: Final = (ADULT,)
"""Columns held besides NUMERIC: read by the constraints after scoring, not by the transforms."""
CHUNK: Final = 5_000
"""Movies per Redis pipeline (bounds one round trip's reply size)."""


@dataclass(frozen=True)
class MovieTable:
    """Movie features by row; `row_of` maps a movie id to its row."""

    ids: npt.NDArray[Any]
    columns: dict[str, npt.NDArray[np.float64]]
    genres: npt.NDArray[np.float32]
    loaded_at: float = field(default_factory=time.time)
    generation: int = 0
    """Increments on each refresh, so per-model row maps know when to rebuild."""

    @property
    def row_of(self) -> dict[str, int]:
        """Movie id -> row (built once per table)."""
        cached: dict[str, int] | None = self.__dict__.get("_row_of")
        if cached is None:
            cached = {str(m): i for i, m in enumerate(self.ids)}
            object.__setattr__(self, "_row_of", cached)
        return cached

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def matrix(self) -> npt.NDArray[np.float64]:
        """The NUMERIC columns side by side (rows x len(NUMERIC)), built once per table: one take per request."""
        cached: npt.NDArray[np.float64] | None = self.__dict__.get("_matrix")
        if cached is None:
            cols = [self.columns.get(c, np.full(len(self.ids), np.nan)) for c in NUMERIC]
            cached = np.column_stack(cols) if len(self.ids) else np.empty((0, len(NUMERIC)))
            object.__setattr__(self, "_matrix", cached)
        return cached

    @property
    def cost_of(self) -> dict[str, float]:
        """Movie id -> licence cost (known costs only), built once per table."""
        cached: dict[str, float] | None = self.__dict__.get("_cost_of")
        if cached is None:
            cost = self.columns.get(COST, np.empty(0))
            cached = {str(m): float(c) for m, c in zip(self.ids, cost, strict=False) if np.isfinite(c)}
            object.__setattr__(self, "_cost_of", cached)
        return cached

    @property
    def unknown_cost(self) -> float:
        """Licence cost assumed for a movie of unknown cost: `ranking.transforms.unknown_cost` of the known ones."""
        cached: float | None = self.__dict__.get("_unknown_cost")
        if cached is None:
            cached = unknown_cost(
                np.fromiter(self.cost_of.values(), dtype=np.float64, count=len(self.cost_of))
            )
            object.__setattr__(self, "_unknown_cost", cached)
        return cached

    def warm(self) -> MovieTable:
        """Build the per-table caches (row map, matrix, costs) now: off the request path, before the table serves."""
        _ = self.row_of, self.matrix, self.unknown_cost
        return self

    def reindex(self, movie_ids: Sequence[str] | npt.NDArray[Any]) -> MovieTable:
        """The table with one row per given movie in that order (NaN features, no genres where unknown)."""
        rows = self.rows(movie_ids)
        return MovieTable(
            np.asarray(movie_ids, dtype=object),
            {c: self.gather(c, rows) for c in (*NUMERIC, *EXTRA)},
            self.gather_genres(rows),
            loaded_at=self.loaded_at,
            generation=self.generation,
        )

    def rows(self, movie_ids: Sequence[str] | npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        """Rows of the given movies, -1 for movies the table does not hold."""
        row_of = self.row_of
        return np.fromiter((row_of.get(str(m), -1) for m in movie_ids), dtype=np.int64, count=len(movie_ids))

    def gather(self, name: str, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """Values of one column at `rows` (NaN where the row is -1 or the column is unknown)."""
        col = self.columns.get(name)
        if col is None or not len(col):
            return np.full(len(rows), np.nan)
        out = col[np.maximum(rows, 0)]
        return np.where(rows >= 0, out, np.nan)

    def gather_genres(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """One-hot genre rows at `rows` (zeros where unknown)."""
        if not len(self.genres):
            return np.zeros((len(rows), len(GENRES)), np.float32)
        out = self.genres[np.maximum(rows, 0)]
        out[rows < 0] = 0.0
        return out

    @classmethod
    def empty(cls) -> MovieTable:
        """A table with no movies (every feature missing): what serving has before the first load."""
        return cls(
            np.empty(0, dtype=object),
            {c: np.empty(0) for c in (*NUMERIC, *EXTRA)},
            np.zeros((0, len(GENRES)), np.float32),
        )

    @classmethod
    def from_rows(cls, data: dict[str, list[Any]], generation: int = 0) -> MovieTable:
        """Build from columns as `get_online_features(...).to_dict()` gives them (full feature names)."""
        ids = np.asarray([str(m) for m in data["movie_id"]], dtype=object)
        columns = {}
        for name in (*NUMERIC, *EXTRA):  # a bool (ADULT) becomes 1.0 / 0.0, a missing value NaN
            raw = data.get(name, [None] * len(ids))
            columns[name] = np.asarray([np.nan if v is None else float(v) for v in raw], dtype=np.float64)
        genres = genre_onehot(list(data.get(MOVIE_GENRES, [None] * len(ids))))
        return cls(ids, columns, genres, generation=generation)


def read_online(store: Any, redis_url: str, movie_ids: Sequence[str], generation: int = 0) -> MovieTable:
    """Every listed movie's online features, read in Feast's Redis layout; raises when Redis fails.

    `serving.online_reader` decodes exactly what `get_online_features` returns (integration
    test) at a third of its CPU: 20,000 movies in ~1.6 s instead of ~5.7 s.
    """
    import redis

    layout = OnlineLayout.from_store(store, MOVIE_VIEWS)
    client = redis.Redis.from_url(redis_url, socket_timeout=30.0, socket_connect_timeout=5.0)
    try:
        rows = layout.read_many(client, [str(m) for m in movie_ids], chunk=CHUNK)
    finally:
        client.close()
    names = (layout.join_key, *layout.names)
    return MovieTable.from_rows({name: [row[name] for row in rows] for name in names}, generation)


_CHILD_STORE: dict[tuple[str, str], tuple[Any, Any]] = {}
"""The refresher process's Feast store and Redis client, opened once per (var dir, Redis URL)."""


def _child_store(var: str, redis_url: str) -> tuple[Any, Any]:
    """The reader process's Feast store and Redis client for (var dir, Redis URL), opened on first use."""
    import redis

    from feature_repo.config import open_store

    key = (var, redis_url)
    if key not in _CHILD_STORE:
        client = redis.Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
        _CHILD_STORE[key] = (open_store(Path(var), redis_url), client)
    return _CHILD_STORE[key]


def _read_in_child(
    var: str, redis_url: str, movie_ids: list[str], generation: int, max_age_s: float
) -> MovieTable:
    from feature_repo import online_signal
    from serving.table_snapshot import shared_read

    store, client = _child_store(var, redis_url)
    return shared_read(Path(var), movie_ids, generation, lambda: online_signal.peek(client),
                       lambda: read_online(store, redis_url, movie_ids, generation), max_age_s)  # fmt: skip


READER_NICE = 10
"""Niceness of the reader process: its ~1.6 s of CPU per read must not take the CPU from the requests."""


def _warm_child(var: str, redis_url: str) -> bool:
    """Open the reader process's store and client (imports and registry: what its first read would pay under load)."""
    _child_store(var, redis_url)
    return True


def _lower_priority() -> None:
    """Reader process start: a lower CPU priority than the serving workers (the soak saw their event loops
    stall for ~200 ms while a read ran at the same priority on a 2-core host)."""
    with contextlib.suppress(OSError):
        os.nice(READER_NICE)
    # SCHED_IDLE as well: a waking worker preempts the read at once, whatever the niceness.
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


class TableReader:
    """Reads the movie table in a separate process, so the seconds of Python it takes never hold the
    serving process's interpreter lock (at 20,000 movies the read and decode cost ~1.6 s of CPU; the
    Feast SDK's took 6-9 s). Workers share one read per change through `serving.table_snapshot`."""

    def __init__(self, var: Path, redis_url: str, max_age_s: float = 0.0) -> None:
        self.var, self.redis_url = str(var.resolve()), redis_url
        self.max_age_s = max_age_s
        """How old another worker's snapshot of the same counter may be to serve this read (serving.table_snapshot)."""
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_lower_priority
            )
        return self._pool

    def warm(self, timeout_s: float = 120.0) -> None:
        """Start the reader process and import what a read needs, before traffic; never raises (a read retries)."""
        try:
            self._executor().submit(_warm_child, self.var, self.redis_url).result(timeout=timeout_s)
        except Exception as exc:  # the first read starts it again
            log.warning("movie table reader did not start: %s", exc)

    def read(self, movie_ids: Sequence[str], generation: int, timeout_s: float = 300.0) -> MovieTable:
        """The table from the refresher process; raises what the read raised, or TimeoutError."""
        future = self._executor().submit(
            _read_in_child, self.var, self.redis_url, list(movie_ids), generation, self.max_age_s
        )
        return future.result(timeout=timeout_s)

    def close(self) -> None:
        """Stop the refresher process."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
