"""The provenance log: one JSON record per answered request on `recsys.provenance`, never blocking the answer.

`ProvenanceLog.record` is O(1): it appends to a bounded buffer and a bounded in-memory index
under a lock held for a few dictionary operations, and never touches the network. A daemon
thread drains the buffer into a Kafka producer (key = request id) and serves its delivery
callbacks; nothing is lost silently:

- Buffer full (Kafka down for a while): the *oldest* waiting record is dropped and counted in
  `overflow`. Why the oldest: recent answers matter more to online metrics (they are joined
  with the watches that follow them) and to `/provenance/<id>` questions.
- Broker unreachable: librdkafka keeps trying to connect; a record whose delivery fails
  (timeout after `delivery_timeout_s`, purge) goes back to the front of the buffer, counted in
  `retried`. After a failure only one record at a time is handed to the producer (a probe), so
  the rest wait in our bounded buffer, not in librdkafka's queue; the first delivery that
  succeeds opens the window to `max_in_flight` again. Recovery therefore takes about one
  reconnect back-off (at most 2 s), not a whole message timeout.
- The producer is created lazily in the drain thread and recreated after a fatal error or
  `repoint()` (new broker settings): its queued records are purged back into the buffer.
- A record the broker can never take (too large, invalid) is dropped and counted in `failed`.

Delivery is at least once: a timed-out message may have reached the broker after all, so
readers de-duplicate by key (request id). Accounting always balances: recorded = sent + failed
+ overflow + abandoned + buffered + in_flight (`abandoned`: still undelivered when `close` gave up).

`lookup` answers from the index (the last `index_size` records of this process, ~1 KB each:
50k records, the default, hold ~50 MB). `find` then asks the Redis index of every process
(`serving.provenance_index`, written by the drain thread from delivery reports): a hit is read
at its offset, a miss is None without touching Kafka. Only when no Redis index is configured
or it cannot answer does `find` scan the topic, at most `max_scans` scans at once
(`ProvenanceBusyError` beyond: a 503, never a queue of 0.6 s scans). `explain` adds the
registry's facts (`serving.provenance_lookup`). The record itself is `serving.provenance_record`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from events.kafka import make_producer
from events.settings import KafkaSettings, get_kafka_settings
from events.topics import PROVENANCE
from serving.provenance_index import IndexUnavailableError, ProvenanceIndex
from serving.provenance_lookup import explain_record, fetch_at, find_in_topic
from serving.provenance_record import ProvenanceBusyError, ProvenanceNotFoundError, ProvenanceRecord

if TYPE_CHECKING:
    from ranking.registry import ModelRegistry
    from serving.settings import ServingSettings

log = logging.getLogger(__name__)


class _DebugLog:
    """librdkafka's log lines at DEBUG: an outage logs a connect failure per back-off; we log the transitions."""

    def __init__(self, name: str) -> None:
        self._log = logging.getLogger(name)

    def log(self, _level: int, msg: str, *args: object) -> None:
        """Called by the Kafka client for each librdkafka log line."""
        self._log.debug(msg, *args)


_KAFKA_LOG: Final = _DebugLog(f"{__name__}.kafka")

# Errors about the record itself: retrying cannot help, so the record is dropped and counted.
_PERMANENT: Final = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_MSG,
        KafkaError.INVALID_RECORD,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError._INVALID_ARG,
        -158,  # RD_KAFKA_RESP_ERR__MSG_SIZE_TOO_LARGE (local check), not exported by the binding
    }
)


@dataclass(frozen=True)
class ProvenanceStats:
    """Counters of a provenance log; recorded = sent + failed + overflow + abandoned + buffered + in_flight."""

    recorded: int
    sent: int
    buffered: int
    in_flight: int
    retried: int
    """Deliveries that failed transiently; the record went back to the buffer."""
    failed: int
    """Records dropped because the broker can never take them (or that could not be recorded)."""
    overflow: int
    """Records dropped because the buffer was full (the oldest go first)."""
    abandoned: int
    """Records still undelivered when `close` gave up."""
    indexed: int
    deliverable: bool
    """False after a failed delivery until one succeeds (only one probe record in flight meanwhile)."""
    last_error: str | None
    scans: int = 0
    """Topic scans `find` started (the Redis index was missing or could not answer)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for /metrics gauges or an admin route)."""
        return asdict(self)


