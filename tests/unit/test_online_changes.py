"""The movie job pushes only rows whose values changed (or whose last push is old)."""

from __future__ import annotations

import math

import pyarrow as pa

from ingestion.online_changes import ChangedRows


def _rows(plays: list[float], stamp: int) -> pa.Table:
    return pa.table({
        "movie_id": [f"m{i}" for i in range(len(plays))],
        "event_timestamp": pa.array([stamp] * len(plays), pa.int64()),
        "created": pa.array([stamp] * len(plays), pa.int64()),
        "plays_7d": plays,
        "genres": [["Drama"]] * len(plays),
    })  # fmt: skip


def test_only_changed_rows_are_pushed_and_old_ones_again_after_repush_s() -> None:
    changes = ChangedRows(repush_s=100.0)
    first, digests = changes.select("pop", _rows([1.0, 2.0, math.nan], 1), now=0.0)
    assert first.num_rows == 3
    changes.commit("pop", digests, now=0.0)
    # New stamps, one value changed (NaN stays NaN: unchanged).
    second, digests = changes.select("pop", _rows([1.0, 5.0, math.nan], 2), now=10.0)
    assert second["movie_id"].to_pylist() == ["m1"] and second["plays_7d"].to_pylist() == [5.0]
    changes.commit("pop", digests, now=10.0)
    # Not committed (a failed write): the same row is selected again.
    third, _ = changes.select("pop", _rows([1.0, 5.0, 7.0], 3), now=20.0)
    assert third["movie_id"].to_pylist() == ["m2"]
    again, _ = changes.select("pop", _rows([1.0, 5.0, 7.0], 3), now=20.0)
    assert again["movie_id"].to_pylist() == ["m2"]
    # Views are kept apart; after repush_s every row goes again; forget() pushes all.
    assert changes.select("other", _rows([1.0], 4), now=20.0)[0].num_rows == 1
    stale = changes.select("pop", _rows([1.0, 5.0, math.nan], 5), now=105.0)[0]
    assert stale["movie_id"].to_pylist() == ["m0", "m2"], "pushed at 0, older than repush_s; m1 went at 10"
    changes.forget()
    assert changes.select("pop", _rows([1.0, 5.0, math.nan], 6), now=106.0)[0].num_rows == 3
