"""Serving knobs (env prefix `RECSYS_SERVING_`): address, experiment file, admin token, budgets, provenance buffer, constraints.

The admin token guards the admin routes (experiment reload, model swaps). The well-known
development token `DEV_ADMIN_TOKEN` (what an unset token means) is accepted only in local mode
*and* bound to a loopback address (127.0.0.0/8, ::1, localhost). Bound anywhere else (0.0.0.0 in
a container, a LAN address), or outside local mode, the admin token must be set, not the dev
token, and 16+ characters: a model validator refuses other settings at construction, so
`recsys serve` (which feeds `--host` into the check) and every uvicorn worker refuse to start.
"""

from __future__ import annotations

import hmac
import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Final, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from core.settings import PlatformSettings

REPO_DIR: Final = Path(__file__).resolve().parents[1]
"""The checkout this package lives in (defaults below are resolved from it, not from the cwd)."""
DEFAULT_EXPERIMENTS_FILE: Final = REPO_DIR / "deploy" / "experiments.yaml"
"""The experiment file shipped with the repository."""
DEV_ADMIN_TOKEN: Final = "recsys-local-admin"
"""Admin token of local mode on a loopback address when none is set; refused everywhere else."""
MIN_TOKEN_LENGTH: Final = 16
"""Shortest admin token accepted beyond loopback or outside local mode (a short token is guessable)."""


class AdminTokenError(ValueError):
    """The admin token is unusable for this mode and address; the service must not start."""


def is_loopback(host: str) -> bool:
    """Whether binding to `host` keeps the service on this machine: 127.0.0.0/8, ::1 or localhost."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:  # another host name: it may resolve to any interface
        return False


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
        description="Bearer token of the admin routes; required (16+ chars) beyond loopback or outside local mode.",
    )
    admin_token_file: Path | None = Field(
        None,
        validation_alias="RECSYS_ADMIN_TOKEN_FILE",
        description="File holding the admin token (a mounted secret), instead of RECSYS_ADMIN_TOKEN; not both.",
    )
    local_mode: bool = Field(
        True,
        description="Local development: on a loopback host an unset admin token falls back to the well-known dev token.",
    )
    api_docs: bool = Field(
        True,
        description="Serve /docs, /redoc and /openapi.json; switch off in production (they map every route, admin ones too).",
    )
    request_budget_ms: float = Field(
        400.0,
        gt=0,
        description="Time budget of one request (inside the 600 ms SLA): spent before scoring, the answer is the fallback.",
    )
    loop_stall_ms: float = Field(
        150.0,
        gt=0,
        description="An event-loop stall this long logs the stack that blocks it (serving.loop_watch).",
    )
    feature_timeout_ms: float = Field(
        50.0, gt=0, description="Longest wait for the user's online features before scoring without them."
    )
    breaker_cooldown_s: float = Field(
        2.0, gt=0, description="Seconds the online-feature breaker stays open after repeated failures."
    )
    metadata_url: str | None = Field(
        None,
        description="Metadata API base URL for reading a cold user's self-description inline when none is stored; unset: no inline read.",
    )
    inline_timeout_ms: float = Field(
        150.0, gt=0, description="Longest wait for the metadata API on an inline self-description read."
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
    reader_prestart: bool = Field(
        True,
        description="Spawn the movie-table reader process at start (seconds of imports), not at the first re-read under load.",
    )
    workers: int = Field(2, ge=1, description="uvicorn worker processes (one per core).")
    clock: Literal["wall", "stream"] = Field(
        "wall",
        description="Clock of time features: `wall` (now) or `stream` (the latest event time ingested; replayed logs).",
    )
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
    provenance_index_ttl_s: int = Field(
        86_400,
        ge=1,
        description="Seconds a request id stays findable in the Redis provenance index (~100 B per answer).",
    )
    provenance_max_scans: int = Field(
        2, ge=0, description="Provenance topic scans (index unavailable) allowed at once; more answer 503."
    )
    alerts_max_bytes: int = Field(
        256 * 1024, ge=1, description="Largest body POST /admin/alerts accepts (413 above it)."
    )
    feature_log_rate: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Share of model answers whose scored candidate rows go to the sampled feature log (0: off).",
    )
    feature_log_rows: int = Field(
        20,
        ge=1,
        description="Candidate rows logged per sampled answer (a uniform sample of the scored ones).",
    )
    feature_log_queue: int = Field(
        1_000,
        ge=1,
        description="Sampled answers waiting for the feature log's writer; more are dropped and counted.",
    )
    feature_log_flush_s: float = Field(
        5.0, gt=0, description="Longest wait (seconds) before the feature log's writer writes a Parquet file."
    )
    feature_log_flush_rows: int = Field(
        20_000, ge=1, description="Rows that make the feature log's writer write a Parquet file at once."
    )
    # Off by default: no measurement here shows the cap paying for the relevance it gives up, and
    # on real catalogues one genre (Drama) often fills more than half of a user's best list.
    max_genre_share: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Largest share of a list's slots one genre may take (greedy re-rank, back-filled); 1.0: off (default).",
    )
    exploration_share: float = Field(
        0.0,
        ge=0,
        le=0.5,
        description="Share of a list's slots (seeded per user and day, never the first) given to movies outside the popular head; 0: off.",
    )
    exploration_head: int = Field(
        100,
        ge=0,
        le=100,
        description="Exploration never draws the first N movies of the popular fallback list (its 100 most popular).",
    )
    auto_rebuild: bool = Field(
        True,
        description="When the online store's marker says Redis lost it, start `recsys features rebuild --if-needed`.",
    )

    @model_validator(mode="after")
    def _admin_token_fits_the_address(self) -> ServingSettings:
        """Read the token file if one is named, then refuse (ValidationError) a dev, unset or short token where it is not safe."""
        if self.admin_token_file is not None:
            # A file keeps the token out of the process environment (/proc/<pid>/environ, `docker inspect`).
            if self.admin_token is not None:
                raise AdminTokenError("set RECSYS_ADMIN_TOKEN or RECSYS_ADMIN_TOKEN_FILE, not both")
            try:
                text = self.admin_token_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:  # the path may be named, never the content
                raise AdminTokenError(
                    f"RECSYS_ADMIN_TOKEN_FILE {str(self.admin_token_file)!r} cannot be read: {type(exc).__name__}"
                ) from None
            self.admin_token = SecretStr(text.strip())
        self.check_admin_token()
        return self

    def check_admin_token(self) -> SecretStr:
        """The token admin routes accept; AdminTokenError when it is unusable for this mode and host."""
        token = self.admin_token.get_secret_value().strip() if self.admin_token is not None else ""
        if self.local_mode and is_loopback(self.host):
            return SecretStr(token or DEV_ADMIN_TOKEN)
        where = (
            f"bound to {self.host!r} (not loopback)"
            if self.local_mode
            else "outside local mode (RECSYS_SERVING_LOCAL_MODE=false)"
        )
        if not token:
            raise AdminTokenError(
                f"RECSYS_ADMIN_TOKEN is unset or empty; {where} admin routes need a secret token "
                f"of at least {MIN_TOKEN_LENGTH} characters"
            )
        if token == DEV_ADMIN_TOKEN:
            raise AdminTokenError(
                f"RECSYS_ADMIN_TOKEN is the well-known development token; {where} set a secret one"
            )
        if len(token) < MIN_TOKEN_LENGTH:
            raise AdminTokenError(
                f"RECSYS_ADMIN_TOKEN has {len(token)} characters; {where} use at least {MIN_TOKEN_LENGTH}"
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
