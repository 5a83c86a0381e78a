"""Serving knobs (env prefix `RECSYS_SERVING_`): address, experiment file, admin token, budgets, provenance buffer.

The admin token guards the admin routes (experiment reload, model swaps). In local mode (the
default: everything bound to 127.0.0.1) an unset token means the well-known development token
`DEV_ADMIN_TOKEN`; outside local mode `check_admin_token()` refuses an unset, empty, default or
short token, so a deployment cannot start with a guessable one.
"""

from __future__ import annotations

import hmac
from functools import lru_cache
from pathlib import Path
from typing import Final

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from core.settings import PlatformSettings

REPO_DIR: Final = Path(__file__).resolve().parents[1]
"""The checkout this package lives in (defaults below are resolved from it, not from the cwd)."""
DEFAULT_EXPERIMENTS_FILE: Final = REPO_DIR / "deploy" / "experiments.yaml"
"""The experiment file shipped with the repository."""
DEV_ADMIN_TOKEN: Final = "recsys-local-admin"
"""Admin token of local mode when none is set; refused outside local mode."""
MIN_TOKEN_LENGTH: Final = 16
"""Shortest admin token accepted outside local mode (a short token is guessable)."""


class AdminTokenError(RuntimeError):
    """The admin token is unusable for this mode; the service must not start."""


class ServingSettings(PlatformSettings):
    """How the recommendation service listens, routes, budgets time and logs provenance."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_SERVING_")

    host: str = Field("127.0.0.1", description="Interface the API listens on (0.0.0.0 in containers).")
    port: int = Field(8082, ge=0, le=65535, description="Port of the recommendation API.")
    experiments_file: Path = Field(
        DEFAULT_EXPERIMENTS_FILE,
        description="YAML file of A/B experiments (default: deploy/experiments.yaml).",
    )
    admin_token: SecretStr | None = Field(
        None,
        validation_alias="RECSYS_ADMIN_TOKEN",
        description="Bearer token of the admin routes; required (16+ chars) outside local mode.",
    )
    local_mode: bool = Field(
        True, description="Local development: an unset admin token falls back to the well-known dev token."
    )
    request_budget_ms: float = Field(
        400.0, gt=0, description="Internal time budget of one request (inside the 600 ms SLA); then fallback."
    )
    feature_timeout_ms: float = Field(
        50.0, gt=0, description="Longest wait for the user's online features before scoring without them."
    )
    breaker_cooldown_s: float = Field(
        2.0, gt=0, description="Seconds the online-feature breaker stays open after repeated failures."
    )
    movie_refresh_s: float = Field(
        300.0,
        gt=0,
        description="Longest time (±20% jitter per worker) between re-reads of the movie feature table, in a child process.",
    )
    movie_check_s: float = Field(
        5.0,
        gt=0,
        description="Seconds between checks of the movie-change counter and of the experiments file.",
    )
    movie_min_refresh_s: float = Field(
        30.0,
        ge=0,
        description="Least time between two movie-table re-reads triggered by writes (a re-read costs ~1.6 s of CPU).",
    )
    workers: int = Field(2, ge=1, description="uvicorn worker processes (one per core).")
    registry_poll_s: float = Field(
        10.0, gt=0, description="Seconds between polls of the model registry's aliases (hot model swap)."
    )
    provenance_buffer: int = Field(
        10_000, ge=1, description="Provenance records held while Kafka is unreachable; the oldest overflow."
    )
    provenance_index: int = Field(
        50_000,
        ge=0,
        description="Recent provenance records kept in memory for /provenance/<id> lookups (~1 KB each).",
    )
    alerts_max_bytes: int = Field(
        256 * 1024, ge=1, description="Largest body POST /admin/alerts accepts (413 above it)."
    )

    def check_admin_token(self) -> SecretStr:
        """The token admin routes accept; AdminTokenError outside local mode when it is unset, empty, default or short."""
        token = self.admin_token.get_secret_value().strip() if self.admin_token is not None else ""
        if self.local_mode:
            return SecretStr(token or DEV_ADMIN_TOKEN)
        if not token:
            raise AdminTokenError(
                "RECSYS_ADMIN_TOKEN is unset or empty; outside local mode (RECSYS_SERVING_LOCAL_MODE=false) "
                "admin routes need a secret token"
            )
        if token == DEV_ADMIN_TOKEN:
            raise AdminTokenError(
                "RECSYS_ADMIN_TOKEN is the well-known development token; set a secret one outside local mode"
            )
        if len(token) < MIN_TOKEN_LENGTH:
            raise AdminTokenError(
                f"RECSYS_ADMIN_TOKEN has {len(token)} characters; outside local mode use at least {MIN_TOKEN_LENGTH}"
            )
        return SecretStr(token)

    def admin_token_matches(self, presented: str | None) -> bool:
        """Whether a presented bearer token is the admin token (constant-time; False when the token is unusable)."""
        if not presented:
            return False
        try:
            expected = self.check_admin_token().get_secret_value()
        except AdminTokenError:
            return False
        # compare_digest: the time taken must not reveal how many leading characters matched.
        return hmac.compare_digest(presented.encode(), expected.encode())


@lru_cache(maxsize=1)
def get_serving_settings() -> ServingSettings:
    """The process-wide serving settings, read from the environment once."""
    return ServingSettings()
