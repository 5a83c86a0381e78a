"""The movie-change counter: writes of movie views bump it, user views do not (fake store and client)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from feature_repo import online_signal
from ingestion.online import FeastOnlineWriter


class FakeRedis:
    def __init__(self) -> None:
        self.data: dict[str, int] = {}

    def incr(self, key: str) -> int:
        self.data[key] = self.data.get(key, 0) + 1
        return self.data[key]

    def get(self, key: str) -> bytes | None:
        return str(self.data[key]).encode() if key in self.data else None


class FakeStore:
    def __init__(self) -> None:
        self.written: list[str] = []

    def write_to_online_store(self, view: str, frame: Any) -> None:
        self.written.append(view)


def test_movie_writes_bump_the_counter_user_writes_do_not() -> None:
    signal, store = FakeRedis(), FakeStore()
    writer = FeastOnlineWriter(store, signal)
    rows = pa.table({"x": [1]})
    assert online_signal.read(signal) == 0
    writer.write("user_watch_stats", rows)
    assert online_signal.read(signal) == 0
    writer.write("movie_popularity", rows)
    writer.write("movie_metadata", rows)
    assert online_signal.read(signal) == 2
    assert store.written == ["user_watch_stats", "movie_popularity", "movie_metadata"]


def test_without_a_signal_client_writes_still_go_through() -> None:
    store = FakeStore()
    FeastOnlineWriter(store).write("movie_metadata", pa.table({"x": [1]}))
    assert store.written == ["movie_metadata"]
