"""The Kafka broker stopped (SIGTERM) or crashed (SIGKILL) and restarted while simulator lines flow into ingestion.

Counted per acknowledged line (the producer's delivery callback reported success, with the
partition and offset the broker gave it): each one is in the offline store exactly once, as
the event it parses to or as a DLQ row holding its bytes, and each bad one is on
`movielog.dlq` exactly once. The broker is the stack manager's own, signalled and restarted
through `KafkaBroker.kill` and `KafkaBroker.up`.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Message

from events import ParseError, parse_line
from events.kafka import ensure_topics, make_producer
from events.types import AccountEvent, RateEvent, RecommendationEvent, WatchEvent
from ingestion.worker import IngestWorker
from recsys.settings import get_settings
from recsys.stack.kafka import KafkaBroker
from simulator.run import drive
from simulator.settings import SimSettings
from simulator.sinks import ListSink
from simulator.traffic import Traffic
from simulator.world import generate_world
from tests.faults.ingest_support import dlq_copies, landed_offsets, raw_rows_by_offset
from tests.integration.conftest import StackInfo, wait_until
from tests.integration.test_ingest_exactly_once import settings_for

pytestmark = pytest.mark.integration
START_NS = 1_767_225_600 * 10**9  # 2026-01-01: simulated history, well behind every Kafka timestamp
KIND = {
    WatchEvent: "watch",
    RateEvent: "rate",
    AccountEvent: "account",
    RecommendationEvent: "recommendation",
}


@pytest.fixture(scope="module")
def sim_lines() -> list[tuple[str, int]]:
    """About 8,000 simulator lines (with the simulator's own share of corrupted ones) and their user keys."""
    world = generate_world(500, 150, seed=15)
    traffic = Traffic(world, SimSettings(sessions_per_hour=2_000, malformed_rate=0.02), "open", START_NS)
    mirror = ListSink()
    drive(traffic, [mirror], max_lines=8_000, progress=False)
    return list(zip(mirror.lines, mirror.users, strict=True))


@dataclass
class Acks:
    """Delivery reports of the paced producer: acknowledged lines by (partition, offset), failures counted."""

    acked: dict[tuple[int, int], bytes] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    queued: int = 0
    done: threading.Event = field(default_factory=threading.Event)

    def report(self, err: KafkaError | None, msg: Message) -> None:
        """The producer's delivery callback."""
        if err is None:
            self.acked[(int(msg.partition() or 0), int(msg.offset() or 0))] = msg.value() or b""
        else:
            self.failed.append(str(err))


def _produce_paced(topic: str, lines: list[tuple[str, int]], seconds: float, acks: Acks) -> None:
    """Produce the lines evenly over about `seconds`, through the outage: the producer queues and retries."""
    producer = make_producer()
    chunk = 100
    pause = seconds / max(1, len(lines) // chunk)
    for start in range(0, len(lines), chunk):
        for line, user in lines[start : start + chunk]:
            while True:
                try:
                    producer.produce(topic, line.encode(), key=str(user).encode(), on_delivery=acks.report)
                    break
                except BufferError:
                    producer.poll(0.05)
            acks.queued += 1
        producer.poll(0)
        time.sleep(pause)
    left = producer.flush(120)
    if left:
        acks.failed.append(f"{left} lines still queued after 120 s")
    acks.done.set()


@dataclass
class Running:
    """An in-process ingestion worker on its own thread, and whatever ended it."""

    worker: IngestWorker
    thread: threading.Thread
    error: list[BaseException]


@pytest.fixture
def worker(stack: StackInfo, tmp_path: Path) -> Iterator[tuple[Running, str, Path]]:
    """A worker consuming a fresh 2-partition topic into `tmp_path/var` until stopped."""
    topic = f"faults-broker-{uuid.uuid4().hex[:8]}"
    ensure_topics({topic: 2})
    var = tmp_path / "var"
    w = IngestWorker(settings_for(var, topic, batch=500))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            w.run(max_seconds=300)
        except BaseException as exc:  # reported by the test: a worker that dies is the finding
            errors.append(exc)

    thread = threading.Thread(target=run, name="ingest", daemon=True)
    thread.start()
    yield Running(w, thread, errors), topic, var
    w.stop()
    thread.join(60)


def _broker() -> KafkaBroker:
    broker = KafkaBroker(get_settings())
    assert broker.proc.running(), (
        "the fault tests signal the stack manager's own broker; this one was not started by it "
        "(external or by hand): run them where `recsys stack up` or the test fixture starts Kafka"
    )
    return broker


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_every_acknowledged_line_lands_once_or_is_dead_lettered_once_across_a_broker_restart(
    worker: tuple[Running, str, Path], sim_lines: list[tuple[str, int]], sig: signal.Signals
) -> None:
    running, topic, var = worker
    since_ms = int(time.time() * 1000) - 1000
    broker = _broker()
    acks = Acks()
    producer = threading.Thread(target=_produce_paced, args=(topic, sim_lines, 8.0, acks), daemon=True)
    producer.start()
    # Mid-stream: a third of the lines acknowledged and some of them already landed.
    wait_until(lambda: len(acks.acked) > len(sim_lines) // 3 and landed_offsets(var, topic), 60,
               "a third of the lines acknowledged and the first batches landed", every_s=0.05)  # fmt: skip
    try:
        killed = broker.kill(sig)
        time.sleep(2.0)  # an outage the producer and the worker both live through
    finally:
        broker.up()
    assert broker.proc.pid() not in (None, killed), "the broker was not restarted as a new process"
    producer.join(180)
    assert acks.done.is_set(), "the producer did not finish"
    assert len(acks.acked) >= len(sim_lines) // 2, f"too few lines acknowledged: {acks.failed[:3]}"

    def all_landed() -> bool:
        if running.error:
            raise AssertionError(f"the ingestion worker died: {running.error[0]!r}") from running.error[0]
        return set(acks.acked) <= set(landed_offsets(var, topic))

    wait_until(all_landed, 120, "every acknowledged line in the offline store")
    running.worker.stop()
    running.thread.join(60)
    assert not running.thread.is_alive() and not running.error, running.error

    landed = landed_offsets(var, topic)
    twice = sorted(k for k, n in landed.items() if n > 1)
    assert not twice, f"{len(twice)} lines landed twice, e.g. {twice[:5]}"
    rows = raw_rows_by_offset(var, topic)
    bad: set[tuple[int, int]] = set()
    for key, value in acks.acked.items():
        kind, row = rows[key]
        parsed = parse_line(value)
        if isinstance(parsed, ParseError):
            bad.add(key)
            assert (kind, row["raw"]) == ("dlq", value), f"{key}: bad line {value!r} landed as {kind}"
            assert row["reason"] == parsed.reason.value
        else:
            assert kind == KIND[type(parsed)], f"{key}: {value!r} landed as {kind}"
            assert row["user_id"] == parsed.user_id, f"{key}: {value!r} landed as {row}"
            assert row["ts"] == parsed.ts_ns, f"{key}: {value!r} landed as {row}"
    assert bad, "the simulator's corrupted lines should have exercised the DLQ"
    copies = [(p, o) for p, o, reason in dlq_copies(topic, since_ms) if reason]
    assert len(copies) == len(set(copies)), "a bad line was copied to the DLQ topic twice"
    assert bad <= set(copies), f"{len(bad - set(copies))} acknowledged bad lines missing from the DLQ topic"
