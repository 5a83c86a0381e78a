"""Metadata API client: batched, cached, retried and circuit-broken lookups of movies and users.

The API (`GET {base}/movie/<id>[,<id>...]`, `GET {base}/user/<id>[,...]`) answers one record
for one id (404 when unknown) and a list for several, in which unknown ids are
`{"<id field>": ..., "error": "not found"}` entries. Fault injection adds latency, 5xx answers
and missing or renamed fields, so every step here is lenient and bounded:

- ids are deduplicated, checked locally (a malformed id would make the API reject the whole
  batch) and sent in batches of at most `max_batch`; a batch rejected with a 400 anyway is
  split in halves until the bad id is alone, so one bad id never spoils 199 good ones;
- answers are cached (found records for `cache_ttl_s`, not-found ids for `negative_ttl_s`);
- 5xx, 429, timeouts, connection errors and unreadable bodies are retried with exponential
  backoff and jitter; other 4xx are not;
- after `breaker_failures` consecutive failed requests the breaker opens: calls answer from
  the cache alone, at once, until `breaker_reset_s` has passed and one trial request succeeds;
- one lookup never spends more than `deadline_s` on the API, however many batches it needs;
- a record is parsed with the lenient `events.metadata` models; fields that fail validation are
  dropped (they stay None) and a record whose id is unusable is skipped and counted.

Nothing here raises on a bad answer: the stream must never stall on enrichment.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from events.metadata import MovieMeta, UserMeta

log = logging.getLogger(__name__)

K = TypeVar("K", int, str)
M = TypeVar("M", MovieMeta, UserMeta)
Kind = Literal["movie", "user"]
BreakerState = Literal["closed", "open", "half_open"]

_MOVIE_ID: Final = re.compile(r"[^\s,/=\x00-\x1f\x7f]{1,256}")
"""What the API accepts as a movie id: no white space, ',', '/', '=' or control characters."""
_MAX_USER_ID: Final = 2**63 - 1
_ID_FIELDS: Final[dict[Kind, tuple[str, ...]]] = {"movie": ("id", "movie_id"), "user": ("user_id", "id")}
"""Where a record's id may be, first choice first (the API keeps ids under their own names)."""


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
    cache_max_entries: int = Field(
        100_000, ge=0, description="Cache size per kind; least recently used go first."
    )
    breaker_failures: int = Field(5, ge=1, description="Consecutive failed requests that open the breaker.")
    breaker_reset_s: float = Field(15.0, ge=0, description="Open time before one trial request (half-open).")


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


