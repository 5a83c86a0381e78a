"""Prometheus metrics of the ingestion workers (names are the contract with deploy/prometheus/rules)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("recsys_ingest_events_total", "Lines landed in the offline store, by kind.", ["kind"])
DLQ = Counter("recsys_ingest_dlq_total", "Lines sent to the dead-letter topic, by reason.", ["reason"])
BATCH_SECONDS = Histogram(
    "recsys_ingest_batch_write_seconds",
    "Wall time to land one partition's batch (Parquet, DLQ, features, progress).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PUSH_SECONDS = Histogram(
    "recsys_ingest_online_push_seconds",
    "Wall time of one push of user features to the online store.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
PUSH_FAILURES = Counter(
    "recsys_ingest_online_push_failures_total", "Online pushes that failed (retried later)."
)
PENDING_PUSH = Gauge("recsys_ingest_online_pending_users", "Users whose online features wait for a push.")
FRESHNESS = Histogram(
    "recsys_ingest_freshness_seconds",
    "From a line's Kafka timestamp to its user's features being online.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60),
)
LAG = Gauge("recsys_ingest_consumer_lag", "Messages behind the partition's high watermark.", ["partition"])

# --- metadata enrichment (ingestion.enrichment.MetadataClient) ----------------------------------
ENRICH_REQUESTS = Counter(
    "recsys_enrichment_requests_total",
    "Metadata API requests by resource and outcome (ok, not_found, rejected, failed, short_circuited, deadline).",
    ["kind", "outcome"],
)
ENRICH_SECONDS = Histogram(
    "recsys_enrichment_request_seconds",
    "Wall time of one metadata API request (attempt), by resource.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
ENRICH_CACHE = Counter(
    "recsys_enrichment_cache_lookups_total",
    "Cache lookups by resource and result (hit, negative_hit, miss); hit rate = hit / all.",
    ["kind", "result"],
)
ENRICH_BREAKER = Gauge(
    "recsys_enrichment_breaker_state", "Metadata API circuit breaker: 0 closed, 1 half-open, 2 open."
)
ENRICH_BREAKER_CHANGES = Counter(
    "recsys_enrichment_breaker_transitions_total", "Breaker state changes, by the state entered.", ["state"]
)
ENRICH_SCHEMA_ERRORS = Counter(
    "recsys_enrichment_schema_errors_total",
    "Metadata records violating the API schema, by resource and field (missing, null or invalid).",
    ["kind", "field"],
)
ENRICH_KEPT = Counter(
    "recsys_enrichment_last_good_kept_total",
    "Blank fields of a fresh record filled with the last good value, by resource and field.",
    ["kind", "field"],
)
ONLINE_REBUILDS = Counter(
    "recsys_ingest_online_rebuilds_total",
    "Full rebuilds of the online store from the offline store, by what the marker said (missing, restarted).",
    ["reason"],
)
ONLINE_REBUILD_SECONDS = Gauge(
    "recsys_ingest_online_rebuild_seconds", "Wall time of the last full rebuild of the online store."
)

# --- self-descriptions (ingestion.descriptions.DescriptionWriter) -------------------------------
DESCRIPTIONS = Counter(
    "recsys_ingest_descriptions_total",
    "Users' self-descriptions by outcome: stored (a user_description row written), retried "
    "(the API did not know the user or the parse failed; tried again later), waiting (the API gave no "
    "answer; tried again without spending attempts), gave_up (attempts exhausted or queue full).",
    ["outcome"],
)
DESCRIPTIONS_PENDING = Gauge(
    "recsys_ingest_descriptions_pending", "Users whose self-description waits to be fetched and encoded."
)
