"""One movie-table read shared by all serving workers of a host: a snapshot file behind a file lock.

Every worker re-reads the movie table when writers bump the movie-change counter; with N
workers that would be N identical reads of 20,000 movies (~1.6 s of CPU each, in each worker's
refresher process). The first refresher to take the lock reads Redis and leaves a snapshot
stamped with the counter value it saw before reading; the others find a snapshot of the same
counter, the same movie ids and younger than `max_age_s`, and load it in milliseconds.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import numpy as np

from serving.movie_table import MovieTable

SNAPSHOT: Final = "serving/movie_table.npz"
"""Under the var dir: the last movie table read by any worker, with what it was read for."""
LOCK: Final = "serving/movie_table.lock"
"""Under the var dir: held while a refresher decides between loading the snapshot and reading Redis."""


def _ids_hash(movie_ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(movie_ids).encode()).hexdigest()


def _save(path: Path, table: MovieTable, meta: dict[str, Any]) -> None:
    arrays: dict[str, Any] = {f"col:{name}": values for name, values in table.columns.items()}
    arrays |= {
        "ids": np.asarray(table.ids, dtype=str),
        "genres": table.genres,
        "meta": np.asarray(json.dumps(meta)),
    }
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with tmp.open("wb") as f:  # a file object: np.savez would append ".npz" to a name
        np.savez(f, **arrays)
    tmp.replace(path)  # readers see the old snapshot or the new one, never half of one


def _load(path: Path) -> tuple[dict[str, Any], MovieTable] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            columns = {k.removeprefix("col:"): data[k] for k in data.files if k.startswith("col:")}
            table = MovieTable(data["ids"].astype(object), columns, data["genres"], loaded_at=meta["read_at"])
    except (OSError, ValueError, KeyError, TypeError):  # missing or unreadable: read Redis instead
        return None
    return meta, table


def shared_read(
    var: Path,
    movie_ids: Sequence[str],
    generation: int,
    counter: Callable[[], int | None],
    read: Callable[[], MovieTable],
    max_age_s: float,
) -> MovieTable:
    """The snapshot when it is as fresh as a read would be, else `read()` (and a new snapshot).

    `counter` gives the movie-change counter (None when unknown: then always read); it is taken
    before the read, so a write that lands during the read moves it and triggers the next one.
    """
    folder = var / "serving"
    folder.mkdir(parents=True, exist_ok=True)
    wanted = _ids_hash(movie_ids)
    with (var / LOCK).open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            changes = counter()
            found = _load(var / SNAPSHOT)
            if found is not None and changes is not None:
                meta, table = found
                fresh = time.time() - float(meta["read_at"]) < max_age_s
                if meta.get("counter") == changes and meta.get("ids") == wanted and fresh:
                    return replace(table, generation=generation)
            started = time.time()
            table = read()
            _save(var / SNAPSHOT, table, {"counter": changes, "ids": wanted, "read_at": started})
            return table
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