class _TtlCache(Generic[K, M]):
    """LRU cache with per-entry expiry; a None value is a cached "not found"."""

    def __init__(self, max_entries: int, clock: Callable[[], float]) -> None:
        self._max = max_entries
        self._clock = clock
        self._data: OrderedDict[K, tuple[float, M | None]] = OrderedDict()

    def get(self, key: K) -> tuple[bool, M | None]:
        """(hit, value); expired entries are dropped and miss."""
        entry = self._data.get(key)
        if entry is None:
            return False, None
        if entry[0] <= self._clock():
            del self._data[key]
            return False, None
        self._data.move_to_end(key)
        return True, entry[1]

    def put(self, key: K, value: M | None, ttl_s: float) -> None:
        """Store a value (or a not-found marker) for `ttl_s` seconds."""
        if self._max == 0 or ttl_s <= 0:
            return
        self._data[key] = (self._clock() + ttl_s, value)
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class _Breaker:
    """Consecutive-failure circuit breaker with a single half-open trial."""

    def __init__(self, failures: int, reset_s: float, clock: Callable[[], float]) -> None:
        self._threshold = failures
        self._reset_s = reset_s
        self._clock = clock
        self._lock = threading.Lock()
        self.state: BreakerState = "closed"
        self.consecutive = 0
        self.opened_at = 0.0
        self.opens = 0
        self._trial_running = False

    def allow(self) -> bool:
        """Whether a request may go out now (claims the half-open trial when it is due)."""
        with self._lock:
            if self.state == "closed":
                return True
            if self.state == "open" and self._clock() - self.opened_at >= self._reset_s:
                self.state = "half_open"
            if self.state == "half_open" and not self._trial_running:
                self._trial_running = True
                return True
            return False

    def success(self) -> None:
        """A request got a usable answer: close."""
        with self._lock:
            if self.state != "closed":
                log.info("metadata API answers again: breaker closed")
            self.state, self.consecutive, self._trial_running = "closed", 0, False

    def failure(self) -> None:
        """A request failed (5xx, timeout, connection error, garbage): maybe open."""
        with self._lock:
            self.consecutive += 1
            self._trial_running = False
            if self.state == "half_open" or (self.state == "closed" and self.consecutive >= self._threshold):
                if self.state == "closed":
                    self.opens += 1
                    log.warning("metadata API failing (%d in a row): breaker open", self.consecutive)
                self.state, self.opened_at = "open", self._clock()


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
        self._lock = threading.Lock()  # guards the caches and the counters
        self._movies: _TtlCache[str, MovieMeta] = _TtlCache(c.cache_max_entries, clock)
        self._users: _TtlCache[int, UserMeta] = _TtlCache(c.cache_max_entries, clock)
        self._breaker = _Breaker(c.breaker_failures, c.breaker_reset_s, clock)
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
        return self._lookup("movie", MovieMeta, self._movies, ids, _movie_key)

    def lookup_users(self, ids: Iterable[int]) -> Lookup[int, UserMeta]:
        """Users by id, with what happened to the ids that were not found."""
        return self._lookup("user", UserMeta, self._users, ids, _user_key)

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
        model: type[M],
        cache: _TtlCache[K, M],
        ids: Iterable[Any],
        key: Callable[[Any], K | None],
    ) -> Lookup[K, M]:
        out: Lookup[K, M] = Lookup()
        wanted: list[K] = []
        seen: set[K] = set()
        with self._lock:
            for raw in ids:
                k = key(raw)
                if k is None:
                    self.counters["invalid_ids"] += 1
                    out.invalid.append(raw)
                    continue
                if k in seen:
                    continue
                seen.add(k)
                hit, value = cache.get(k)
                if not hit:
                    self.counters["cache_misses"] += 1
                    wanted.append(k)
                elif value is None:
                    self.counters["negative_cache_hits"] += 1
                    out.not_found.add(k)
                else:
                    self.counters["cache_hits"] += 1
                    out.found[k] = value
        if wanted:
            call = _Call(kind, model, cache, key, out, self._clock() + self.config.deadline_s)
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
        records = self._records(call, batch, body)
        if records is None:
            out.unavailable.update(batch)
            return
        wanted = set(batch)
        answered: set[K] = set()
        for k, rec in records:
            if k in answered or k not in wanted:
                continue
            answered.add(k)
            if _is_not_found(rec, call.kind):
                self._remember_missing(call, k)
                continue
            meta = self._parse(call.model, call.kind, k, rec)
            if meta is None:
                out.unavailable.add(k)
                continue
            with self._lock:
                call.cache.put(k, meta, self.config.cache_ttl_s)
                self.counters["found"] += 1
            out.found[k] = meta
        # Ids the answer did not mention are not "not found": not cached, asked again next time.
        out.unavailable.update(k for k in batch if k not in answered)

    def _remember_missing(self, call: _Call[K, M], k: K) -> None:
        with self._lock:
            call.cache.put(k, None, self.config.negative_ttl_s)
            self.counters["not_found"] += 1
        call.out.not_found.add(k)

    # --- HTTP ------------------------------------------------------------------------------

    def _request(self, call: _Call[K, M], batch: list[K]) -> tuple[int, Any]:
        """(status, JSON) of a 2xx or of a single id's 404; raises _UnavailableError or _RejectedError."""
        path = f"/{call.kind}/" + ",".join(quote(str(k), safe="+") for k in batch)
        c = self.config
        attempt = 0
        while True:
            left = call.deadline - self._clock()
            if left <= 0:
                self._count("deadline_exceeded")
                raise _UnavailableError("deadline")
            if not self._breaker.allow():
                self._count("short_circuited")
                raise _UnavailableError("breaker open")
            self._count("requests")
            try:
                status, body = self._attempt(path, single=len(batch) == 1, timeout_s=min(c.timeout_s, left))
            except _UnavailableError:
                self._count("request_failures")
                self._breaker.failure()
                if attempt >= c.retries:
                    raise
                attempt += 1
                self._count("retries")
                delay = min(c.backoff_max_s, c.backoff_base_s * 2 ** (attempt - 1))
                # Equal jitter: a floor under the delay, and clients that failed together spread out.
                delay = delay / 2 + self._rng.uniform(0, delay / 2)
                self._sleep(max(0.0, min(delay, call.deadline - self._clock())))
                continue
            except _RejectedError:
                self._count("client_errors")
                self._breaker.success()  # it answered: the API is up, whatever it thinks of the request
                raise
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

    # --- parsing ---------------------------------------------------------------------------

    def _records(self, call: _Call[K, M], batch: list[K], body: Any) -> list[tuple[K, dict[str, Any]]] | None:
        """(id, record) pairs from whichever shape the answer has; None (and counted) for garbage."""
        kind = call.kind
        items: list[Any]
        if isinstance(body, list):
            items = body
        elif isinstance(body, dict) and _record_id(body, kind) is None and _all_dicts(body.values()):
            # Keyed by id, {"<id>": {...}, ...}: the key names the record when the record does not.
            items = [
                v if _record_id(v, kind) is not None else {**v, _ID_FIELDS[kind][0]: k}
                for k, v in body.items()
            ]
        elif isinstance(body, dict):
            items = [body]  # one record
        else:
            items = []
        pairs: list[tuple[K, dict[str, Any]]] = []
        in_order = len(items) == len(batch)
        for i, rec in enumerate(items):
            if not isinstance(rec, dict):
                continue
            raw = _record_id(rec, kind)
            # No id at all: the API answers in request order, so the position names the record.
            k = call.key(raw) if raw is not None else (batch[i] if in_order else None)
            if k is not None:
                pairs.append((k, rec))
        if not pairs and body != []:
            self._count("malformed_answers")
            return None
        return pairs

    def _parse(self, model: type[M], kind: Kind, k: K, rec: dict[str, Any]) -> M | None:
        """The record as a model; fields that fail validation are dropped (None) instead of the record."""
        data = {**rec, _ID_FIELDS[kind][0]: k}
        try:
            return model.model_validate(data)
        except ValidationError as e:
            bad = {str(err["loc"][0]) for err in e.errors() if err["loc"]}
        try:
            meta = model.model_validate({f: v for f, v in data.items() if f not in bad})
        except ValidationError:
            self._count("records_skipped")
            return None
        self._count("records_repaired")
        return meta

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n


