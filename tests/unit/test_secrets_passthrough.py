"""Kafka SASL/TLS settings reach every client the platform builds, and no secret shows in repr or logs.

The clients are real librdkafka clients (a misspelt or unsupported property raises when one is
built); no broker is needed: they point at a closed loopback port, and librdkafka's own log
lines (connection refused, with its configuration dump under `debug=conf`) go through the
platform's logger, where the password must never appear.
"""

from __future__ import annotations

import logging
import time

import pytest

from events.kafka import LIBRDKAFKA_LOGGER, librdkafka_logger, make_admin, make_consumer, make_producer
from events.settings import KafkaSettings
from serving.settings import ServingSettings

SASL_PASSWORD = "kafka-Pa55-never-shown"
ADMIN_TOKEN = "admin-token-never-shown-0123456789"
SECURE = {
    "RECSYS_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
    "RECSYS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "RECSYS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "RECSYS_KAFKA_SASL_USERNAME": "recsys-ingest",
    "RECSYS_KAFKA_SASL_PASSWORD": SASL_PASSWORD,
}


@pytest.fixture
def secure_kafka(monkeypatch: pytest.MonkeyPatch) -> KafkaSettings:
    for name, value in SECURE.items():
        monkeypatch.setenv(name, value)
    return KafkaSettings()


def test_sasl_and_tls_settings_pass_through_to_the_client_configuration(secure_kafka: KafkaSettings) -> None:
    config = secure_kafka.client_config()
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["sasl.username"] == "recsys-ingest"
    assert config["sasl.password"] == SASL_PASSWORD
    assert "ssl.ca.location" not in config  # unset: librdkafka uses the system's CAs


def test_the_settings_never_show_the_secrets(
    secure_kafka: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECSYS_ADMIN_TOKEN", ADMIN_TOKEN)
    serving = ServingSettings()
    for settings, secret in ((secure_kafka, SASL_PASSWORD), (serving, ADMIN_TOKEN)):
        for shown in (repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump())):
            assert secret not in shown


def test_real_clients_accept_the_secure_settings_and_their_logs_never_hold_the_password(
    secure_kafka: KafkaSettings, caplog: pytest.LogCaptureFixture
) -> None:
    debug = {"debug": "conf,security,broker"}  # librdkafka prints its whole configuration under `conf`
    logger = librdkafka_logger()
    logger.addHandler(caplog.handler)  # it does not propagate to the root logger caplog listens on
    try:
        _build_clients_and_wait(secure_kafka, debug, caplog)
    finally:
        logger.removeHandler(caplog.handler)
    messages = "\n".join(record.getMessage() for record in caplog.records)
    assert "127.0.0.1:1" in messages, "librdkafka logged nothing through the platform's logger"
    assert "sasl.password" in messages, "the configuration dump was not logged"
    assert SASL_PASSWORD not in messages


def _build_clients_and_wait(
    settings: KafkaSettings, debug: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger=LIBRDKAFKA_LOGGER):
        producer = make_producer(settings, extra=debug)
        consumer = make_consumer("secrets-test", settings, extra=debug)
        admin = make_admin(settings, extra=debug)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
            "127.0.0.1:1" in r.getMessage() for r in caplog.records
        ):
            producer.poll(0.2)  # serves the log queue: the refused connection gets reported
        consumer.close()
        producer.flush(0)
        del admin
