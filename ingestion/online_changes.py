"""Which movie rows the online store does not hold yet: the movie job pushes only those.

Each refresh recomputes every movie's features (20K rows at full scale, every `movie_refresh_s`),
but most of them are the values already online. Pushing all of them through Feast's Python
writer took most of the ingestion worker's CPU in the soak, and every push makes each API worker
re-read its movie table. A row is pushed when its feature values (the stamps aside) differ from
the last ones pushed for that movie, or when its last push is older than `repush_s` (so a row
never outlives a view's TTL online, and a store that lost a key without a rebuild heals).
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

STAMPS = frozenset({"event_timestamp", "created"})
"""Columns that change every refresh without the features changing."""


class ChangedRows:
    """Per view and movie: the digest of the values last pushed and when."""

    def __init__(self, repush_s: float) -> None:
        self.repush_s = repush_s
        self._pushed: dict[str, dict[str, tuple[bytes, float]]] = {}

    def select(self, view: str, rows: pa.Table, now: float) -> tuple[pa.Table, list[tuple[str, bytes]]]:
        """The rows to push (one per movie, as given) and their (movie, digest), for `commit` once written."""
        known = self._pushed.get(view, {})
        values = rows.select([c for c in rows.column_names if c not in STAMPS]).to_pylist()
        keep: list[int] = []
        digests: list[tuple[str, bytes]] = []
        for i, row in enumerate(values):
            movie = str(row["movie_id"])
            digest = hashlib.blake2b(repr(sorted(row.items())).encode(), digest_size=16).digest()
            last = known.get(movie)
            if last is None or last[0] != digest or now - last[1] > self.repush_s:
                keep.append(i)
                digests.append((movie, digest))
        return rows.take(pa.array(keep, pa.int64())), digests

    def commit(self, view: str, digests: list[tuple[str, bytes]], now: float) -> None:
        """Record rows as written (call only after the write succeeded: a failed one is retried next time)."""
        known = self._pushed.setdefault(view, {})
        for movie, digest in digests:
            known[movie] = (digest, now)

    def forget(self) -> None:
        """Push everything next time (the online store was rebuilt or replaced)."""
        self._pushed.clear()
