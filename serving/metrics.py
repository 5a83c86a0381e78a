"""Prometheus metrics of the recommendation API (names are the contract in docs/deploy.md).

With several uvicorn workers each process counts on its own: `recsys serve` points
`PROMETHEUS_MULTIPROC_DIR` at a fresh folder before the workers start and names it in
`RECSYS_SERVING_METRICS_DIR`, and `/metrics` then sums every worker's files. Our own variable
decides, not prometheus_client's: importing Feast sets `PROMETHEUS_MULTIPROC_DIR` to a temp
folder of its own in every process, which would otherwise hide this process's metrics.
"""

from __future__ import annotations

import os
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV: Final = "RECSYS_SERVING_METRICS_DIR"
"""Set by `recsys serve` with several workers: the folder their metric files share."""
LATENCY_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.1,
    0.2,
    0.4,
    0.6,
    1.0,
    2.5,
)
"""Seconds; includes 0.6 so the SLA quantile is exact (the alert rule reads it)."""

REQUESTS: Final = Counter(
    "recsys_requests", "Answered GET /recommend requests.", ["status", "arm", "model", "path"]
)
LATENCY: Final = Histogram(
    "recsys_request_latency_seconds", "Server-side latency of GET /recommend.", buckets=LATENCY_BUCKETS
)
LOOP_LAG: Final = Histogram(
    "recsys_event_loop_lag_seconds",
    "How late a worker's event loop runs a 50 ms timer: time every queued request waits on top.",
    buckets=LATENCY_BUCKETS,
)
FALLBACKS: Final = Counter("recsys_fallback", "Answers served from the fallback list, by reason.", ["reason"])
COLD_STARTS: Final = Counter(
    "recsys_cold_start", "Answers to users without history, by the policy that served them.", ["policy"]
)
COLD_START_OUTCOMES: Final = Counter(
    "recsys_cold_start_outcome",
    "Answers of an arm's cold-start policy by outcome: stored_vector, degraded_encoder (TF-IDF vectors), "
    "model_mismatch (titles/genres only), no_vector, no_description and not_ready (both: popular), "
    "handover (a ranker answer mixed with the description's).",
    ["policy", "outcome"],
)
LIST_COST: Final = Histogram(
    "recsys_list_license_cost_usd",
    "Summed per-play licence cost of each answered list (USD).",
    ["arm"],
    buckets=(1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 250),
)
UNKNOWN_COST: Final = Counter(
    "recsys_list_unknown_cost_movies",
    "Movies in answered lists whose licence cost is unknown (priced at the p90 of known costs).",
)
CONSTRAINT_FIRED: Final = Counter(
    "recsys_constraint_fired",
    "Answers in which a ranking constraint fired (docs/constraints.md): adult (adult titles removed for a "
    "user under 18 or of unknown age), adult_unknown (a title of unknown adult flag served to such a user), "
    "genre_cap (the genre cap re-ordered the list), unknown_cost (candidates priced at the assumed licence cost).",
    ["constraint"],
)
CONSTRAINT_MOVIES: Final = Counter(
    "recsys_constraint_movies",
    "Movies each ranking constraint acted on: adult titles removed, unknown-flag titles served to restricted "
    "users, movies the genre cap passed over, candidates priced at the assumed licence cost.",
    ["constraint"],
)
EXPLORED_SLOTS: Final = Counter(
    "recsys_exploration_slots",
    "List slots served with an explored movie (outside the popular head), by where it was drawn from: "
    "candidates (the user's unserved candidates) or catalogue.",
    ["source"],
)
MODEL_VERSION: Final = Gauge(
    "recsys_model_version", "Registered version served under each ref.", ["ref"], multiprocess_mode="max"
)
MODEL_SWAPS: Final = Counter("recsys_model_swaps", "Zero-downtime model swaps, by ref.", ["ref"])
MODEL_LOAD_FAILURES: Final = Counter(
    "recsys_model_load_failures",
    "Model versions that failed to load or check (the old one kept serving).",
    ["ref"],
)
FEATURE_ERRORS: Final = Counter(
    "recsys_feature_errors",
    "Online feature reads that failed, timed out or were skipped by the breaker.",
    ["reason"],
)
MISSING_USER_FEATURES: Final = Counter(
    "recsys_missing_user_features",
    "Answers to users the model knows but whose online features were all missing (store emptied): path model_no_features.",
)
MOVIE_TABLE_AGE: Final = Gauge(
    "recsys_movie_table_age_seconds", "Age of the in-memory movie feature table.", multiprocess_mode="max"
)
MOVIE_TABLE_REFRESHES: Final = Counter(
    "recsys_movie_table_refreshes",
    "Re-reads of the movie feature table, by trigger (changed: writers bumped the counter; periodic).",
    ["trigger"],
)
PROVENANCE_DROPPED: Final = Gauge(
    "recsys_provenance_overflow",
    "Provenance records dropped because the buffer was full (Kafka down).",
    multiprocess_mode="sum",
)
PROVENANCE_SCANS: Final = Gauge(
    "recsys_provenance_scans",
    "Provenance topic scans started because the Redis index could not answer (0 when it works).",
    multiprocess_mode="sum",
)
PROVENANCE_INDEX_DROPPED: Final = Gauge(
    "recsys_provenance_index_dropped",
    "Provenance index entries lost because Redis stayed unreachable longer than the write queue holds.",
    multiprocess_mode="sum",
)
FEATURE_LOG_DROPPED: Final = Counter(
    "recsys_feature_log_dropped",
    "Sampled answers the feature log dropped because its writer's queue was full (or a write failed).",
)
FEATURE_LOG_ROWS: Final = Counter(
    "recsys_feature_log_rows", "Candidate rows written to the sampled feature log."
)
READY: Final = Gauge("recsys_ready", "1 when models and features are loaded.", multiprocess_mode="min")
ONLINE_STORE_WHOLE: Final = Gauge(
    "recsys_online_store_whole",
    "1 when the online store's marker says it is whole, 0 when it is empty or Redis restarted (rebuild pending).",
    multiprocess_mode="min",
)


def count_model_event(event: str, ref: str) -> None:
    """The model manager's callback: a swap or a failed load of the version under `ref`."""
    if event == "swapped":
        MODEL_SWAPS.labels(ref).inc()
    elif event == "load_failed":
        MODEL_LOAD_FAILURES.labels(ref).inc()


def render() -> tuple[bytes, str]:
    """The exposition text of this process, or of all workers in multiprocess mode."""
    folder = os.environ.get(MULTIPROC_ENV)
    if folder:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
