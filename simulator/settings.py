"""Simulator settings (env prefix `RECSYS_SIM_`; `var_dir`, `redis_url` and `serving_url` use the platform-wide names).

Read once through the cached `get_sim_settings()`; nothing is read at import time.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from core.settings import PlatformSettings
from simulator.drift import Drift


class SimSettings(PlatformSettings):
    """Knobs of the simulated world, its metadata API and its traffic."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_SIM_")

    # --- world generation
    seed: int = Field(42, description="Seed of the world; the same seed gives the same world.")
    users: int = Field(1_000_000, ge=1, description="Users in a generated world.")
    movies: int = Field(20_000, ge=10, description="Movies in a generated catalogue.")
    latent_dim: int = Field(
        16, ge=1, le=128, description="Dimensions of the hidden user/movie taste vectors."
    )

    # --- metadata API
    api_host: str = Field("127.0.0.1", description="Interface the metadata API binds to.")
    api_port: int = Field(8080, description="Port of the metadata API.")
    api_max_ids: int = Field(200, ge=1, description="Most ids one metadata request may ask for.")
    api_latency_ms: float = Field(0.0, ge=0, description="Fault injection: latency added to every answer.")
    api_latency_jitter_ms: float = Field(
        0.0, ge=0, description="Fault injection: extra uniform random latency."
    )
    api_error_rate: float = Field(
        0.0, ge=0, le=1, description="Fault injection: share of answers that are 5xx."
    )
    api_drop_field_rate: float = Field(
        0.0, ge=0, le=1, description="Fault injection: share of records missing one random field."
    )
    api_rename_fields: dict[str, str] = Field(
        default_factory=dict,
        description="Fault injection: fields always sent under another name (old -> new).",
    )

    # --- traffic
    serving_url: str = Field(
        "http://127.0.0.1:8082",
        validation_alias="RECSYS_SERVING_URL",
        description="Base URL of the platform's recommendation service (closed loop).",
    )
    request_timeout_ms: int = Field(600, ge=1, description="Closed loop: deadline of a recommendation call.")
    closed_loop_concurrency: int = Field(
        32, ge=1, description="Closed loop: most recommendation calls in flight."
    )
    topic: str = Field("movielog", description="Kafka topic the traffic is written to.")
    speed: float = Field(
        1.0, ge=0, description="Simulated seconds per wall-clock second; 0 runs as fast as possible."
    )
    sessions_per_hour: float = Field(2_000.0, gt=0, description="Watch sessions started per simulated hour.")
    new_users_per_hour: float = Field(30.0, ge=0, description="Accounts created per simulated hour.")
    initial_active_share: float = Field(
        0.6, gt=0, le=1, description="Share of the world's users whose accounts exist when traffic starts."
    )
    rec_request_share: float = Field(
        0.6, ge=0, le=1, description="Share of sessions that open the recommendation page first."
    )
    rating_share: float = Field(0.25, ge=0, le=1, description="Base share of watches followed by a rating.")
    preroll_hours: float = Field(
        4.0, ge=0, description="Sessions begun this long before the start are already running (no ramp-up)."
    )
    chunk_seconds: float = Field(
        10.0, gt=0, description="Simulated seconds generated per step of the traffic loop."
    )
    open_loop_server: str = Field(
        "frontend-legacy:8082", description="Server name written in open-loop recommendation lines."
    )
    open_loop_list_size: int = Field(
        20, ge=0, le=20, description="Open loop: length of the trending list logged as the answer (0: empty)."
    )
    malformed_rate: float = Field(0.0, ge=0, le=1, description="Stream faults: share of lines corrupted.")
    duplicate_rate: float = Field(0.0, ge=0, le=1, description="Stream faults: share of lines written twice.")
    late_rate: float = Field(0.0, ge=0, le=1, description="Stream faults: share of lines delivered late.")
    late_max_seconds: float = Field(600.0, ge=0, description="Stream faults: longest delay of a late line.")
    drifts: list[Drift] = Field(default_factory=list, description="Scheduled drifts (JSON list, see docs).")

    @property
    def sim_dir(self) -> Path:
        """Where the world and the traffic state are stored: <var_dir>/sim."""
        return self.var_dir / "sim"


@lru_cache(maxsize=1)
def get_sim_settings() -> SimSettings:
    """The process-wide simulator settings, read from the environment once."""
    return SimSettings()
