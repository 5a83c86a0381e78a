"""The provenance index: request id -> where its record sits on the topic, in Redis with a TTL.

Without it, `/provenance/<id>` for an id this process does not hold in memory scans the whole
topic (O(topic size), ~0.6 s on the demo's topic): an unauthenticated caller asking for random
ids could keep the service busy. With it a lookup is one GET: a hit names the partition and
offset (`fetch_at` reads that one message), a miss is a definite 404 without touching Kafka.

Written off the request path: the provenance drain thread calls `add` from the broker's
delivery report (which carries the partition and offset, so only records that really are on
the topic are indexed) and `flush` once per drain pass, one pipelined `SET key value EX ttl`
round trip per batch. Redis unreachable: the batch goes back to the front of a bounded queue
(the oldest entries beyond `max_pending` are dropped and counted) and writing pauses for
`retry_s`; lookups meanwhile raise `IndexUnavailableError`, and the log falls back to a bounded
number of concurrent scans. Memory: ~100 bytes per indexed answer (key, value, expiry), so at
200 answers/s a one-day TTL holds ~17M keys, ~1.7 GB; size the TTL to the questions asked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

log = logging.getLogger(__name__)

INDEX_PREFIX: Final = "recsys:prov:"
"""Redis key of a request id: `recsys:prov:<request_id>` -> `<partition>:<offset>`."""


class IndexUnavailableError(RuntimeError):
    """Redis could not answer the lookup (down, slow): the caller may fall back to a scan."""


@dataclass(frozen=True)
class IndexStats:
    """Counters of the index writer."""

    written: int
    pending: int
    dropped: int
    """Entries lost because Redis stayed unreachable longer than the queue could hold."""
    write_errors: int


class ProvenanceIndex:
    """Request id -> (partition, offset) in Redis; see the module doc."""

    def __init__(self, redis_url: str, ttl_s: int, *, max_pending: int = 100_000, timeout_s: float = 0.5,
                 retry_s: float = 1.0) -> None:  # fmt: skip
        self.redis_url, self.ttl_s, self.max_pending = redis_url, ttl_s, max_pending
        self.timeout_s, self.retry_s = timeout_s, retry_s
        self._client: Any = None
        self._lock = threading.Lock()
        self._pending: deque[tuple[str, int, int]] = deque()
        self._written = self._dropped = self._errors = 0
        self._retry_at = 0.0
        self._failing = False

    def _redis(self) -> Any:
        if self._client is None:  # lazily: nothing connects at construction (settings, tests)
            import redis

            self._client = redis.Redis.from_url(
                self.redis_url, socket_timeout=self.timeout_s, socket_connect_timeout=self.timeout_s
            )
        return self._client

    def add(self, request_id: str, partition: int, offset: int) -> None:
        """Queue one delivered record's position (O(1), no I/O)."""
        with self._lock:
            self._pending.append((request_id, partition, offset))
            self._trim()

    def _trim(self) -> None:
        while len(self._pending) > self.max_pending:
            self._pending.popleft()
            self._dropped += 1

    def flush(self) -> int:
        """Write what is queued in one pipelined round trip; never raises. Returns the entries written."""
        if not self._pending or time.monotonic() < self._retry_at:
            return 0
        with self._lock:
            batch, self._pending = list(self._pending), deque()
        try:
            with self._redis().pipeline(transaction=False) as pipe:
                for request_id, partition, offset in batch:
                    pipe.set(INDEX_PREFIX + request_id, f"{partition}:{offset}", ex=self.ttl_s)
                pipe.execute()
        except Exception as exc:  # redis errors of any kind: keep the batch, retry later
            with self._lock:
                self._errors += 1
                self._pending.extendleft(reversed(batch))
                self._trim()
            self._retry_at = time.monotonic() + self.retry_s
            if not self._failing:
                log.warning(
                    "provenance index writes failing (%s): queueing, retry every %gs", exc, self.retry_s
                )
            self._failing = True
            return 0
        if self._failing:
            log.info("provenance index writes resumed")
        self._failing = False
        with self._lock:
            self._written += len(batch)
        return len(batch)

    def locate(self, request_id: str) -> tuple[int, int] | None:
        """(partition, offset) of a request's record; None when not indexed; IndexUnavailableError when Redis fails."""
        try:
            raw = self._redis().get(INDEX_PREFIX + request_id)
        except Exception as exc:
            raise IndexUnavailableError(f"provenance index unavailable: {exc}") from exc
        if raw is None:
            return None
        partition, _, offset = raw.decode().partition(":")
        return int(partition), int(offset)

    def stats(self) -> IndexStats:
        """A snapshot of the counters."""
        with self._lock:
            return IndexStats(self._written, len(self._pending), self._dropped, self._errors)

    def close(self) -> None:
        """Write what is left (one try) and close the connection pool."""
        self._retry_at = 0.0
        self.flush()
        if self._client is not None:
            self._client.close()
            self._client = None
