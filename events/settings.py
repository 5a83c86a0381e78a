"""Kafka connection settings (env prefix `RECSYS_KAFKA_`), shared by every producer and consumer."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from core.settings import PlatformSettings


class KafkaSettings(PlatformSettings):
    """Where the broker is and how to authenticate; defaults match `recsys stack up`."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_KAFKA_", extra="forbid")

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Comma-separated host:port list.")
    external: bool = Field(
        False, description="True when the broker is managed elsewhere: `recsys stack` never starts it."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="librdkafka security.protocol."
    )
    sasl_mechanism: str | None = Field(None, description="e.g. PLAIN, SCRAM-SHA-512 (SASL only).")
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password; never logged.")
    ssl_ca_location: str | None = Field(None, description="CA bundle for SSL protocols.")
    client_id: str = Field("recsys", description="Client id reported to the broker.")
    movielog_partitions: int = Field(
        4, ge=1, description="Partitions of `movielog` when the platform creates it (ingest parallelism)."
    )
    replication_factor: int = Field(1, ge=1, description="Replication factor of topics the platform creates.")
    max_line_bytes: int = Field(
        16_384,
        ge=256,
        le=900_000,
        description="Longest log line: replay refuses longer ones, the DLQ keeps this much of a bad line's bytes.",
    )

    consumer_prefetch_kbytes: int = Field(
        8_192,
        ge=1_024,
        description="Most kilobytes a consumer prefetches into its queue (librdkafka's default, 64 MB, grows RSS when behind).",
    )

    def client_config(self) -> dict[str, str]:
        """librdkafka settings common to producers, consumers and admin clients."""
        config = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            "client.id": self.client_id,
        }
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            config["ssl.ca.location"] = self.ssl_ca_location
        return config


@lru_cache(maxsize=1)
def get_kafka_settings() -> KafkaSettings:
    """The process-wide Kafka settings, read from the environment once."""
    return KafkaSettings()
