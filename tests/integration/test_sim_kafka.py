"""The simulator against the real broker: live traffic, a backfill and a replayed log file land intact."""

from __future__ import annotations

import gzip
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from events import ParseError, parse_line
from events.kafka import make_consumer
from ingestion.replay import replay_file
from simulator.history import backfill
from simulator.run import drive
from simulator.settings import SimSettings
from simulator.sinks import KafkaSink, ListSink
from simulator.traffic import Traffic
from simulator.world import World, generate_world

START_NS = 1_767_225_600 * 10**9  # 2026-01-01

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(1_000, 200, seed=51)


def consume(topic: str, expected: int, timeout_s: float = 60.0) -> list[tuple[bytes, bytes | None]]:
    """Every message of partition 0 of `topic` from the beginning, (value, key), until `expected` arrived."""
    consumer = make_consumer(f"sim-test-{uuid.uuid4().hex[:8]}")
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out: list[tuple[bytes, bytes | None]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(10_000, timeout=1.0):
                if msg.error() is None:
                    out.append((msg.value() or b"", msg.key()))
    finally:
        consumer.close()
    return out


def test_live_traffic_lands_in_order_keyed_by_user(stack: object, topic: str, world: World) -> None:
    settings = SimSettings(sessions_per_hour=1_000, malformed_rate=0.01)
    traffic = Traffic(world, settings, "open", START_NS)
    kafka, mirror = KafkaSink(topic), ListSink()
    result = drive(traffic, [kafka, mirror], until_ns=START_NS + 3600 * 10**9, progress=False)
    assert kafka.failed == 0 and result.stats.lines == len(mirror.lines) > 10_000
    got = consume(topic, len(mirror.lines))
    assert [v.decode() for v, _ in got] == mirror.lines
    assert [k for _, k in got] == [str(u).encode() for u in mirror.users]
    rejected = sum(isinstance(parse_line(v), ParseError) for v, _ in got)
    assert rejected == result.stats.malformed > 0


def test_backfill_to_kafka_and_files_agree(stack: object, topic: str, world: World, tmp_path: Path) -> None:
    settings = SimSettings(var_dir=tmp_path / "var", topic=topic, sessions_per_hour=500)
    result, files = backfill(
        world, settings, 0.1, start_ns=START_NS, out_dir=tmp_path / "logs", progress=False
    )
    file_lines = [line for f in files for line in gzip.decompress(f.read_bytes()).splitlines()]
    got = consume(topic, len(file_lines))
    assert [v for v, _ in got] == file_lines and len(file_lines) == result.stats.lines


def test_replayed_file_lands_as_is(stack: object, topic: str, world: World, tmp_path: Path) -> None:
    settings = SimSettings(var_dir=tmp_path / "var", sessions_per_hour=500, malformed_rate=0.02)
    _, files = backfill(world, settings, 0.1, start_ns=START_NS, to_kafka=False, out_dir=tmp_path / "logs",
                        progress=False)  # fmt: skip
    (path,) = files
    stats = replay_file(path, topic, progress=False)
    lines = gzip.decompress(path.read_bytes()).splitlines()
    assert stats.lines == len(lines) and stats.failed == 0 and stats.lines_per_s > 0
    got = consume(topic, len(lines))
    assert [v for v, _ in got] == lines
    assert all(k is None or v.split(b",")[1] == k for v, k in got)
