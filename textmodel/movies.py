"""Movie documents and their vectors, embedded once per catalogue change and cached under var/.

A movie's document is its title (the metadata title, else the slug's words without the year),
year, genres, and overview and keywords when the metadata API has them. The catalogue hash is the
sha256 of every (id, document) pair in id order plus the document format's version, so a changed
overview, a new movie or a new document format is a new catalogue.

Cache: `var/textmodel/movie_vectors/<model id>-<catalogue sha256>.npz` holding ids, the float32
matrix and a digest per document; written to a temporary file and renamed (readers never see half
a file). On a miss the newest file of the same model id donates the rows of unchanged documents,
so a catalogue that grew by a few movies costs a few encodes, not 20,000 (about 90 s on one core).
The newest `vector_cache_keep` files per model id are kept.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final, NamedTuple, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from textmodel import metrics
from textmodel.encoder import Matrix, TextEncoder
from textmodel.settings import TextSettings

log = logging.getLogger(__name__)

DOC_VERSION: Final = "movie-doc-v1"
"""Version of the document format; part of the catalogue hash (change it when the format changes)."""
_YEAR = re.compile(r"^(?:19|20)\d\d$")


class MovieVectors(NamedTuple):
    """Movie ids (in id order) and their vectors, row i for ids[i]."""

    ids: npt.NDArray[np.str_]
    matrix: Matrix


def title_from_slug(slug: str) -> str:
    """The slug's title words: `the+hunger+games+2012` -> `the hunger games` (`+`/`_` as spaces, year dropped)."""
    words = [w for w in re.split(r"[+_\s]+", slug) if w]
    if len(words) > 1 and _YEAR.match(words[-1]):
        words = words[:-1]
    return " ".join(words)


def _texts(value: Any) -> list[str]:
    """A list-like cell (list, array, `A|B` string) as its non-empty strings."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, str):
        return [p.strip() for p in re.split(r"[|,]", value) if p.strip()]
    if isinstance(value, Iterable):
        return [str(v).strip() for v in value if v is not None and str(v).strip()]
    return [str(value)]


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _year(value: Any, slug: str) -> int | None:
    """The metadata year (an int, or a float from a nullable Parquet column), else the slug's."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not pd.isna(value) and value > 0:
        return int(value)
    last = slug.replace("_", "+").split("+")[-1]
    return int(last) if _YEAR.match(last) else None


def movie_document(row: Mapping[str, Any]) -> str:
    """One movie's document: `Title (year). Genres: a, b. Overview. Keywords: x, y.` (absent parts left out)."""
    slug = str(row["movie_id"])
    title = _text(row.get("title")) or title_from_slug(slug)
    year = _year(row.get("year"), slug)
    parts = [f"{title} ({year})." if year else f"{title}."]
    if genres := _texts(row.get("genres")):
        parts.append(f"Genres: {', '.join(genres)}.")
    if overview := _text(row.get("overview")):
        parts.append(overview)
    if keywords := _texts(row.get("keywords")):
        parts.append(f"Keywords: {', '.join(keywords)}.")
    return " ".join(parts)


