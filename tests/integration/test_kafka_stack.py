"""The real broker and Redis that the stack manager started: topics, groups, manual commits, DLQ."""

from __future__ import annotations

import time
import uuid

import pytest
import redis
from confluent_kafka import TopicPartition

from events import ALERTS, DLQ, MOVIELOG, PROVENANCE, ParseError, format_line, parse_line
from events.kafka import (
    default_topic_partitions,
    delete_topics,
    ensure_topics,
    make_admin,
    make_consumer,
    make_producer,
)
from events.types import WatchEvent
from tests.integration.conftest import StackInfo

pytestmark = pytest.mark.integration


def _consume(consumer, n: int, timeout_s: float = 30.0) -> list:  # type: ignore[no-untyped-def]
    out = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        out.append(msg)
    return out


def test_platform_topics_exist_with_their_partitions(stack: StackInfo) -> None:
    md = make_admin().list_topics(timeout=10)
    for name, partitions in default_topic_partitions().items():
        assert name in md.topics, name
        assert len(md.topics[name].partitions) == partitions
    assert {MOVIELOG, DLQ, PROVENANCE, ALERTS} <= set(md.topics)
    assert ensure_topics() == []  # idempotent


def test_produce_consume_with_group_and_manual_commits(topic: str) -> None:
    events = [
        WatchEvent(1_795_626_245_000_000_000 + i * 10**9, 7, "the+green+mile+1999", i, 0) for i in range(50)
    ]
    producer = make_producer()
    for e in events:
        producer.produce(topic, format_line(e).encode(), key=b"7")
    assert producer.flush(30) == 0
    group = f"g-{uuid.uuid4().hex[:8]}"

    consumer = make_consumer(group)
    consumer.subscribe([topic])
    first = _consume(consumer, 20)
    assert len(first) == 20
    # Commit only the first 20 messages, then crash (close without committing the rest).
    consumer.commit(offsets=[TopicPartition(topic, 0, first[-1].offset() + 1)], asynchronous=False)
    consumer.close()

    again = make_consumer(group)
    again.subscribe([topic])
    rest = _consume(again, 30)
    again.close()
    assert [m.offset() for m in rest] == list(range(20, 50))
    assert [parse_line(m.value()) for m in first + rest] == events


def test_bad_line_goes_to_the_dlq_with_its_reason(stack: StackInfo, topic: str) -> None:
    producer = make_producer()
    bad = b"2026-11-25T17:04:05,42,GET /rate/x+2000=11"
    producer.produce(topic, bad, key=b"42")
    producer.flush(30)
    consumer = make_consumer(f"g-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([topic])
    [msg] = _consume(consumer, 1)
    result = parse_line(msg.value())
    assert isinstance(result, ParseError)
    marker = uuid.uuid4().hex
    producer.produce(
        DLQ,
        msg.value(),
        key=msg.key(),
        headers=[
            ("reason", result.reason.value.encode()),
            ("source_topic", topic.encode()),
            ("source_partition", b"0"),
            ("source_offset", str(msg.offset()).encode()),
            ("marker", marker.encode()),
        ],
    )
    assert producer.flush(30) == 0
    consumer.close()

    reader = make_consumer(f"g-{uuid.uuid4().hex[:8]}")
    reader.subscribe([DLQ])
    found = None
    deadline = time.monotonic() + 30
    while found is None and time.monotonic() < deadline:
        m = reader.poll(0.5)
        if m is not None and not m.error() and dict(m.headers() or []).get("marker") == marker.encode():
            found = m
    reader.close()
    assert found is not None and found.value() == bad
    assert dict(found.headers())["reason"] == b"bad_rating"


def test_delete_topics_waits_for_each_and_reports_the_ones_it_could_not_delete(stack: StackInfo) -> None:
    made = [f"test-del-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    ensure_topics(dict.fromkeys(made, 1))
    missing = f"test-del-missing-{uuid.uuid4().hex[:8]}"
    failed = delete_topics([*made, missing])
    assert set(failed) == {missing}, failed  # deleting a topic that does not exist is reported, not raised
    assert not set(made) & set(make_admin().list_topics(timeout=10).topics)  # gone once it returns


def test_redis_answers(stack: StackInfo) -> None:
    client = redis.Redis.from_url(stack.redis_url)
    key = f"test:{uuid.uuid4().hex}"
    client.set(key, "1", ex=10)
    assert client.get(key) == b"1"
