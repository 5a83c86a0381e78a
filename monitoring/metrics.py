"""Prometheus metrics of the monitor process (names are the contract with deploy/prometheus/rules and Grafana).

The online job counts what each closed window holds; drift and skew gauges are read from the
latest result files at scrape time, so `recsys monitor drift|skew` run by a scheduler shows up
on the running job's /metrics without talking to it.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge

LABELS: Final = ("arm", "model", "path")
"""Labels of the online counters: experiment arm, model version (`v<N>`/`none`/`unknown`), answer path."""

REQUESTS: Final = Counter(
    "recsys_online_requests",
    "Recommendation lines the front end wrote, by outcome (ok: 200 within the SLA; slow: 200 late; error).",
    [*LABELS, "outcome"],
)
HITS: Final = Counter(
    "recsys_online_hits",
    "Answered lists followed by a watch of a listed movie within the hit window.",
    LABELS,
)
LIST_COST: Final = Counter(
    "recsys_online_list_cost_usd", "Summed licence cost of the answered lists (USD).", LABELS
)
WATCH_COST: Final = Counter(
    "recsys_online_watch_cost_usd",
    "Licence cost incurred by plays that followed a recommendation (USD).",
    LABELS,
)
RATINGS: Final = Counter("recsys_online_ratings", "Ratings of recommended movies after a hit.", LABELS)
RATING_SUM: Final = Counter("recsys_online_rating_stars", "Summed stars of those ratings.", LABELS)
HIT_RATE: Final = Gauge("recsys_online_hit_rate", "Hit rate of the latest closed window.", LABELS)
COST_BUDGET: Final = Gauge(
    "recsys_online_cost_budget_per_1k_usd", "Licence cost budget per 1,000 answered requests (from settings)."
)
MESSAGES: Final = Counter("recsys_monitor_messages", "Messages the online job consumed, by topic.", ["topic"])
UNATTRIBUTED: Final = Counter(
    "recsys_monitor_unattributed", "Recommendation lines closed without a matching provenance record."
)
LAG: Final = Gauge(
    "recsys_monitor_consumer_lag",
    "Messages behind the high watermark, by topic and partition.",
    ["topic", "partition"],
)
WINDOW_END: Final = Gauge(
    "recsys_monitor_window_end_seconds", "Log time (unix seconds) of the end of the latest closed window."
)
CHECKPOINT_AT: Final = Gauge(
    "recsys_monitor_checkpoint_timestamp_seconds", "Wall time of the online job's latest checkpoint."
)
DRIFT_SCORE: Final = "recsys_drift_score"
"""Gauge {profile, feature}: drift score (Hellinger) against the champion's training reference (exporter)."""
DRIFT_DETECTED: Final = "recsys_drift_detected"
"""Gauge {profile, feature}: 1 when the feature's drift score is above the threshold (exporter)."""
SCHEMA_CHANGES: Final = "recsys_schema_changes"
"""Gauge {source, change}: fields new, missing or retyped against the expected schema (exporter)."""
SKEW_PSI: Final = "recsys_skew_psi"
"""Gauge {feature}: PSI of served against training feature values (exporter)."""
SKEW_MISMATCH: Final = "recsys_skew_mismatch_share"
"""Gauge {feature}: share of replayed served rows whose value differs from the training path's (exporter)."""
SKEW_DETECTED: Final = "recsys_skew_detected"
"""Gauge {feature}: 1 when the feature is skewed (mismatch share, or PSI for the rows not recomputed; exporter)."""
RESULT_AGE: Final = "recsys_monitor_result_age_seconds"
"""Gauge {check}: seconds since the latest drift or skew result was computed (exporter)."""
