"""Where monitoring keeps its outputs under var/monitoring, and the column names of its tables.

Each flush of the online job writes `windows/`, `ratings/` and `impressions/part-<seq>.parquet`
before its checkpoint names `seq + 1`: a restart redoes the same part names, so a rewrite
replaces what a crash left half-done instead of adding to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from core.layout import FEATURE_LOG_DIR

WINDOW_COLUMNS: Final = (
    "window_start",  # timestamp[us, UTC]: start of the log-time window of the recommendation lines
    "window_s",  # int64: its length
    "arm",  # experiment arm from the provenance record ("unknown" when none matched)
    "model",  # "v<N>" that answered, "none" (no model: fallback, cold start) or "unknown"
    "path",  # model | model_no_features | cold_start | fallback | unknown
    "requests",  # recommendation lines the front end wrote
    "ok",  # of them answered 200
    "available",  # answered 200 within the SLA
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "hits",  # answered lists followed by a watch of a listed movie within the hit window
    "hit_rank_sum",  # sum of the 1-based rank of the first watched listed movie, over hits
    "hit_minutes_sum",  # minutes watched of that movie within the hit window, over hits
    "hit_completion_sum",  # minutes / runtime, over hits whose runtime is known
    "hit_completion_n",
    "list_cost_sum",  # summed licence cost of the answered lists (USD; movies of unknown cost excluded)
    "list_cost_n",  # answered lists priced
    "hit_cost_sum",  # licence cost incurred by the hit plays (USD)
)
"""Columns of `windows/*.parquet`: one row per (window, arm, model, path)."""
RATING_COLUMNS: Final = ("ts", "window_start", "arm", "model", "path", "user_id", "movie_id", "rating")
"""Columns of `ratings/*.parquet`: ratings of a hit movie within the rating window, credited to the list."""
IMPRESSION_COLUMNS: Final = (
    "ts",  # timestamp[us, UTC]: time of the front end's recommendation line
    "user_id",  # int64
    "experiment",  # experiment named by the provenance record ("" when none or unattributed)
    "arm",  # as in WINDOW_COLUMNS
    "model",
    "path",
    "status",  # int64: HTTP status the front end logged (non-200 rows have no list: no hit, NaN cost)
    "latency_ms",  # int64: response time the front end logged
    "hit",  # int64 0/1: a listed movie was watched within the hit window
    "hit_rank",  # int64: 1-based rank of the first watched listed movie (0: no hit)
    "hit_minutes",  # int64: minutes of that movie within the hit window (0: no hit)
    "hit_completion",  # float64: minutes / runtime capped at 1 (NaN: no hit or runtime unknown)
    "list_cost",  # float64: licence cost of the listed movies of known cost, USD (NaN: none known)
    "hit_cost",  # float64: licence cost of the hit play, USD (0: no hit or cost unknown)
    "watched_listed",  # int64: distinct listed movies watched within the hit window
    "teams",  # interleaving record, one A/B per listed position ("" when not interleaved)
    "credit_a",  # int64: of the watched_listed movies, those team A placed (0: not interleaved)
    "credit_b",  # int64: those team B placed
)
"""Columns of `impressions/*.parquet`: one row per final recommendation line (the experiments' per-user data)."""

DRIFT_JSON: Final = """drift/latest.json: {"computed_at": ISO, "reference": {"model_version": int|None, "rows": int},
"window": {"start": ISO, "end": ISO}, "threshold": float,
"rows": [{"profile": "events"|"features"|"scores", "feature": str, "kind": "numeric"|"categorical",
          "metric": "hellinger", "score": float, "p_value": float|None, "drifted": bool}],
"schema": [{"source": "stream"|"metadata", "field": str, "change": "new"|"missing"|"retyped", "detail": str}]}"""
"""Format of a drift result (written by `monitoring.drift`, read by the exporter and the report)."""
SKEW_JSON: Final = """skew/latest.json: {"computed_at": ISO, "model_version": int|None, "served_rows": int, "train_rows": int,
"threshold": float (PSI), "mismatch_threshold": float, "replayed_rows": int, "replay": "ok" | why not run,
"rows": [{"feature": str, "psi": float, "mean_train": float, "mean_served": float,
          "mean_shift": float (in training standard deviations), "skewed": bool, "note": str,
          "mismatch_share": float|None (None: not recomputed; decided by PSI), "mean_replayed": float|None,
          "written_after": float|None (share of the differing rows that read data written after the answer)}]}"""
"""Format of a skew result (written by `monitoring.skew`, read by the exporter and the report)."""


@dataclass(frozen=True)
class MonitorLayout:
    """Paths of monitoring's outputs for one var dir."""

    var: Path

    @property
    def root(self) -> Path:
        """var/monitoring."""
        return self.var / "monitoring"

    @property
    def windows(self) -> Path:
        """Online metrics per window, arm, model and path (Parquet parts)."""
        return self.root / "windows"

    @property
    def ratings(self) -> Path:
        """Ratings credited to recommendations (Parquet parts)."""
        return self.root / "ratings"

    @property
    def impressions(self) -> Path:
        """One row per final recommendation line, with its outcome (Parquet parts)."""
        return self.root / "impressions"

    @property
    def checkpoint(self) -> Path:
        """The online job's state and offsets (JSON, replaced atomically)."""
        return self.root / "checkpoint.json"

    @property
    def feature_log(self) -> Path:
        """Serving's sampled feature log."""
        return self.var / FEATURE_LOG_DIR

    @property
    def profiles(self) -> Path:
        """whylogs profiles: `<profile>/<YYYYmmddHH>.bin` (profile = events, features, scores, reference)."""
        return self.root / "profiles"

    @property
    def drift(self) -> Path:
        """Drift results: `latest.json` and one `<stamp>.json` per run."""
        return self.root / "drift"

    @property
    def skew(self) -> Path:
        """Skew results: `latest.json` and one `<stamp>.json` per run."""
        return self.root / "skew"

    @property
    def report(self) -> Path:
        """The HTML dashboard."""
        return self.root / "report.html"
