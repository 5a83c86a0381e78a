"""serving.table_snapshot: workers share one movie-table read per change (files in a temp dir, fake reads)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from events.metadata import GENRES
from serving.movie_table import NUMERIC, MovieTable
from serving.table_snapshot import SNAPSHOT, shared_read

IDS = ["a+2000", "b+2001", "c+2002"]


class Reads:
    """A fake Redis read that counts its calls and returns a distinct table each time."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> MovieTable:
        self.calls += 1
        columns = {c: np.arange(len(IDS), dtype=np.float64) + self.calls for c in NUMERIC}
        genres = np.eye(len(IDS), len(GENRES), dtype=np.float32)
        return MovieTable(np.asarray(IDS, dtype=object), columns, genres)


def test_same_counter_is_read_once_and_loaded_equal(tmp_path: Path) -> None:
    reads = Reads()
    first = shared_read(tmp_path, IDS, 1, lambda: 7, reads, max_age_s=60)
    second = shared_read(tmp_path, IDS, 5, lambda: 7, reads, max_age_s=60)  # the other worker
    assert reads.calls == 1
    assert list(second.ids) == IDS and second.generation == 5
    for c in NUMERIC:
        np.testing.assert_array_equal(second.columns[c], first.columns[c])
    np.testing.assert_array_equal(second.genres, first.genres)
    assert second.loaded_at <= time.time() and second.row_of["b+2001"] == 1


def test_a_moved_counter_other_ids_or_an_old_snapshot_read_again(tmp_path: Path) -> None:
    reads = Reads()
    shared_read(tmp_path, IDS, 1, lambda: 7, reads, max_age_s=60)
    shared_read(tmp_path, IDS, 2, lambda: 8, reads, max_age_s=60)
    assert reads.calls == 2
    shared_read(tmp_path, IDS[:2], 3, lambda: 8, reads, max_age_s=60)
    assert reads.calls == 3
    shared_read(tmp_path, IDS[:2], 4, lambda: 8, reads, max_age_s=0.0)
    assert reads.calls == 4


def test_unknown_counter_or_a_broken_snapshot_read_redis(tmp_path: Path) -> None:
    reads = Reads()
    shared_read(tmp_path, IDS, 1, lambda: None, reads, max_age_s=60)
    shared_read(tmp_path, IDS, 2, lambda: None, reads, max_age_s=60)
    assert reads.calls == 2
    (tmp_path / SNAPSHOT).write_bytes(b"not a snapshot")
    table = shared_read(tmp_path, IDS, 3, lambda: 1, reads, max_age_s=60)
    assert reads.calls == 3 and table.columns[NUMERIC[0]][0] == 3
    assert not [p for p in os.listdir(tmp_path / "serving") if p.endswith(".tmp")]
