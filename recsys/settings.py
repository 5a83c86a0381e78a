"""Platform-wide settings (env prefix `RECSYS_`): where local state lives and how to reach the stack.

Package-specific knobs live in each package's own settings class; this one holds what the
stack manager and the CLI need. Nothing is read until `get_settings()` is called.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from core.settings import PlatformSettings


class StackSettings(PlatformSettings):
    """Local state and the embedded stack's ports, versions and switches."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_")

    redis_external: bool = Field(False, description="Never start redis-server, even when the URL is silent.")
    kafka_version: str = Field("4.1.1", description="Apache Kafka release fetched from Maven Central.")
    kafka_controller_port: int = Field(9095, description="Port of the local KRaft controller listener.")
    kafka_heap: str = Field("512m", description="JVM -Xmx of the local broker.")
    prometheus_port: int = Field(9090, description="Port of the local Prometheus (started on request).")
    alertmanager_port: int = Field(9093, description="Port of the local Alertmanager (started on request).")
    alertmanager_group_wait_s: float = Field(
        5.0,
        gt=0,
        description="Local Alertmanager: seconds a new alert group waits before its first notification.",
    )
    start_timeout_s: float = Field(
        90.0, description="How long `stack up` waits for a component to be healthy."
    )
    auto_install: bool = Field(
        True, description="As root on Debian, install missing packages (java, maven, redis) with apt-get."
    )
    operator: str | None = Field(
        None, description="Who `recsys experiment` names in its journal (default: the login name)."
    )

    @property
    def var(self) -> Path:
        """The absolute local-state root (DuckDB and Feast need absolute paths)."""
        return self.var_dir


@lru_cache(maxsize=1)
def get_settings() -> StackSettings:
    """The process-wide stack settings, read from the environment once."""
    return StackSettings()