@dataclass
class _Call(Generic[K, M]):
    """What one lookup carries through its batches: the kind, where answers go, and its deadline."""

    kind: Kind
    model: type[M]
    cache: _TtlCache[K, M]
    key: Callable[[Any], K | None]
    out: Lookup[K, M]
    deadline: float
    splits: int = 32
    """Batch splits left after 400s: ~16 isolate one bad id in 200; the cap bounds a rejecting API."""


def _all_dicts(values: Iterable[Any]) -> bool:
    vals = list(values)
    return bool(vals) and all(isinstance(v, dict) for v in vals)


def _movie_key(raw: Any) -> str | None:
    """A movie id as the API accepts it, or None."""
    if isinstance(raw, str) and _MOVIE_ID.fullmatch(raw):
        return raw
    return None


def _user_key(raw: Any) -> int | None:
    """A user id as a non-negative int (from an int or a digit string), or None."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if 0 <= raw <= _MAX_USER_ID else None
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 19:
        value = int(raw)
        return value if value <= _MAX_USER_ID else None
    return None


def _record_id(rec: dict[str, Any], kind: Kind) -> Any:
    for name in _ID_FIELDS[kind]:
        if rec.get(name) is not None:
            return rec[name]
    return None


def _is_not_found(rec: dict[str, Any], kind: Kind) -> bool:
    """A per-id error entry (`{"id": ..., "error": "not found"}`) rather than a record."""
    if "error" not in rec:
        return False
    payload = set(rec) - {"error", "detail", "message", "status", *_ID_FIELDS[kind]}
    return not payload


def _looks_like_api_error(resp: httpx.Response) -> bool:
    """A 404 from the API about the id (JSON with an error), not from a wrong base URL's router."""
    try:
        body = resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(body, dict) and "error" in body
