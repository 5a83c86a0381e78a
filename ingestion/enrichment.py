"""Metadata API client: batched, cached, retried and circuit-broken lookups of movies and users.

The API (`GET {base}/movie/<id>[,<id>...]`, `GET {base}/user/<id>[,...]`) answers one record
for one id (404 when unknown) and a list for several, in which unknown ids are
`{"<id field>": ..., "error": "not found"}` entries. Fault injection adds latency, 5xx answers
and missing or renamed fields, so every step here is lenient and bounded:

- ids are deduplicated, checked locally (a malformed id would make the API reject the whole
  batch) and sent in batches of at most `max_batch`; a batch rejected with a 400 anyway is
  split in halves until the bad id is alone, so one bad id never spoils 199 good ones;
- answers are cached (found records for `cache_ttl_s`, records that broke the schema for
  `incomplete_ttl_s`, so values fill in soon after the API is fixed, not-found ids for `negative_ttl_s`);
- 5xx, 429, timeouts, connection errors and unreadable bodies are retried with exponential
  backoff and equal jitter; other 4xx are not;
- after `breaker_failures` consecutive failed requests the breaker opens: calls answer from
  the cache alone, at once, until `breaker_reset_s` has passed and one trial request succeeds;
- one lookup never spends more than `deadline_s` on the API, however many batches it needs;
- every record is checked against the response schema (`ingestion.metadata_records`): each
  missing, null or invalid field is counted (`recsys_enrichment_schema_errors_total{kind,field}`)
  and logged at most once per field per `schema_log_interval_s`; invalid fields are dropped
  (the record is kept) and a blank field never replaces the last good value seen for that id
  (so a known `adult` flag is never lost to a later answer without it; absent, it stays None).

Breaker state, requests by outcome, latency, cache lookups and schema errors are Prometheus
metrics (`ingestion.metrics`, served on the ingest metrics port). Nothing here raises on a bad
answer: the stream must never stall on enrichment.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Generic
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field

from core.resilience import BreakerState, CircuitBreaker, TtlCache, equal_jitter
from events.metadata import MovieMeta, UserMeta
from ingestion import metrics
from ingestion.metadata_records import (
    K,
    Kind,
    M,
    is_not_found,
    keep_last_good,
    movie_key,
    parse_record,
    records,
    user_key,
)

log = logging.getLogger(__name__)

_BREAKER_GAUGE: Final[dict[BreakerState, int]] = {"closed": 0, "half_open": 1, "open": 2}


class EnrichmentConfig(BaseModel):
    """Knobs of the metadata API client (embedded in the ingestion settings)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field("http://127.0.0.1:8080", description="Base URL of the metadata API.")
    timeout_s: float = Field(
        1.0, gt=0, description="Per-request timeout (each of connect, read, write), seconds."
    )
    deadline_s: float = Field(
        5.0, gt=0, description="Most time one lookup spends on the API; ids left over come back unavailable."
    )
    max_batch: int = Field(200, ge=1, description="Most ids in one request (the API allows 200).")
    retries: int = Field(2, ge=0, description="Extra attempts after a 5xx, 429, timeout or connection error.")
    backoff_base_s: float = Field(
        0.1, ge=0, description="First retry delay; doubles per attempt, with jitter."
    )
    backoff_max_s: float = Field(1.0, ge=0, description="Cap of one retry delay, seconds.")
    cache_ttl_s: float = Field(3600.0, ge=0, description="How long a found record is served from the cache.")
    negative_ttl_s: float = Field(300.0, ge=0, description="How long a not-found id is remembered as such.")
    incomplete_ttl_s: float = Field(
        10.0,
        ge=0,
        description="How long a record that broke the schema is served from the cache before the API is asked again.",
    )
    cache_max_entries: int = Field(
        100_000,
        ge=0,
        description="Cache size per kind (also of the last good values); least recently used go first.",
    )
    breaker_failures: int = Field(5, ge=1, description="Consecutive failed requests that open the breaker.")
    breaker_reset_s: float = Field(15.0, ge=0, description="Open time before one trial request (half-open).")
    schema_log_interval_s: float = Field(
        60.0, ge=0, description="Schema violations are logged at most once per field per this many seconds."
    )


@dataclass
class Lookup(Generic[K, M]):
    """The outcome of one lookup: every requested id lands in exactly one of the four groups."""

    found: dict[K, M] = field(default_factory=dict)
    not_found: set[K] = field(default_factory=set)
    """The API said it does not exist (now or within `negative_ttl_s`)."""
    unavailable: set[K] = field(default_factory=set)
    """No answer: API down, breaker open, or a record that could not be used. Worth asking again later."""
    invalid: list[Any] = field(default_factory=list)
    """Ids that can never exist (malformed), as given; never sent."""


