"""Kafka client factories: producers, consumers with manual commits, admin and idempotent topic creation.

Every client is built from `KafkaSettings`, so security settings pass through unchanged;
`extra` takes librdkafka property names as they are (e.g. `{"linger.ms": 5}`).

librdkafka's log lines go to the Python logger `librdkafka` (on stderr when the application set
up no logging), where one benign message is dropped: `Coordinator load in progress`, which a
broker answers while it loads its coordinator state after a start; the client retries and
nothing is lost. Every other line, errors included, is kept at its level.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Final

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from events.settings import KafkaSettings, get_kafka_settings
from events.topics import ALERTS, DLQ, EXPERIMENTS, MOVIELOG, PROVENANCE

LIBRDKAFKA_LOGGER: Final = "librdkafka"
"""Name of the Python logger the clients' librdkafka log lines go to."""
BENIGN_LIBRDKAFKA: Final = ("Coordinator load in progress",)
"""Fragments of librdkafka log lines that are dropped: transient broker states the client retries."""


class _DropBenignKafkaLines(logging.Filter):
    """Drops librdkafka lines holding a BENIGN_LIBRDKAFKA fragment."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(fragment in message for fragment in BENIGN_LIBRDKAFKA)


def librdkafka_logger() -> logging.Logger:
    """The logger every client factory hands librdkafka: benign lines filtered, the rest on stderr."""
    logger = logging.getLogger(LIBRDKAFKA_LOGGER)
    if not any(isinstance(f, _DropBenignKafkaLines) for f in logger.filters):
        logger.addFilter(_DropBenignKafkaLines())
    if not logger.handlers:
        # librdkafka printed its lines to stderr itself; keep them there, in its own format.
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s librdkafka %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.INFO)
    return logger


def _client_config(settings: KafkaSettings) -> dict[str, Any]:
    return dict(settings.client_config())


def _with_logger(config: dict[str, Any]) -> dict[str, Any]:
    # Only when the caller set none: the provenance producer hands librdkafka its own logger.
    config.setdefault("logger", librdkafka_logger())
    return config


def make_producer(settings: KafkaSettings | None = None, extra: Mapping[str, Any] | None = None) -> Producer:
    """A producer tuned for throughput with durability: idempotent, acks=all, lz4, small linger."""
    s = settings or get_kafka_settings()
    config: dict[str, Any] = {
        **_client_config(s),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "compression.type": "lz4",
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 500_000,
    }
    config.update(extra or {})
    return Producer(_with_logger(config))


def make_consumer(
    group_id: str, settings: KafkaSettings | None = None, extra: Mapping[str, Any] | None = None
) -> Consumer:
    """A consumer in `group_id` that never auto-commits: callers commit after a durable write."""
    s = settings or get_kafka_settings()
    config: dict[str, Any] = {
        **_client_config(s),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "enable.partition.eof": False,
        # Bounded prefetch: a consumer that falls behind holds at most this much in librdkafka's
        # queue (one queue per high-level consumer; the defaults, 64 MB in all and 100K messages
        # a partition, made a lagging consumer's RSS climb).
        "queued.max.messages.kbytes": s.consumer_prefetch_kbytes,
        "queued.min.messages": 10_000,
    }
    config.update(extra or {})
    return Consumer(_with_logger(config))


def make_admin(settings: KafkaSettings | None = None, extra: Mapping[str, Any] | None = None) -> AdminClient:
    """An admin client for topic management and health checks."""
    config: dict[str, Any] = _client_config(settings or get_kafka_settings())
    config.update(extra or {})
    return AdminClient(_with_logger(config))


def default_topic_partitions(settings: KafkaSettings | None = None) -> dict[str, int]:
    """Partitions of each platform topic: `movielog` is split for parallel ingestion."""
    s = settings or get_kafka_settings()
    return {MOVIELOG: s.movielog_partitions, DLQ: 1, PROVENANCE: 2, ALERTS: 1, EXPERIMENTS: 1}


def ensure_topics(
    topics: Mapping[str, int] | Iterable[str] | None = None,
    settings: KafkaSettings | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create missing topics (name -> partitions); return the names created. Existing ones are kept."""
    s = settings or get_kafka_settings()
    if topics is None:
        wanted = default_topic_partitions(s)
    elif isinstance(topics, Mapping):
        wanted = dict(topics)
    else:
        wanted = {name: 1 for name in topics}
    admin = make_admin(s)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [
        NewTopic(name, num_partitions=parts, replication_factor=s.replication_factor)
        for name, parts in wanted.items()
        if name not in existing
    ]
    if not missing:
        return []
    created: list[str] = []
    for name, future in admin.create_topics(missing, operation_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
            created.append(name)
        except KafkaException as exc:
            # Another process may have created it between our list and create calls.
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return created


def delete_topics(
    names: Iterable[str], settings: KafkaSettings | None = None, timeout_s: float = 30.0
) -> dict[str, str]:
    """Delete topics and wait for each; returns name -> error for the ones that failed (never raises for them).

    The admin client is held until every future resolves: a client collected earlier fails its
    pending futures with `_DESTROY`, and the topics stay (that is how every soak run once left its topic).
    """
    wanted = list(names)
    if not wanted:
        return {}
    admin = make_admin(settings)
    failed: dict[str, str] = {}
    for name, future in admin.delete_topics(wanted, operation_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
        except Exception as exc:  # KafkaException, or a timeout of the future itself
            failed[name] = str(exc)
    return failed


def broker_reachable(settings: KafkaSettings | None = None, timeout_s: float = 3.0) -> bool:
    """True when a metadata request to the cluster succeeds within the timeout."""
    try:
        # log_level 0: a probe of a stopped broker should not print librdkafka connect errors.
        md = make_admin(settings, {"log_level": 0}).list_topics(timeout=timeout_s)
    except KafkaException:
        return False
    return bool(md.brokers)