class ProvenanceLog:
    """Bounded, non-blocking provenance records drained to Kafka by a background thread; see the module doc."""

    def __init__(
        self,
        kafka: KafkaSettings | None = None,
        *,
        topic: str = PROVENANCE,
        buffer_size: int = 10_000,
        index_size: int = 50_000,
        max_in_flight: int = 1_000,
        delivery_timeout_s: float = 10.0,
        poll_interval_s: float = 0.05,
        producer_extra: Mapping[str, Any] | None = None,
        redis_index: ProvenanceIndex | None = None,
        max_scans: int = 2,
        index_flush_s: float = 0.25,
    ) -> None:
        if buffer_size < 1 or max_in_flight < 1 or index_size < 0:
            raise ValueError("buffer_size and max_in_flight must be >= 1, index_size >= 0")
        self.topic = topic
        self.buffer_size = buffer_size
        self.index_size = index_size
        self.max_in_flight = max_in_flight
        self.delivery_timeout_s = delivery_timeout_s
        self.poll_interval_s = poll_interval_s
        self.index_flush_s = index_flush_s
        """Seconds between the Redis index's batched writes (each pass wrote one: ~50 round trips/s a worker)."""
        self._kafka = kafka
        self._producer_extra = dict(producer_extra or {})
        self.redis_index = redis_index
        # Scans cost O(topic); a semaphore taken without waiting bounds how many run at once.
        self._scan_gate = threading.BoundedSemaphore(max_scans) if max_scans > 0 else None
        self._scans = 0
        # Shared with request threads: touched only under _lock, for O(1) operations.
        self._lock = threading.Lock()
        self._buffer: deque[ProvenanceRecord] = deque()
        self._index: OrderedDict[str, ProvenanceRecord] = OrderedDict()
        self._recorded = self._overflow = self._failed = self._abandoned = 0
        # Owned by the drain thread (delivery callbacks run inside its poll/flush calls).
        self._in_flight: dict[int, ProvenanceRecord] = {}
        self._retry: list[ProvenanceRecord] = []
        self._seq = 0
        self._sent = self._retried = 0
        self._deliverable = True
        self._fatal = False
        self._last_error: str | None = None
        self._pending_kafka: KafkaSettings | None = None
        self._stop = threading.Event()
        self._close_deadline = 0.0
        self._thread: threading.Thread | None = None
        self._closed = False

    @classmethod
    def from_settings(
        cls, settings: ServingSettings | None = None, kafka: KafkaSettings | None = None
    ) -> ProvenanceLog:
        """A log sized by the serving settings (buffer, index) on the configured broker; not started."""
        from serving.settings import get_serving_settings

        s = settings or get_serving_settings()
        index = ProvenanceIndex(s.redis_url, s.provenance_index_ttl_s)
        return cls(kafka, buffer_size=s.provenance_buffer, index_size=s.provenance_index, redis_index=index,
                   max_scans=s.provenance_max_scans)  # fmt: skip

    # --- the request path -----------------------------------------------------------------

    def record(self, rec: ProvenanceRecord) -> None:
        """Queue a record for Kafka and index it by request id: O(1), no I/O, never raises."""
        try:
            key = rec.request_id  # before any change: a malformed record leaves no trace but a count
            with self._lock:
                self._recorded += 1
                if len(self._buffer) >= self.buffer_size:
                    self._buffer.popleft()
                    self._overflow += 1
                self._buffer.append(rec)
                if self.index_size:
                    self._index[key] = rec
                    if len(self._index) > self.index_size:
                        self._index.popitem(last=False)
        except Exception:  # the answer matters more than its log line: count, never raise
            self._count_failed(recorded=True)

    def _count_failed(self, recorded: bool = False) -> None:
        with self._lock:
            self._recorded += recorded
            self._failed += 1

    def lookup(self, request_id: str) -> ProvenanceRecord | None:
        """A record of this process by request id, from the in-memory index (None when not or no longer there)."""
        with self._lock:
            rec = self._index.get(request_id)
            if rec is not None:
                self._index.move_to_end(request_id)  # asked about: keep it longer (LRU)
            return rec

    def find(self, request_id: str, timeout_s: float = 5.0) -> ProvenanceRecord | None:
        """Memory, then the Redis index (a miss is None, no scan); a bounded scan only when that index cannot answer."""
        rec = self.lookup(request_id)
        if rec is not None:
            return rec
        if self.redis_index is not None:
            try:
                where = self.redis_index.locate(request_id)
            except IndexUnavailableError as exc:
                log.warning("%s: scanning %s for %s", exc, self.topic, request_id)
            else:
                if where is None:
                    return None
                return fetch_at(request_id, *where, self._settings(), self.topic, timeout_s)
        return self._bounded_scan(request_id, timeout_s)

    def _bounded_scan(self, request_id: str, timeout_s: float) -> ProvenanceRecord | None:
        if self._scan_gate is None or not self._scan_gate.acquire(blocking=False):
            raise ProvenanceBusyError("provenance lookups are busy (topic scans at their limit): retry later")
        try:
            with self._lock:
                self._scans += 1
            return self.find_in_topic(request_id, timeout_s)
        finally:
            self._scan_gate.release()

    def find_in_topic(self, request_id: str, timeout_s: float = 5.0) -> ProvenanceRecord | None:
        """Scan this log's topic on its broker for a request id (O(topic size); see the module function)."""
        return find_in_topic(request_id, self._settings(), self.topic, timeout_s)

    def explain(self, request_id: str, registry: ModelRegistry, timeout_s: float = 5.0) -> dict[str, Any]:
        """The record plus the registry's facts about the model version that answered; blocking I/O (run it in a worker thread)."""
        rec = self.find(request_id, timeout_s)
        if rec is None:
            raise ProvenanceNotFoundError(f"no provenance record for request {request_id}")
        return explain_record(rec, registry)

    def stats(self) -> ProvenanceStats:
        """A snapshot of the counters."""
        with self._lock:
            return ProvenanceStats(
                recorded=self._recorded,
                sent=self._sent,
                buffered=len(self._buffer),
                in_flight=len(self._in_flight),
                retried=self._retried,
                failed=self._failed,
                overflow=self._overflow,
                abandoned=self._abandoned,
                indexed=len(self._index),
                deliverable=self._deliverable,
                last_error=self._last_error,
                scans=self._scans,
            )

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> ProvenanceLog:
        """Start the drain thread (idempotent); call from the app's lifespan, never at import."""
        if self._closed:
            raise RuntimeError("this provenance log is closed")
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="provenance-drain", daemon=True)
            self._thread.start()
        return self

    def repoint(self, kafka: KafkaSettings) -> None:
        """Send to another broker from now on: the current producer's queued records return to the buffer first."""
        self._pending_kafka = kafka

    def close(self, timeout_s: float = 5.0) -> bool:
        """Deliver what is buffered within the timeout, then stop; True when nothing was left undelivered."""
        if not self._closed:
            self._closed = True
            self._close_deadline = time.monotonic() + timeout_s
            self._stop.set()
            if self._thread is None:
                self._run()  # never started: flush from the caller's thread
            else:
                self._thread.join(timeout_s + 5.0)
        s = self.stats()
        return s.buffered == 0 and s.in_flight == 0 and s.abandoned == 0

    def __enter__(self) -> ProvenanceLog:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the drain thread -----------------------------------------------------------------

    def _settings(self) -> KafkaSettings:
        return self._kafka or get_kafka_settings()

    def _make_producer(self) -> Producer:
        extra = {
            "message.timeout.ms": max(1, int(self.delivery_timeout_s * 1000)),
            # librdkafka's default back-off grows to 10 s; 2 s bounds how late a recovery is noticed.
            "reconnect.backoff.max.ms": 2000,
            # Records are read seconds later at the earliest: batching 100 ms of them costs the
            # drain thread and the broker a fifth of the wake-ups of make_producer's 20 ms.
            "linger.ms": 100,
            "error_cb": self._on_error,
            "logger": _KAFKA_LOG,
            **self._producer_extra,
        }
        return make_producer(self._settings(), extra)

    def _set_deliverable(self, ok: bool) -> None:
        if ok != self._deliverable:
            if ok:
                log.info("provenance delivery to %s resumed", self.topic)
            else:
                log.warning("provenance delivery to %s failing (%s): buffering", self.topic, self._last_error)
        self._deliverable = ok

    def _on_error(self, err: KafkaError) -> None:
        self._last_error = str(err)
        if err.fatal():
            log.error("provenance producer fatal error, recreating it: %s", err)
            self._fatal = True
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._set_deliverable(False)

    def _on_delivery(self, seq: int, err: KafkaError | None, msg: Message) -> None:
        rec = self._in_flight.pop(seq, None)
        if rec is None:  # a callback of a producer already discarded and purged: handled then
            return
        if err is None:
            self._sent += 1
            self._set_deliverable(True)
            partition, offset = msg.partition(), msg.offset()
            if self.redis_index is not None and partition is not None and offset is not None:
                self.redis_index.add(rec.request_id, partition, offset)
        elif err.code() in _PERMANENT:
            self._count_failed()
            self._last_error = str(err)
            log.error("provenance record %s dropped: %s", rec.request_id, err)
        else:
            self._retried += 1
            self._last_error = str(err)
            self._set_deliverable(False)
            self._retry.append(rec)

    def _requeue(self) -> None:
        """Put failed records back at the front, oldest first; what no longer fits overflows (the oldest)."""
        if not self._retry:
            return
        retry, self._retry = self._retry, []
        with self._lock:
            room = self.buffer_size - len(self._buffer)
            if room < len(retry):
                self._overflow += len(retry) - room
                retry = retry[len(retry) - room :] if room > 0 else []
            self._buffer.extendleft(reversed(retry))

    def _fill(self, producer: Producer, window: int) -> None:
        """Hand buffered records to the producer until `window` are in flight."""
        with self._lock:
            take = min(window - len(self._in_flight), len(self._buffer))
            batch = [self._buffer.popleft() for _ in range(max(0, take))]
        for i, rec in enumerate(batch):
            seq = self._seq = self._seq + 1
            self._in_flight[seq] = rec
            try:
                producer.produce(
                    self.topic, rec.to_json(), rec.request_id, on_delivery=partial(self._on_delivery, seq)
                )
            except (BufferError, KafkaException) as exc:
                del self._in_flight[seq]
                code = exc.args[0].code() if exc.args and isinstance(exc.args[0], KafkaError) else None
                if code in _PERMANENT:
                    self._count_failed()
                    log.error("provenance record %s dropped: %s", rec.request_id, exc)
                    continue
                self._last_error = str(exc)
                self._set_deliverable(False)
                self._retry.extend(batch[i:])
                break

    def _discard(self, producer: Producer) -> None:
        """Purge a producer's queue so its records return to the buffer; then forget it."""
        try:
            producer.purge(in_queue=True, in_flight=True)
            producer.flush(1.0)  # serves the purge callbacks
        except KafkaException as exc:
            log.warning("purging the provenance producer failed: %s", exc)
        # Whatever did not come back by callback goes back by hand (stale callbacks are ignored).
        self._retry.extend(self._in_flight.values())
        self._in_flight.clear()
        self._requeue()

    def _run(self) -> None:
        producer: Producer | None = None
        next_index_flush = 0.0
        while not self._stop.is_set():
            if producer is not None and (self._pending_kafka is not None or self._fatal):
                self._discard(producer)
                producer = None
            if self._pending_kafka is not None:
                self._kafka, self._pending_kafka = self._pending_kafka, None
            if producer is None:
                self._fatal = False
                self._deliverable = True
                try:
                    producer = self._make_producer()
                except KafkaException as exc:  # bad configuration: keep buffering, try again later
                    self._last_error = str(exc)
                    self._stop.wait(1.0)
                    continue
            self._fill(producer, self.max_in_flight if self._deliverable else 1)
            producer.poll(self.poll_interval_s)
            self._requeue()
            if self.redis_index is not None and time.monotonic() >= next_index_flush:
                self.redis_index.flush()  # one pipelined round trip per interval, off the request path
                next_index_flush = time.monotonic() + self.index_flush_s
        self._shutdown(producer)
        if self.redis_index is not None:
            self.redis_index.close()

    def _shutdown(self, producer: Producer | None) -> None:
        """The last chance: hand everything over, flush until the close deadline, count what is left."""
        try:
            if self._pending_kafka is not None:
                if producer is not None:
                    self._discard(producer)
                    producer = None
                self._kafka, self._pending_kafka = self._pending_kafka, None
            if producer is None:
                producer = self._make_producer()
            while time.monotonic() < self._close_deadline:
                self._fill(producer, self.buffer_size + self.max_in_flight)
                producer.flush(max(0.0, min(0.2, self._close_deadline - time.monotonic())))
                self._requeue()
                if not self._buffer and not self._in_flight:
                    break
            if self._in_flight:
                self._discard(producer)
        except KafkaException as exc:
            self._last_error = str(exc)
            self._retry.extend(self._in_flight.values())
            self._in_flight.clear()
            self._requeue()
        with self._lock:
            self._abandoned += len(self._buffer)
            if self._buffer:
                log.warning("provenance log closed with %d records undelivered", len(self._buffer))
            self._buffer.clear()
