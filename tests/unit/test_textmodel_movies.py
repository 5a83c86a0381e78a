"""Movie documents and the movie-vector cache keyed by model id and catalogue hash."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client import REGISTRY

from textmodel.encoder import Matrix
from textmodel.movies import (
    cache_dir,
    cache_path,
    catalogue_hash,
    load_movie_vectors,
    movie_document,
    movie_documents,
    movie_vectors,
    title_from_slug,
)
from textmodel.settings import TextSettings
from textmodel.tfidf import TfidfEncoder


class CountingEncoder:
    """TF-IDF that records which texts it was asked to encode."""

    def __init__(self, dim: int = 64, model_id: str | None = None) -> None:
        self._inner = TfidfEncoder(dim)
        self._id = model_id or self._inner.model_id
        self.seen: list[str] = []

    @property
    def model_id(self) -> str:
        return self._id

    @property
    def dim(self) -> int:
        return self._inner.dim

    def encode(self, texts: Sequence[str]) -> Matrix:
        self.seen.extend(texts)
        return self._inner.encode(texts)


def _catalogue(n: int = 6) -> pd.DataFrame:
    genres = [["Horror"], ["Comedy", "Romance"], ["Drama"], ["Science Fiction", "Action"], [], ["Animation"]]
    return pd.DataFrame({
        "movie_id": [f"movie+number+{i}+{1990 + i}" for i in range(n)],
        "genres": [np.array(genres[i % len(genres)], dtype=object) for i in range(n)],
    })  # fmt: skip


def _cache(result: str) -> float:
    return REGISTRY.get_sample_value("recsys_text_movie_vectors_cache_total", {"result": result}) or 0.0


@pytest.fixture
def settings(tmp_path: Path) -> TextSettings:
    return TextSettings(var_dir=tmp_path, encoder="tfidf", vector_cache_keep=2)


def test_titles_come_from_slugs_without_the_year() -> None:
    assert (
        title_from_slug("the+hunger+games+mockingjay+-+part+1+2014") == "the hunger games mockingjay - part 1"
    )
    assert title_from_slug("monsters_+inc.+2001") == "monsters inc."
    assert title_from_slug("2012+2009") == "2012"
    assert title_from_slug("1917") == "1917", "a title that is only a year keeps it"


def test_a_document_has_title_year_genres_overview_and_keywords_when_present() -> None:
    full = movie_document({
        "movie_id": "alien+1979", "title": "Alien", "year": 1979.0, "genres": np.array(["Horror", "Science Fiction"]),
        "overview": "A crew meets a deadly creature.", "keywords": "space|monster",
    })  # fmt: skip
    assert full == (
        "Alien (1979). Genres: Horror, Science Fiction. A crew meets a deadly creature. Keywords: space, monster."
    )
    bare = movie_document({"movie_id": "alien+1979", "title": None, "genres": None, "overview": float("nan")})
    assert bare == "alien (1979)."


def test_the_catalogue_hash_ignores_row_order_and_follows_content() -> None:
    frame = _catalogue()
    ids, docs = movie_documents(frame)
    assert ids == sorted(ids)
    h = catalogue_hash(ids, docs)
    assert catalogue_hash(*movie_documents(frame.iloc[::-1])) == h
    changed = frame.copy()
    changed["overview"] = ["new text" if i == 2 else None for i in range(len(frame))]
    assert catalogue_hash(*movie_documents(changed)) != h


def test_vectors_are_cached_per_model_and_catalogue_and_reread_on_a_hit(settings: TextSettings) -> None:
    frame = _catalogue()
    encoder = CountingEncoder()
    hits, misses = _cache("hit"), _cache("miss")

    ids, matrix = movie_vectors(encoder, frame, settings)
    assert list(ids) == sorted(frame["movie_id"]) and matrix.shape == (6, 64) and matrix.dtype == np.float32
    assert len(encoder.seen) == 6 and _cache("miss") == misses + 1
    path = cache_path(encoder.model_id, catalogue_hash(*movie_documents(frame)), settings)
    assert path.is_file() and path.parent == settings.var_dir / "textmodel" / "movie_vectors"
    assert not list(path.parent.glob(".tmp-*")), "the temporary file was renamed"

    again = movie_vectors(CountingEncoder(), frame.sample(frac=1.0, random_state=1), settings)
    assert np.array_equal(again.matrix, matrix) and list(again.ids) == list(ids)
    assert _cache("hit") == hits + 1

    loaded = load_movie_vectors(encoder.model_id, catalogue_hash(*movie_documents(frame)), settings)
    assert loaded is not None and np.array_equal(loaded.matrix, matrix)
    assert load_movie_vectors("other-model", "0" * 64, settings) is None

    other = CountingEncoder(model_id="another-model")
    movie_vectors(other, frame, settings)
    assert len(other.seen) == 6, "another model id is another cache entry"


def test_a_changed_catalogue_embeds_only_new_or_changed_documents(settings: TextSettings) -> None:
    frame = _catalogue(6)
    movie_vectors(CountingEncoder(), frame, settings)
    grown = _catalogue(8)
    grown["overview"] = ["A new overview." if i == 1 else None for i in range(8)]
    encoder = CountingEncoder()
    ids, matrix = movie_vectors(encoder, grown, settings)
    assert len(encoder.seen) == 3, "two new movies and one changed overview"
    full_ids, full_docs = movie_documents(grown)
    assert list(ids) == full_ids
    np.testing.assert_array_equal(matrix, TfidfEncoder(64).encode(full_docs))
    # vector_cache_keep=2: a third catalogue removes the oldest file.
    movie_vectors(CountingEncoder(), _catalogue(3), settings)
    assert len(list(cache_dir(settings).glob("*.npz"))) == 2


def test_an_unreadable_cache_file_is_recomputed(settings: TextSettings) -> None:
    frame = _catalogue()
    encoder = CountingEncoder()
    first = movie_vectors(encoder, frame, settings)
    path = cache_path(encoder.model_id, catalogue_hash(*movie_documents(frame)), settings)
    path.write_bytes(b"truncated")
    again = CountingEncoder()
    second = movie_vectors(again, frame, settings)
    assert len(again.seen) == 6 and np.array_equal(first.matrix, second.matrix)


def test_minilm_movie_vectors_are_384_wide(tmp_path: Path) -> None:
    from textmodel.tfidf import load_encoder

    settings = TextSettings(var_dir=tmp_path, encoder="onnx")
    ids, matrix = movie_vectors(load_encoder(settings), _catalogue(), settings)
    assert matrix.shape == (6, 384) and len(ids) == 6
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)


def test_processes_starting_together_embed_the_catalogue_once(settings: TextSettings) -> None:
    import threading
    import time

    class SlowEncoder(CountingEncoder):
        def encode(self, texts: Sequence[str]) -> Matrix:
            time.sleep(0.3)  # long enough that the second caller arrives while the first embeds
            return super().encode(texts)

    frame = _catalogue()
    encoders = [SlowEncoder(), SlowEncoder()]
    results: list[np.ndarray] = []
    threads = [
        threading.Thread(target=lambda e=e: results.append(movie_vectors(e, frame, settings).matrix))
        for e in encoders
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 2 and np.array_equal(results[0], results[1])
    assert sorted(len(e.seen) for e in encoders) == [0, 6], "the second waited for the first's file"
