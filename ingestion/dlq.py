"""Dead letters: copies of bad lines on `movielog.dlq`, bounded in size and produced once per source offset.

A bad line may be of any size (a 1 MB slug, say), but a Kafka message may not: the copy holds
at most `max_payload` bytes of it, with headers giving the original length, its SHA-256 and
the offline file that keeps the full bytes (`raw/dlq/...`, written before the copy is sent).

Each copy is keyed `<topic>:<partition>:<offset>` of the line it copies. A worker that
crashed after sending a batch's copies but before its commit point redoes that batch; on
(re)assignment it reads the DLQ's recent tail (from a little before the partition's last
commit) and skips offsets already copied, so the topic holds each bad line once.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_END, Consumer, KafkaError, Message, Producer, TopicPartition

from events.topics import DLQ

log = logging.getLogger(__name__)

TRUNCATED_HEADER = "truncated"
"""Header set to b"1" when the payload is only the head of the line."""
MARGIN_MS = 60_000
"""How far before the partition's last commit the recovery scan starts (clock skew, slow flushes)."""


def dlq_key(topic: str, partition: int, offset: int) -> bytes:
    """The DLQ copy's key: where the line came from (consumers can deduplicate on it)."""
    return f"{topic}:{partition}:{offset}".encode()


@dataclass
class DeadLetter:
    """One bad line to copy, with where it came from and why it was refused."""

    partition: int
    offset: int
    value: bytes
    reason: str
    detail: str
    offline_file: str = ""


@dataclass
class DeadLetterWriter:
    """Produces bounded, deduplicated DLQ copies for one source topic."""

    producer: Producer
    source_topic: str
    max_payload: int
    topic: str = DLQ
    already: dict[int, set[int]] = field(default_factory=dict)
    """Per source partition: offsets whose copy is already on the DLQ (found by `recover`)."""
    errors: list[str] = field(default_factory=list)
    sent: int = 0
    skipped: int = 0

    def _delivered(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self.errors.append(str(err))

    def send(self, letter: DeadLetter) -> None:
        """Queue one copy (skipped when recovery found it on the topic already)."""
        if letter.offset in self.already.get(letter.partition, ()):
            self.skipped += 1
            return
        value = letter.value
        truncated = len(value) > self.max_payload
        headers: list[tuple[str, str | bytes | None]] = [
            ("reason", letter.reason.encode()),
            ("detail", letter.detail[:1000].encode()),
            ("source_topic", self.source_topic.encode()),
            ("source_partition", str(letter.partition).encode()),
            ("source_offset", str(letter.offset).encode()),
            ("original_length", str(len(value)).encode()),
            ("sha256", hashlib.sha256(value).hexdigest().encode()),
            (TRUNCATED_HEADER, b"1" if truncated else b"0"),
            ("offline_file", letter.offline_file.encode()),
        ]
        payload = value[: self.max_payload]
        key = dlq_key(self.source_topic, letter.partition, letter.offset)
        while True:
            try:
                self.producer.produce(
                    self.topic, payload, key=key, headers=headers, on_delivery=self._delivered
                )
                break
            except BufferError:  # local queue full: let deliveries drain
                self.producer.poll(0.05)
        self.sent += 1

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait for every queued copy; RuntimeError (batch not committed) when one was not acknowledged."""
        remaining = self.producer.flush(timeout_s)
        if remaining > 0 or self.errors:
            errors, self.errors = self.errors, []
            raise RuntimeError(
                f"DLQ copies not acknowledged ({remaining} still queued, errors: {errors[:3]}); batch not committed"
            )

    def recover(self, resume: Mapping[int, int], since_ms: int, consumer: Consumer) -> int:
        """Remember, per source partition, which offsets at or after its `resume` offset already have a copy.

        One pass over the DLQ from `since_ms` minus a margin to its current end with `consumer`
        (assigned by this call, no group commits), for every partition being assigned; returns
        how many copies were found.
        """
        found: dict[int, set[int]] = {p: set() for p in resume}
        md = consumer.list_topics(self.topic, timeout=10)
        parts = list(md.topics[self.topic].partitions) if self.topic in md.topics else []
        start = [TopicPartition(self.topic, p, max(0, since_ms - MARGIN_MS)) for p in parts]
        start = consumer.offsets_for_times(start, timeout=10) if start else []
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1] for p in parts
        }
        todo = {
            tp.partition for tp in start if 0 <= tp.offset < ends[tp.partition] and tp.offset != OFFSET_END
        }
        if todo:
            consumer.assign([tp for tp in start if tp.partition in todo])
            deadline = time.monotonic() + 60
            source = self.source_topic.encode()
            while todo and time.monotonic() < deadline:
                for m in consumer.consume(1000, 0.5):
                    if m.error() is not None:
                        continue
                    h = dict(m.headers() or [])
                    if h.get("source_topic") == source:
                        part, off = int(h.get("source_partition") or -1), int(h.get("source_offset") or -1)
                        if part in found and off >= resume[part]:
                            found[part].add(off)
                    if (m.offset() or 0) + 1 >= ends[m.partition() or 0]:
                        todo.discard(m.partition() or 0)
            consumer.unassign()
        self.already.update(found)
        total = sum(len(v) for v in found.values())
        if total:
            log.info(
                "%d bad lines already on %s (partitions %s); not copied again",
                total,
                self.topic,
                sorted(found),
            )
        return total


def recovery_consumer(factory: Callable[[str], Consumer]) -> Consumer:
    """A consumer in a throw-away group for reading the DLQ tail (never commits)."""
    return factory(f"recsys-dlq-recovery-{uuid.uuid4().hex[:8]}")
