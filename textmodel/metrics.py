"""Prometheus metrics of the text model (whichever process loads it: serving, ingestion, ranking)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DEGRADED = Gauge(
    "recsys_text_encoder_degraded",
    "1 when the sentence encoder fell back to TF-IDF because the ONNX model could not be loaded, else 0.",
    # Under serving's multiprocess collector: degraded when any worker is.
    multiprocess_mode="max",
)
FALLBACKS = Counter(
    "recsys_text_encoder_fallback_total",
    "Times the ONNX model could not be loaded and TF-IDF took over, by reason (missing, hash_mismatch, load_failed).",
    ["reason"],
)
MOVIE_VECTOR_CACHE = Counter(
    "recsys_text_movie_vectors_cache_total",
    "Movie-vector cache lookups by result (hit: read from var/, miss: embedded and written).",
    ["result"],
)
