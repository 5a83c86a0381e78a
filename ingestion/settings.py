"""Ingestion knobs (env prefix `RECSYS_INGEST_`): consumer group, batching, paths, metrics, feature refresh."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from core.settings import PlatformSettings
from ingestion.enrichment import EnrichmentConfig


class IngestSettings(PlatformSettings):
    """How `recsys ingest` consumes, lands and pushes."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_INGEST_", env_nested_delimiter="__")

    group_id: str = Field("recsys-ingest", description="Kafka consumer group of the ingestion workers.")
    topic: str = Field("movielog", description="Topic of MLiP log lines to consume.")
    batch_max_messages: int = Field(20_000, ge=1, description="A batch ends after this many messages...")
    batch_max_seconds: float = Field(1.0, gt=0, description="...or after this many seconds, whichever first.")
    metrics_port: int = Field(9101, description="Port of the Prometheus /metrics endpoint (0: none).")
    metrics_host: str = Field(
        "127.0.0.1",
        description="Interface of the /metrics endpoint (0.0.0.0 in containers so Prometheus can scrape).",
    )
    session_gap_s: int = Field(1800, description="Watch minutes further apart than this start a new session.")
    recent_movies: int = Field(
        50, ge=1, description="How many recently watched movie ids a user feature keeps."
    )
    movie_refresh_s: float = Field(30.0, gt=0, description="Wall seconds between movie feature refreshes.")
    movie_job: bool = Field(
        True,
        description="Run the sessions + movie features job in this worker (one worker of a group is enough).",
    )
    movie_repush_s: float = Field(
        21600.0,
        gt=0,
        description="A movie row unchanged for this long is pushed online again (changed rows go at each refresh).",
    )
    push_online: bool = Field(True, description="Push user features to the online store after each batch.")
    online_check_s: float = Field(
        10.0,
        gt=0,
        description="Seconds between checks of the online store's marker (rebuild when Redis lost it).",
    )
    max_future_skew_s: float = Field(
        300.0,
        ge=0,
        description="Lines dated more than this after their Kafka message time go to the DLQ (future_timestamp).",
    )
    enrich: bool = Field(True, description="Look up movies and users in the metadata API.")
    meta_url: str = Field(
        "http://127.0.0.1:8080", validation_alias="RECSYS_SIM_API_URL", description="Metadata API base URL."
    )
    enrichment: EnrichmentConfig = Field(
        default_factory=EnrichmentConfig,
        description="Metadata client knobs, e.g. RECSYS_INGEST_ENRICHMENT__TIMEOUT_S (base_url comes from meta_url).",
    )

    @property
    def offline_dir(self) -> Path:
        """Absolute root of the offline store."""
        return self.var_dir / "offline"


@lru_cache(maxsize=1)
def get_ingest_settings() -> IngestSettings:
    """The process-wide ingestion settings, read from the environment once."""
    return IngestSettings()
