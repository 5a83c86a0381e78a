"""Ingestion-path fuzzer: Hypothesis batches of hostile lines mixed with good ones, through a real topic and worker.

One real ingestion worker consumes a fresh single-partition topic on its own thread for the
whole test; each example produces a batch, waits until the worker's commit point passed it,
then counts: every line has exactly one row in the offline store; a line the codec refuses,
or one dated past its Kafka time, is a DLQ row with its exact bytes and the codec's reason;
every other line landed as the event it parses to. Mutations no valid line survives (NUL and
control bytes, invalid UTF-8, empty, over-long, impossible years) must be refused whatever the
codec says. At the end the DLQ topic holds each refused line once, with its reason.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Message
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from events import ParseError, parse_line
from events.kafka import ensure_topics, make_producer
from events.types import AccountEvent, Event, ParseReason, RateEvent, RecommendationEvent, WatchEvent
from ingestion.worker import IngestWorker
from tests.faults.hostile_lines import good_line, hostile_line
from tests.faults.ingest_support import dlq_copies, landed_offsets, raw_rows_by_offset
from tests.integration.conftest import StackInfo, wait_until
from tests.integration.test_ingest_exactly_once import settings_for

pytestmark = pytest.mark.integration
KIND = {
    WatchEvent: "watch",
    RateEvent: "rate",
    AccountEvent: "account",
    RecommendationEvent: "recommendation",
}
MAX_FUTURE_SKEW_NS = 300 * 10**9
"""The worker's default `max_future_skew_s`: lines dated further past their Kafka time are refused."""


@dataclass
class Delivered:
    """Delivery reports of one batch: offset -> (line, Kafka timestamp in ms)."""

    lines: dict[int, tuple[bytes, int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def report(self, err: KafkaError | None, msg: Message) -> None:
        """The producer's delivery callback."""
        if err is not None:
            self.errors.append(str(err))
        else:
            self.lines[int(msg.offset() or 0)] = (msg.value() or b"", msg.timestamp()[1])


def expected(line: bytes, kafka_ms: int) -> tuple[str, str | Event]:
    """Where a line must end up: ("dlq", reason) or (raw kind, event)."""
    parsed = parse_line(line)
    if isinstance(parsed, ParseError):
        return "dlq", parsed.reason.value
    if parsed.ts_ns - kafka_ms * 1_000_000 > MAX_FUTURE_SKEW_NS:
        return "dlq", ParseReason.FUTURE_TIMESTAMP.value
    return KIND[type(parsed)], parsed


def test_hostile_line_batches_never_crash_ingestion_and_every_line_lands_or_is_dead_lettered_once(
    stack: StackInfo, tmp_path: Path
) -> None:
    since_ms = int(time.time() * 1000) - 1000
    topic = f"faults-fuzz-{uuid.uuid4().hex[:8]}"
    ensure_topics({topic: 1})
    var = tmp_path / "var"
    worker = IngestWorker(settings_for(var, topic, batch=500).model_copy(update={"batch_max_seconds": 0.1}))
    died: list[BaseException] = []

    def run() -> None:
        try:
            worker.run(max_seconds=280)
        except BaseException as exc:  # the finding: a line that kills the worker
            died.append(exc)

    thread = threading.Thread(target=run, name="ingest", daemon=True)
    thread.start()
    producer = make_producer(extra={"message.max.bytes": 2_000_000})
    refused: dict[int, str] = {}
    examples = {"n": 0, "lines": 0}

    # Shrinking is off: each step costs a produce-and-land round trip, and the unshrunk batch
    # is printed in full anyway.
    @settings(max_examples=30, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(st.lists(st.one_of(hostile_line(), good_line()), min_size=1, max_size=40))
    def one_batch(batch: list[tuple[bytes, bool]]) -> None:
        delivered = Delivered()
        for line, _ in batch:
            producer.produce(topic, line, key=b"fuzz", partition=0, on_delivery=delivered.report)
        assert producer.flush(30) == 0 and not delivered.errors, delivered.errors
        offsets = sorted(delivered.lines)
        assert len(offsets) == len(batch)
        # Delivery order is produce order on one partition with an idempotent producer.
        assert [delivered.lines[o][0] for o in offsets] == [line for line, _ in batch]

        def landed_past_batch() -> bool:
            if died:
                raise AssertionError(f"the ingestion worker died: {died[0]!r}") from died[0]
            return worker.landed_until.get(0, 0) > offsets[-1]

        wait_until(landed_past_batch, 30, "the worker landing the batch", every_s=0.02)
        rows = raw_rows_by_offset(var, topic)
        for (line, must_fail), offset in zip(batch, offsets, strict=True):
            kind, row = rows[(0, offset)]
            want_kind, want = expected(line, delivered.lines[offset][1])
            if must_fail:
                assert want_kind == "dlq", f"offset {offset}: the codec accepts the impossible line {line!r}"
            assert kind == want_kind, (
                f"offset {offset}: {line!r} landed as {kind} {row}, expected {want_kind}"
            )
            if kind == "dlq":
                assert row["raw"] == line and row["reason"] == want, f"offset {offset}: {line!r} -> {row}"
                refused[offset] = str(want)
                continue
            assert isinstance(want, (WatchEvent, RateEvent, AccountEvent, RecommendationEvent))
            assert (row["ts"], row["user_id"]) == (want.ts_ns, want.user_id), f"{line!r} -> {row}"
            if isinstance(want, (WatchEvent, RateEvent)):
                assert row["movie_id"] == want.movie_id, f"{line!r} -> {row}"
        # Exactly one row per line: the offline store holds nothing beyond what was produced.
        seen = landed_offsets(var, topic)
        assert len(seen) == sum(seen.values()) == offsets[-1] + 1, (
            "a line landed twice or a row came from nowhere"
        )
        examples["n"] += 1
        examples["lines"] += len(batch)

    try:
        one_batch()
    finally:
        worker.stop()
        thread.join(60)
    assert not died, died
    assert examples["n"] == 30 and refused, examples
    copies = dlq_copies(topic, since_ms)
    counts = Counter(o for _, o, _ in copies)
    assert {o: r for _, o, r in copies} == refused, "the DLQ topic's copies differ from the refused lines"
    assert max(counts.values()) == 1, "a refused line was copied to the DLQ topic twice"
