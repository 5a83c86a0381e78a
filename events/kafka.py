"""Kafka client factories: producers, consumers with manual commits, admin and idempotent topic creation.

Every client is built from `KafkaSettings`, so security settings pass through unchanged;
`extra` takes librdkafka property names as they are (e.g. `{"linger.ms": 5}`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from events.settings import KafkaSettings, get_kafka_settings
from events.topics import ALERTS, DLQ, MOVIELOG, PROVENANCE


def make_producer(settings: KafkaSettings | None = None, extra: Mapping[str, Any] | None = None) -> Producer:
    """A producer tuned for throughput with durability: idempotent, acks=all, lz4, small linger."""
    s = settings or get_kafka_settings()
    config: dict[str, Any] = {
        **s.client_config(),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "compression.type": "lz4",
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 500_000,
    }
    config.update(extra or {})
    return Producer(config)


def make_consumer(
    group_id: str, settings: KafkaSettings | None = None, extra: Mapping[str, Any] | None = None
) -> Consumer:
    """A consumer in `group_id` that never auto-commits: callers commit after a durable write."""
    s = settings or get_kafka_settings()
    config: dict[str, Any] = {
        **s.client_config(),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "enable.partition.eof": False,
    }
    config.update(extra or {})
    return Consumer(config)


def make_admin(settings: KafkaSettings | None = None, extra: Mapping[str, Any] | None = None) -> AdminClient:
    """An admin client for topic management and health checks."""
    config: dict[str, Any] = dict((settings or get_kafka_settings()).client_config())
    config.update(extra or {})
    return AdminClient(config)


def default_topic_partitions(settings: KafkaSettings | None = None) -> dict[str, int]:
    """Partitions of each platform topic: `movielog` is split for parallel ingestion."""
    s = settings or get_kafka_settings()
    return {MOVIELOG: s.movielog_partitions, DLQ: 1, PROVENANCE: 2, ALERTS: 1}


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


def broker_reachable(settings: KafkaSettings | None = None, timeout_s: float = 3.0) -> bool:
    """True when a metadata request to the cluster succeeds within the timeout."""
    try:
        # log_level 0: a probe of a stopped broker should not print librdkafka connect errors.
        md = make_admin(settings, {"log_level": 0}).list_topics(timeout=timeout_s)
    except KafkaException:
        return False
    return bool(md.brokers)