def movie_documents(movies: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(ids, documents) of a frame with `movie_id` and any of title, year, genres, overview, keywords; id order."""
    frame = movies.drop_duplicates("movie_id", keep="last").sort_values("movie_id")
    records = cast("list[dict[str, Any]]", frame.to_dict("records"))
    return [str(r["movie_id"]) for r in records], [movie_document(r) for r in records]


def _doc_digests(ids: list[str], docs: list[str]) -> npt.NDArray[np.str_]:
    return np.array(
        [hashlib.sha256(f"{i}\x00{d}".encode()).hexdigest()[:16] for i, d in zip(ids, docs, strict=True)],
        dtype=np.str_,
    )


def catalogue_hash(ids: list[str], docs: list[str]) -> str:
    """sha256 of the document version and every (id, document) pair, in the given (id) order."""
    h = hashlib.sha256(DOC_VERSION.encode())
    for i, d in zip(ids, docs, strict=True):
        h.update(f"\x1e{i}\x00{d}".encode())
    return h.hexdigest()


def cache_dir(settings: TextSettings | None = None) -> Path:
    """var/textmodel/movie_vectors."""
    return (settings or TextSettings()).root / "movie_vectors"


def _safe(model_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", model_id)


def cache_path(model_id: str, catalogue: str, settings: TextSettings | None = None) -> Path:
    """Where the vectors of `model_id` for catalogue hash `catalogue` are cached."""
    return cache_dir(settings) / f"{_safe(model_id)}-{catalogue}.npz"


def _read(path: Path) -> tuple[MovieVectors, npt.NDArray[np.str_]] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            vectors = MovieVectors(data["ids"], data["matrix"].astype(np.float32, copy=False))
            return vectors, data["digests"]
    except (OSError, KeyError, ValueError) as exc:  # half-deleted or foreign file: recompute
        log.warning("movie vectors %s unreadable (%s); recomputing", path, exc)
        return None


def load_movie_vectors(
    model_id: str, catalogue: str, settings: TextSettings | None = None
) -> MovieVectors | None:
    """The cached vectors of `model_id` for catalogue hash `catalogue`, or None when not cached."""
    path = cache_path(model_id, catalogue, settings)
    found = _read(path) if path.is_file() else None
    return found[0] if found else None


def _write_atomic(path: Path, vectors: MovieVectors, digests: npt.NDArray[np.str_]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, ids=vectors.ids, matrix=vectors.matrix, digests=digests)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _siblings(model_id: str, settings: TextSettings | None) -> list[Path]:
    """Cache files of `model_id`, newest first."""
    folder = cache_dir(settings)
    files = folder.glob(f"{_safe(model_id)}-*.npz") if folder.is_dir() else iter(())
    return sorted(files, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def movie_vectors(
    encoder: TextEncoder, movies: pd.DataFrame, settings: TextSettings | None = None
) -> MovieVectors:
    """Vectors of the movies' documents: from the cache when this catalogue was embedded, else embedded and cached."""
    settings = settings or TextSettings()
    ids, docs = movie_documents(movies)
    catalogue = catalogue_hash(ids, docs)
    path = cache_path(encoder.model_id, catalogue, settings)
    cached = load_movie_vectors(encoder.model_id, catalogue, settings)
    if cached is None:
        # Several processes (API workers, replicas on one volume) start on one catalogue: one embeds it,
        # the others wait on the lock and then read its file instead of each spending the CPU again.
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                cached = load_movie_vectors(encoder.model_id, catalogue, settings)
                if cached is None:
                    metrics.MOVIE_VECTOR_CACHE.labels("miss").inc()
                    return _embed(encoder, ids, docs, path, settings)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    metrics.MOVIE_VECTOR_CACHE.labels("hit").inc()
    return cached


def _embed(
    encoder: TextEncoder, ids: list[str], docs: list[str], path: Path, settings: TextSettings
) -> MovieVectors:
    """Embed the catalogue (reusing rows of the newest other cache file of the model), write it to `path`."""
    digests = _doc_digests(ids, docs)
    matrix = np.zeros((len(ids), encoder.dim), dtype=np.float32)
    todo = np.ones(len(ids), dtype=bool)
    previous = next((p for p in _siblings(encoder.model_id, settings) if p != path), None)
    donor = _read(previous) if previous else None
    if donor is not None and donor[0].matrix.shape[1] == encoder.dim:
        row_of = {d: r for r, d in enumerate(donor[1].tolist())}
        for i, d in enumerate(digests.tolist()):
            if (r := row_of.get(d)) is not None:
                matrix[i] = donor[0].matrix[r]
                todo[i] = False
    fresh = np.flatnonzero(todo)
    if len(fresh):
        matrix[fresh] = encoder.encode([docs[i] for i in fresh])
    vectors = MovieVectors(np.array(ids, dtype=np.str_), matrix)
    _write_atomic(path, vectors, digests)
    log.info(
        "movie vectors %s: %d movies, %d embedded, %d reused -> %s",
        encoder.model_id, len(ids), len(fresh), len(ids) - len(fresh), path,
    )  # fmt: skip
    for old in _siblings(encoder.model_id, settings)[settings.vector_cache_keep :]:
        old.unlink(missing_ok=True)
    return vectors