class _UnavailableError(Exception):
    """No usable answer (5xx, 429, timeout, connection error, garbage): retry, and a strike for the breaker."""


class _RejectedError(Exception):
    """A 3xx or 4xx (but a single id's 404): the request itself is wrong, so it is not retried."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


_COUNTERS: Final = (
    "requests",
    "request_failures",
    "client_errors",
    "retries",
    "cache_hits",
    "negative_cache_hits",
    "cache_misses",
    "found",
    "not_found",
    "unavailable",
    "invalid_ids",
    "malformed_answers",
    "records_repaired",
    "records_skipped",
    "schema_errors",
    "last_good_kept",
    "short_circuited",
    "deadline_exceeded",
)


class MetadataClient:
    """Sync client of the metadata API (thread-safe); use as a context manager or call `close()`."""

    def __init__(
        self,
        config: EnrichmentConfig | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config or EnrichmentConfig()
        c = self.config
        self._http = httpx.Client(
            base_url=c.base_url.rstrip("/"), timeout=httpx.Timeout(c.timeout_s), transport=transport
        )
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._lock = threading.Lock()  # guards the counters and the log schedule
        self._movies: TtlCache[str, MovieMeta | None] = TtlCache(c.cache_max_entries, c.cache_ttl_s, clock)
        self._users: TtlCache[int, UserMeta | None] = TtlCache(c.cache_max_entries, c.cache_ttl_s, clock)
        # Last good value per id: no expiry (only LRU), so it outlives the cache's TTL.
        self._good_movies: TtlCache[str, MovieMeta] = TtlCache(c.cache_max_entries, float("inf"), clock)
        self._good_users: TtlCache[int, UserMeta] = TtlCache(c.cache_max_entries, float("inf"), clock)
        self._breaker = CircuitBreaker(
            c.breaker_failures, c.breaker_reset_s, clock, on_change=_breaker_changed
        )
        metrics.ENRICH_BREAKER.set(0)
        self._next_schema_log: dict[tuple[Kind, str], float] = {}
        self._unlogged: dict[tuple[Kind, str], int] = {}
        self.counters: dict[str, int] = dict.fromkeys(_COUNTERS, 0)

    # --- public API ------------------------------------------------------------------------

    def get_movies(self, ids: Iterable[str]) -> dict[str, MovieMeta]:
        """Movies by id; unknown, unavailable and malformed ids are simply absent."""
        return self.lookup_movies(ids).found

    def get_users(self, ids: Iterable[int]) -> dict[int, UserMeta]:
        """Users by id; unknown, unavailable and malformed ids are simply absent."""
        return self.lookup_users(ids).found

    def lookup_movies(self, ids: Iterable[str]) -> Lookup[str, MovieMeta]:
        """Movies by id, with what happened to the ids that were not found."""
        return self._lookup("movie", self._movies, self._good_movies, ids, movie_key)

    def lookup_users(self, ids: Iterable[int]) -> Lookup[int, UserMeta]:
        """Users by id, with what happened to the ids that were not found."""
        return self._lookup("user", self._users, self._good_users, ids, user_key)

    @property
    def breaker_state(self) -> BreakerState:
        """`closed` (normal), `open` (cache only) or `half_open` (one trial request allowed)."""
        return self._breaker.state

    def stats(self) -> dict[str, int | str]:
        """Counters since start, cache sizes and the breaker's state (for metrics and logs)."""
        with self._lock:
            out: dict[str, int | str] = dict(self.counters)
        out["movie_cache_entries"] = len(self._movies)
        out["user_cache_entries"] = len(self._users)
        out["breaker_opens"] = self._breaker.opens
        out["breaker_state"] = self._breaker.state
        return out

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> MetadataClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the lookup ------------------------------------------------------------------------

    def _lookup(
        self,
        kind: Kind,
        cache: TtlCache[K, M | None],
        good: TtlCache[K, M],
        ids: Iterable[Any],
        key: Callable[[Any], K | None],
    ) -> Lookup[K, M]:
        out: Lookup[K, M] = Lookup()
        wanted: list[K] = []
        seen: set[K] = set()
        for raw in ids:
            k = key(raw)
            if k is None:
                self._count("invalid_ids")
                out.invalid.append(raw)
                continue
            if k in seen:
                continue
            seen.add(k)
            hit, value = cache.get(k)
            if not hit:
                self._count("cache_misses")
                metrics.ENRICH_CACHE.labels(kind, "miss").inc()
                wanted.append(k)
            elif value is None:
                self._count("negative_cache_hits")
                metrics.ENRICH_CACHE.labels(kind, "negative_hit").inc()
                out.not_found.add(k)
            else:
                self._count("cache_hits")
                metrics.ENRICH_CACHE.labels(kind, "hit").inc()
                out.found[k] = value
        if wanted:
            call = _Call(kind, cache, good, key, out, self._clock() + self.config.deadline_s)
            step = self.config.max_batch
            for start in range(0, len(wanted), step):
                self._fetch(call, wanted[start : start + step])
        self._count("unavailable", len(out.unavailable))
        return out

    def _fetch(self, call: _Call[K, M], batch: list[K]) -> None:
        """One batch: request it (with retries), split it if the API rejects it, and file the answers."""
        out = call.out
        try:
            status, body = self._request(call, batch)
        except _RejectedError as e:
            if e.status == 400 and len(batch) > 1 and call.splits > 0:
                # One id the API dislikes (a rule stricter than ours) must not lose the other 199;
                # the split budget bounds the damage when the API rejects everything.
                call.splits -= 1
                half = len(batch) // 2
                self._fetch(call, batch[:half])
                self._fetch(call, batch[half:])
            elif e.status == 400 and len(batch) == 1:
                self._remember_missing(call, batch[0])  # malformed in the API's eyes: will never exist
            else:
                out.unavailable.update(batch)
            return
        except _UnavailableError:
            out.unavailable.update(batch)
            return
        if status == 404:  # a single id the API does not know
            self._remember_missing(call, batch[0])
            return
        pairs = records(call.kind, batch, body, call.key)
        if pairs is None:
            self._count("malformed_answers")
            out.unavailable.update(batch)
            return
        wanted = set(batch)
        answered: set[K] = set()
        for k, rec in pairs:
            if k in answered or k not in wanted:
                continue
            answered.add(k)
            if is_not_found(rec, call.kind):
                self._remember_missing(call, k)
                continue
            meta, clean = self._parse(call, k, rec)
            if meta is None:
                out.unavailable.add(k)
                continue
            # A record that broke the schema is cached briefly: once the API is fixed, its values fill in.
            call.cache.put(k, meta, None if clean else self.config.incomplete_ttl_s)
            self._count("found")
            out.found[k] = meta
        # Ids the answer did not mention are not "not found": not cached, asked again next time.
        out.unavailable.update(k for k in batch if k not in answered)

    def _remember_missing(self, call: _Call[K, M], k: K) -> None:
        call.cache.put(k, None, self.config.negative_ttl_s)
        self._count("not_found")
        call.out.not_found.add(k)

    # --- HTTP ------------------------------------------------------------------------------

    def _request(self, call: _Call[K, M], batch: list[K]) -> tuple[int, Any]:
        """(status, JSON) of a 2xx or of a single id's 404; raises _UnavailableError or _RejectedError."""
        path = f"/{call.kind}/" + ",".join(quote(str(k), safe="+") for k in batch)
        c = self.config
        outcomes = metrics.ENRICH_REQUESTS
        attempt = 0
        while True:
            left = call.deadline - self._clock()
            if left <= 0:
                self._count("deadline_exceeded")
                outcomes.labels(call.kind, "deadline").inc()
                raise _UnavailableError("deadline")
            if not self._breaker.allow():
                self._count("short_circuited")
                outcomes.labels(call.kind, "short_circuited").inc()
                raise _UnavailableError("breaker open")
            self._count("requests")
            started = time.perf_counter()
            try:
                status, body = self._attempt(path, single=len(batch) == 1, timeout_s=min(c.timeout_s, left))
            except _UnavailableError:
                metrics.ENRICH_SECONDS.labels(call.kind).observe(time.perf_counter() - started)
                outcomes.labels(call.kind, "failed").inc()
                self._count("request_failures")
                self._breaker.failure()
                if attempt >= c.retries:
                    raise
                attempt += 1
                self._count("retries")
                delay = equal_jitter(attempt, c.backoff_base_s, c.backoff_max_s, self._rng)
                self._sleep(max(0.0, min(delay, call.deadline - self._clock())))
                continue
            except _RejectedError:
                metrics.ENRICH_SECONDS.labels(call.kind).observe(time.perf_counter() - started)
                outcomes.labels(call.kind, "rejected").inc()
                self._count("client_errors")
                self._breaker.success()  # it answered: the API is up, whatever it thinks of the request
                raise
            metrics.ENRICH_SECONDS.labels(call.kind).observe(time.perf_counter() - started)
            outcomes.labels(call.kind, "not_found" if status == 404 else "ok").inc()
            self._breaker.success()
            return status, body

    def _attempt(self, path: str, single: bool, timeout_s: float) -> tuple[int, Any]:
        try:
            resp = self._http.get(path, timeout=timeout_s)
        except httpx.HTTPError as e:  # timeouts, refused connections, protocol errors
            raise _UnavailableError(type(e).__name__) from e
        except Exception as e:  # e.g. httpx.InvalidURL: whatever it is, it must not reach the stream
            log.warning("metadata request %s failed: %r", path[:80], e)
            raise _UnavailableError(type(e).__name__) from e
        status = resp.status_code
        if status >= 500 or status == 429:
            raise _UnavailableError(f"HTTP {status}")
        if status == 404 and single and _looks_like_api_error(resp):
            return status, None
        if status >= 300:
            # A 404 from a router (wrong base URL), 401/403, 405, 400 for the batch...: the request is wrong.
            raise _RejectedError(status)
        try:
            return status, resp.json()
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError both are
            self._count("malformed_answers")
            raise _UnavailableError("unreadable body") from e

    # --- records ---------------------------------------------------------------------------

    def _parse(self, call: _Call[K, M], k: K, rec: dict[str, Any]) -> tuple[M | None, bool]:
        """The record checked against the schema, with blank fields kept from the last good value; and
        whether it kept to the schema."""
        parsed = parse_record(call.kind, k, rec)
        if parsed.violations:
            self._schema_violations(call.kind, parsed.violations, parsed.unexpected)
        if parsed.meta is None:
            self._count("records_skipped")
            return None, False
        if parsed.repaired:
            self._count("records_repaired")
        meta: M = parsed.meta  # type: ignore[assignment]  # parse_record builds the kind's model
        _, last = call.good.get(k)
        meta, kept = keep_last_good(meta, last)
        for name in kept:
            metrics.ENRICH_KEPT.labels(call.kind, name).inc()
        self._count("last_good_kept", len(kept))
        call.good.put(k, meta)
        return meta, not parsed.violations

    def _schema_violations(self, kind: Kind, violations: dict[str, str], unexpected: list[str]) -> None:
        """Count each violated field; log it at most once per `schema_log_interval_s` (with the count since)."""
        now = self._clock()
        due: list[str] = []
        with self._lock:
            self.counters["schema_errors"] += len(violations)
            for name, why in sorted(violations.items()):
                metrics.ENRICH_SCHEMA_ERRORS.labels(kind, name).inc()
                slot = (kind, name)
                self._unlogged[slot] = self._unlogged.get(slot, 0) + 1
                if now >= self._next_schema_log.get(slot, float("-inf")):
                    self._next_schema_log[slot] = now + self.config.schema_log_interval_s
                    n = self._unlogged.pop(slot)
                    due.append(f"{name} {why} ({n} record{'s' if n != 1 else ''} since the last report)")
        if due:
            log.warning(
                "metadata API %s records break the schema: %s; unexpected fields: %s "
                "(known values are kept; next report per field in %.0f s)",
                kind,
                ", ".join(due),
                ", ".join(unexpected) or "none",
                self.config.schema_log_interval_s,
            )

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n


@dataclass
class _Call(Generic[K, M]):
    """What one lookup carries through its batches: the kind, where answers go, and its deadline."""

    kind: Kind
    cache: TtlCache[K, M | None]
    good: TtlCache[K, M]
    key: Callable[[Any], K | None]
    out: Lookup[K, M]
    deadline: float
    splits: int = 32
    """Batch splits left after 400s: ~16 isolate one bad id in 200; the cap bounds a rejecting API."""


def _breaker_changed(old: BreakerState, new: BreakerState) -> None:
    """Breaker listener: the gauge, the transition counter and a log line for each change."""
    metrics.ENRICH_BREAKER.set(_BREAKER_GAUGE[new])
    metrics.ENRICH_BREAKER_CHANGES.labels(new).inc()
    if new == "open" and old == "closed":
        log.warning("metadata API failing: breaker open (lookups answer from the cache)")
    elif new == "closed":
        log.info("metadata API answers again: breaker closed")


def _looks_like_api_error(resp: httpx.Response) -> bool:
    """A 404 from the API about the id (JSON with an error), not from a wrong base URL's router."""
    try:
        body = resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(body, dict) and "error" in body
