"""Public user and movie records, looked up by id: what the metadata API serves.

Users stay in an Arrow table (1M rows, a few hundred MB) and are converted per request; the
20K movie records are built once as JSON-ready dicts with TMDB-style genres and the `adult`
flag (`simulator.catalog.adult_flags` of the tmdb id, so it needs no column in the stored world).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from simulator.api.errors import MalformedIdError, TooManyIdsError
from simulator.catalog import adult_flags
from simulator.store import read_public
from simulator.vocab import GENRES
from simulator.world import WorldMeta

Record = dict[str, Any]

_SLUG: Final = re.compile(r"[^\s,/=\x00-\x1f\x7f]{1,256}")
_GENRE_IDS: Final = {g.name: g.tmdb_id for g in GENRES}
_MAX_USER_ID: Final = 2**63 - 1


def split_ids(raw: str, max_ids: int) -> list[str]:
    """The comma-separated ids of a path, or TooManyIdsError / MalformedIdError for an empty item."""
    parts = raw.split(",")
    if len(parts) > max_ids:
        raise TooManyIdsError(f"{len(parts)} ids requested; at most {max_ids} per request")
    for p in parts:
        if not p:
            raise MalformedIdError("empty id in the list (stray comma?)")
    return parts


def parse_user_ids(parts: list[str]) -> list[int]:
    """User ids as integers, or MalformedIdError naming the first bad one."""
    out = []
    for p in parts:
        if not (p.isascii() and p.isdigit()) or len(p) > 19 or int(p) > _MAX_USER_ID:
            raise MalformedIdError(f"user id must be a non-negative integer: {p[:60]!r}")
        out.append(int(p))
    return out


def check_movie_ids(parts: list[str]) -> list[str]:
    """Movie ids unchanged, or MalformedIdError for one with white space, '/', '=' or control characters."""
    for p in parts:
        if not _SLUG.fullmatch(p):
            raise MalformedIdError(f"not a movie id (no white space, ',', '/' or '=' allowed): {p[:60]!r}")
    return parts


class MetadataStore:
    """Lookups over the stored world's public records."""

    def __init__(self, meta: WorldMeta, users: pa.Table, movies: pa.Table) -> None:
        self.meta = meta
        self._users = users
        for name in ("cost", "vote_average", "popularity"):  # float32 on disk: round to what TMDB shows
            i = movies.schema.get_field_index(name)
            movies = movies.set_column(i, name, pc.round(movies.column(name).cast(pa.float64()), 3))
        self._movies: list[Record] = movies.to_pylist()
        adult = adult_flags(movies.column("tmdb_id").to_numpy()).tolist()
        for rec, flag in zip(self._movies, adult, strict=True):
            rec["genres"] = [{"id": _GENRE_IDS[g], "name": g} for g in rec["genres"]]
            rec["adult"] = flag
        self._movie_index = {rec["id"]: i for i, rec in enumerate(self._movies)}

    @classmethod
    def load(cls, sim_dir: Path) -> MetadataStore:
        """Load the world stored under `sim_dir`."""
        return cls(*read_public(sim_dir))

    @property
    def n_users(self) -> int:
        """Users in the world."""
        return int(self._users.num_rows)

    @property
    def n_movies(self) -> int:
        """Movies in the catalogue."""
        return len(self._movies)

    def users(self, ids: list[int]) -> list[Record | None]:
        """Records of the users, None for unknown ids, in request order."""
        known = [i for i in ids if 1 <= i <= self.n_users]
        rows = self._users.take(pa.array([i - 1 for i in known], pa.int64())).to_pylist() if known else []
        found = dict(zip(known, rows, strict=True))
        return [dict(found[i]) if i in found else None for i in ids]

    def movies(self, ids: list[str]) -> list[Record | None]:
        """Records of the movies (fresh copies), None for unknown ids, in request order."""
        out: list[Record | None] = []
        for movie_id in ids:
            i = self._movie_index.get(movie_id)
            out.append(None if i is None else {**self._movies[i], "genres": list(self._movies[i]["genres"])})
        return out
