"""Monitoring knobs (env prefix `RECSYS_MONITOR_`): windows, the hit window, thresholds, the metrics endpoint."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from core.settings import PlatformSettings


class MonitorSettings(PlatformSettings):
    """How `recsys monitor` reads the streams and when it calls something drift, skew or a miss."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_MONITOR_")

    group_id: str = Field("recsys-monitor", description="Kafka consumer group of the online metrics job.")
    topic: str = Field(
        "movielog", description="Topic of the front end's log lines (recommendations, watches, ratings)."
    )
    provenance_topic: str = Field(
        "recsys.provenance",
        description="Topic of serving's provenance records (arm, model, path of each answer).",
    )
    window_s: int = Field(300, ge=1, description="Length of an online metrics window (log time, seconds).")
    hit_window_s: int = Field(
        1800, ge=1, description="A watch of a recommended movie this soon after the list counts as a hit."
    )
    rating_window_s: int = Field(
        6 * 3600, ge=0, description="Ratings of a hit movie this soon after the list are credited to it."
    )
    lateness_s: float = Field(
        120.0,
        ge=0,
        description="Log seconds the job waits for out-of-order lines before it finalises a list.",
    )
    sla_ms: int = Field(600, ge=1, description="A request counts as available when answered 200 within this.")
    match_grace_s: float = Field(
        60.0,
        ge=0,
        description="Log seconds a recommendation line waits for its provenance record before it is closed as unattributed.",
    )
    checkpoint_s: float = Field(
        5.0, gt=0, description="Wall seconds between checkpoints of the online job (state, offsets, Parquet)."
    )
    metrics_host: str = Field("127.0.0.1", description="Interface of the monitor's /metrics endpoint.")
    metrics_port: int = Field(9102, description="Port of the monitor's /metrics endpoint (0: none).")
    prometheus_url: str = Field(
        "http://127.0.0.1:9090", description="Prometheus the report queries for latency, lag and DLQ series."
    )
    cost_budget_per_1k: float = Field(
        5000.0,
        gt=0,
        description="Licence cost (USD) per 1,000 answered requests above which the cost alert fires.",
    )
    drift_threshold: float = Field(
        0.2, gt=0, description="Drift score (Hellinger distance) above which a feature counts as drifted."
    )
    drift_reference_hours: float = Field(
        168.0,
        gt=0,
        description="Hours of events before the end of the champion's training data (or, without a champion, "
        "before the current window) that form the events reference.",
    )
    drift_min_rows: int = Field(
        500,
        ge=1,
        description="A column is scored only when both sides hold at least this many values "
        "(chance differences of smaller samples near the threshold).",
    )
    schema_sample: int = Field(
        50,
        ge=0,
        description="Movies and users of the window fetched from the metadata API for its schema check.",
    )
    meta_url: str = Field(
        "http://127.0.0.1:8080",
        validation_alias="RECSYS_SIM_API_URL",
        description="Metadata API whose records the schema check samples.",
    )
    skew_psi_threshold: float = Field(
        0.2,
        gt=0,
        description="PSI between served and training rows above which a candidate column or the score counts as "
        "skewed (information only for the features the replay recomputes).",
    )
    skew_mismatch_threshold: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Share of replayed rows whose served value differs from the training path's above which a "
        "feature counts as skewed (a few rows differ legitimately: an event not yet in the online store).",
    )
    skew_replay_rows: int = Field(
        2000,
        ge=0,
        description="Served rows the skew check recomputes through Feast's offline store (seeded sample; 0: off, "
        "every row decided by PSI).",
    )

    @property
    def root(self) -> Path:
        """Everything monitoring writes: var/monitoring."""
        return self.var_dir / "monitoring"


@lru_cache(maxsize=1)
def get_monitor_settings() -> MonitorSettings:
    """The process-wide monitoring settings, read from the environment once."""
    return MonitorSettings()
