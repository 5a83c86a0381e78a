"""MetadataClient against a real HTTP server on 127.0.0.1 that plays the metadata API and its faults."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import pytest
from pydantic import ValidationError

from events.metadata import MovieMeta, UserMeta
from ingestion.enrichment import EnrichmentConfig, MetadataClient
from tests.servers import app_in_thread

MOVIES = {f"movie+{i}+{1950 + i % 70}": i for i in range(600)}
N_USERS = 500


def movie_record(movie_id: str) -> dict[str, Any]:
    """A TMDB-like record, as the simulator serves it."""
    i = MOVIES[movie_id]
    return {
        "id": movie_id,
        "tmdb_id": 1000 + i,
        "imdb_id": f"tt{i:07d}",
        "title": f"Movie {i}",
        "genres": [{"id": 18, "name": "Drama"}, {"id": 35, "name": "Comedy"}],
        "overview": "...",
        "popularity": 1.5,
        "vote_average": 7.25,
        "vote_count": 100,
        "release_date": f"{1950 + i % 70}-01-01",
        "runtime": 90 + i % 60,
        "original_language": "en",
        "cost": 0.25,
    }


def user_record(user_id: int) -> dict[str, Any]:
    """A user record with self-description answers."""
    return {
        "user_id": user_id,
        "age": 20 + user_id % 50,
        "occupation": "writer",
        "gender": "F",
        "likes": "space operas",
        "dislikes": "musicals",
    }


@dataclass
class FakeApi:
    """What the server answers; tests change it between calls."""

    latency_s: float = 0.0
    fail_next: int = 0
    """Answer this many requests with 503 first."""
    force_status: int | None = None
    reject_ids: set[str] = field(default_factory=set)
    """Any request holding one of these ids gets a 400 (a server rule stricter than the client's)."""
    body: bytes | None = None
    """Answer every request with exactly these bytes (status 200)."""
    keyed: bool = False
    """Answer batches as a dict keyed by id instead of a list."""
    drop: set[str] = field(default_factory=set)
    rename: dict[str, str] = field(default_factory=dict)
    override: dict[str, Any] = field(default_factory=dict)
    requests: list[list[str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def shape(self, rec: dict[str, Any]) -> dict[str, Any]:
        rec = {self.rename.get(k, k): v for k, v in rec.items() if k not in self.drop}
        return {**rec, **self.override}

    def answer(self, path: str) -> tuple[int, bytes]:
        kind, _, raw = path.lstrip("/").partition("/")
        ids = [unquote(p) for p in raw.split(",")]
        with self.lock:
            self.requests.append(ids)
            failing = self.fail_next > 0
            self.fail_next -= 1 if failing else 0
        if self.latency_s:
            time.sleep(self.latency_s)
        if failing:
            return 503, b'{"error": "injected_fault", "detail": "try later"}'
        if self.force_status is not None:
            return self.force_status, b'{"error": "forced", "detail": "forced"}'
        if self.body is not None:
            return 200, self.body
        if len(ids) > 200 or self.reject_ids.intersection(ids):
            return 400, b'{"error": "malformed_id", "detail": "no"}'
        if kind == "movie":
            id_field = "id"
            found: list[tuple[Any, dict[str, Any] | None]] = [
                (m, movie_record(m) if m in MOVIES else None) for m in ids
            ]
        elif kind == "user":
            id_field = "user_id"
            found = [(int(u), user_record(int(u)) if 1 <= int(u) <= N_USERS else None) for u in ids]
        else:
            return 404, b'{"detail": "Not Found"}'
        if len(ids) == 1:
            rec = found[0][1]
            if rec is None:
                return 404, b'{"error": "not_found", "detail": "unknown"}'
            return 200, json.dumps(self.shape(rec)).encode()
        if self.keyed:
            keyed = {str(k): self.shape(r) if r else {"error": "not found"} for k, r in found}
            return 200, json.dumps(keyed).encode()
        items = [self.shape(r) if r else {id_field: k, "error": "not found"} for k, r in found]
        return 200, json.dumps(items).encode()


@pytest.fixture
def api() -> Iterator[tuple[FakeApi, str]]:
    """A fake metadata API on a free local port, and its base URL."""
    fake = FakeApi()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = fake.answer(self.path)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class FakeClock:
    """A monotonic clock the test moves by hand (for TTLs and cool-downs)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client(base: str, **knobs: Any) -> MetadataClient:
    """A client with fast defaults for tests; sleeps are real unless replaced."""
    cfg = {"retries": 0, "backoff_base_s": 0.01, "timeout_s": 2.0, **knobs}
    return MetadataClient(EnrichmentConfig(base_url=base, **cfg))


# --- batching and caching --------------------------------------------------------------------


def test_450_ids_go_out_in_3_batches(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    ids = list(MOVIES)[:450]
    with client(base) as c:
        got = c.get_movies(ids)
    assert sorted(len(r) for r in fake.requests) == [50, 200, 200]
    assert set(got) == set(ids)
    assert isinstance(got[ids[0]], MovieMeta)
    assert got[ids[0]].genres == ["Drama", "Comedy"]


def test_duplicates_are_asked_once(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    ids = list(MOVIES)[:3]
    with client(base) as c:
        assert set(c.get_movies(ids * 3)) == set(ids)
    assert fake.requests == [ids]


def test_cache_hit_avoids_a_request(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    ids = list(MOVIES)[:5]
    with client(base) as c:
        first = c.get_movies(ids)
        second = c.get_movies(ids)
        assert c.stats()["cache_hits"] == 5
    assert len(fake.requests) == 1
    assert first == second


def test_not_found_is_cached_for_a_shorter_time(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    clock = FakeClock()
    known = list(MOVIES)[:2]
    cfg = EnrichmentConfig(base_url=base, cache_ttl_s=100, negative_ttl_s=10)
    with MetadataClient(cfg, clock=clock) as c:
        result = c.lookup_movies([*known, "ghost+1999"])
        assert set(result.found) == set(known)
        assert result.not_found == {"ghost+1999"}
        assert c.lookup_movies([*known, "ghost+1999"]).not_found == {"ghost+1999"}
        assert len(fake.requests) == 1  # both answers came from the cache
        clock.now += 11  # the negative entry expires, the positive ones do not
        c.get_movies([*known, "ghost+1999"])
        assert fake.requests[-1] == ["ghost+1999"]
        clock.now += 100  # now the positive ones expire too
        c.get_movies(known)
        assert fake.requests[-1] == known


def test_single_unknown_id_404_is_not_found_not_a_failure(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    with client(base, retries=3, breaker_failures=1) as c:
        result = c.lookup_users([N_USERS + 1])
        assert result.not_found == {N_USERS + 1}
        assert c.breaker_state == "closed"
        assert c.stats()["request_failures"] == 0
    assert len(fake.requests) == 1


def test_cache_is_bounded_lru(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    a, b, c_ = list(MOVIES)[:3]
    with client(base, cache_max_entries=2) as c:
        c.get_movies([a])
        c.get_movies([b])
        c.get_movies([a])  # a is now the most recently used
        c.get_movies([c_])  # evicts b
        n = len(fake.requests)
        c.get_movies([a])
        assert len(fake.requests) == n
        c.get_movies([b])
        assert len(fake.requests) == n + 1
        assert c.stats()["movie_cache_entries"] == 2


# --- retries, 4xx, breaker, deadline ---------------------------------------------------------


def test_retries_succeed_after_transient_5xx_with_growing_jittered_backoff(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    fake.fail_next = 2
    sleeps: list[float] = []
    cfg = EnrichmentConfig(base_url=base, retries=3, backoff_base_s=0.1, backoff_max_s=1.0)
    with MetadataClient(cfg, sleep=sleeps.append) as c:
        got = c.get_users([1, 2, 3])
        assert set(got) == {1, 2, 3}
        assert isinstance(got[1], UserMeta)
        assert got[1].likes == "space operas"
        stats = c.stats()
    assert len(fake.requests) == 3
    assert stats["retries"] == 2
    assert stats["request_failures"] == 2
    assert stats["breaker_state"] == "closed"
    # Equal jitter: the n-th delay lies in [d/2, d] for d = base * 2**(n-1).
    assert 0.05 <= sleeps[0] <= 0.1
    assert 0.1 <= sleeps[1] <= 0.2


def test_retries_give_up_and_report_unavailable(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    fake.fail_next = 10
    with client(base, retries=2, breaker_failures=10) as c:
        result = c.lookup_movies(list(MOVIES)[:4])
    assert result.found == {}
    assert result.unavailable == set(list(MOVIES)[:4])
    assert len(fake.requests) == 3


@pytest.mark.parametrize("status", [400, 403, 422])
def test_4xx_is_not_retried(api: tuple[FakeApi, str], status: int) -> None:
    fake, base = api
    fake.force_status = status
    with client(base, retries=5) as c:
        result = c.lookup_movies([next(iter(MOVIES))])
        assert c.stats()["retries"] == 0
        assert c.breaker_state == "closed"
    assert len(fake.requests) == 1
    assert result.found == {}


def test_4xx_on_a_batch_is_not_split_unless_400(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    fake.force_status = 403
    with client(base, retries=5) as c:
        result = c.lookup_movies(list(MOVIES)[:50])
    assert len(fake.requests) == 1
    assert len(result.unavailable) == 50


def test_a_400_batch_is_split_until_the_bad_id_is_alone(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    ids = list(MOVIES)[:200]
    fake.reject_ids = {ids[137]}
    with client(base) as c:
        result = c.lookup_movies(ids)
    assert set(result.found) == set(ids) - {ids[137]}
    assert result.not_found == {ids[137]}
    assert len(fake.requests) <= 1 + 2 * 8  # two requests per halving, log2(200) < 8


def test_a_rejecting_api_costs_a_bounded_number_of_requests(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    fake.force_status = 400
    with client(base) as c:
        result = c.lookup_movies(list(MOVIES)[:200])
    assert result.found == {}
    assert len(fake.requests) <= 1 + 2 * 32


def test_breaker_opens_and_calls_return_at_once_from_the_cache(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    cached = list(MOVIES)[:3]
    others = list(MOVIES)[3:]
    timeout = 0.3
    with client(base, timeout_s=timeout, breaker_failures=2, breaker_reset_s=0.5) as c:
        c.get_movies(cached)
        fake.latency_s = 2.0  # the API hangs: every request times out
        for _ in range(2):
            t0 = time.perf_counter()
            assert c.get_movies([others.pop()]) == {}
            assert time.perf_counter() - t0 < timeout + 0.25
        assert c.breaker_state == "open"
        n = len(fake.requests)
        for _ in range(20):
            t0 = time.perf_counter()
            result = c.lookup_movies([*cached, others.pop()])
            assert time.perf_counter() - t0 < timeout  # no request goes out while open
            assert set(result.found) == set(cached)
            assert len(result.unavailable) == 1
        assert len(fake.requests) == n
        assert c.stats()["short_circuited"] == 20
        # After the cool-down, one trial request goes out; it succeeds and closes the breaker.
        fake.latency_s = 0.0
        time.sleep(0.55)
        assert len(c.get_movies([others[0]])) == 1
        assert c.stats()["breaker_state"] == "closed"
        assert c.stats()["breaker_opens"] == 1


def test_failed_half_open_trial_reopens(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    clock = FakeClock()
    fake.force_status = 503
    cfg = EnrichmentConfig(base_url=base, retries=0, breaker_failures=2, breaker_reset_s=10)
    with MetadataClient(cfg, clock=clock) as c:
        c.get_users([1])
        c.get_users([2])
        assert c.breaker_state == "open"
        clock.now += 10
        c.get_users([3, 4])  # the trial request fails
        assert c.stats()["breaker_state"] == "open"
        assert len(fake.requests) == 3
        clock.now += 5
        c.get_users([5])  # still cooling down: nothing goes out
        assert len(fake.requests) == 3


def test_dead_api_never_raises_and_fails_fast() -> None:
    # Port 9 (discard) on loopback: nothing listens, connections are refused at once.
    with MetadataClient(EnrichmentConfig(base_url="http://127.0.0.1:9", retries=1, breaker_failures=3)) as c:
        t0 = time.perf_counter()
        for i in range(10):
            assert c.get_users([i + 1]) == {}
        assert time.perf_counter() - t0 < 5
        stats = c.stats()
    assert stats["breaker_state"] == "open"
    assert stats["requests"] == 3  # two for the first user (one retry), one more, then open
    assert stats["short_circuited"] == 9  # the second user's retry, then users 3..10


def test_deadline_bounds_a_lookup_over_many_batches(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    fake.latency_s = 1.0
    ids = list(MOVIES)  # three batches
    with client(base, timeout_s=0.3, deadline_s=0.5, retries=5, breaker_failures=100) as c:
        t0 = time.perf_counter()
        result = c.lookup_movies(ids)
        elapsed = time.perf_counter() - t0
        assert c.counters["deadline_exceeded"] >= 1
    assert elapsed < 0.9
    assert result.unavailable == set(ids)


# --- lenient parsing -------------------------------------------------------------------------


def test_missing_and_renamed_fields_stay_none(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    fake.drop = {"cost", "age"}
    fake.rename = {"vote_average": "voteAverage", "occupation": "job"}
    ids = list(MOVIES)[:3]
    with client(base) as c:
        movies = c.get_movies(ids)
        users = c.get_users([1, 2])
    assert set(movies) == set(ids)
    assert all(m.cost is None and m.vote_average is None for m in movies.values())
    assert movies[ids[0]].title == "Movie 0"
    assert all(u.age is None and u.occupation is None and u.gender == "F" for u in users.values())


def test_badly_typed_fields_are_dropped_not_the_record(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    fake.override = {"runtime": "long", "vote_count": {"n": 1}, "age": "old"}
    with client(base) as c:
        movies = c.get_movies(list(MOVIES)[:2])
        users = c.get_users([7])
        assert c.stats()["records_repaired"] == 3
    assert len(movies) == 2
    assert all(m.runtime is None and m.vote_count is None and m.cost == 0.25 for m in movies.values())
    assert users[7].age is None and users[7].gender == "F"


def metric(name: str, **labels: str) -> float:
    """A sample of the process's Prometheus registry (0 before the first increment)."""
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


RENAMED = {"cost": "price", "genres": "genre_list", "age": "years"}
"""The schema change of issue 10 (defect 4)."""


def test_schema_violations_are_counted_per_field_and_logged_once_per_interval(
    api: tuple[FakeApi, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, base = api
    fake.rename = dict(RENAMED)
    clock = FakeClock()
    errors = "recsys_enrichment_schema_errors_total"
    before = {
        f: metric(errors, kind=k, field=f)
        for k, f in [("movie", "cost"), ("movie", "genres"), ("user", "age")]
    }
    ids = list(MOVIES)
    cfg = EnrichmentConfig(base_url=base, retries=0, schema_log_interval_s=60)
    with caplog.at_level("WARNING", logger="ingestion.enrichment"), MetadataClient(cfg, clock=clock) as c:
        movies = c.get_movies(ids[:150])
        users = c.get_users(list(range(1, 41)))
        c.get_movies(ids[150:300])  # within the interval: counted, not logged again
        assert len(caplog.records) == 2, [r.getMessage() for r in caplog.records]
        clock.now += 60
        c.get_movies(ids[300:310])
        assert c.stats()["schema_errors"] == 2 * 310 + 40
    assert metric(errors, kind="movie", field="cost") - before["cost"] == 310
    assert metric(errors, kind="movie", field="genres") - before["genres"] == 310
    assert metric(errors, kind="user", field="age") - before["age"] == 40
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert "cost missing (1 record since" in messages[0] and "genre_list, price" in messages[0]
    assert "age missing (1 record since" in messages[1] and "years" in messages[1]
    assert "cost missing (300 records since the last report)" in messages[2]  # 299 unlogged + this one
    # The records are kept (other fields are fine); the renamed fields are unknown, not invented.
    assert len(movies) == 150 and all(m.cost is None and m.genres == [] for m in movies.values())
    assert len(users) == 40 and all(u.age is None and u.gender == "F" for u in users.values())


def test_a_renamed_or_null_field_never_blanks_a_known_value(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    clock = FakeClock()
    ids = list(MOVIES)[:4]
    kept = "recsys_enrichment_last_good_kept_total"
    before = metric(kept, kind="movie", field="cost")
    cfg = EnrichmentConfig(base_url=base, cache_ttl_s=10, retries=0)
    with MetadataClient(cfg, clock=clock) as c:
        good = c.get_movies(ids)
        assert c.get_users([3])[3].age == 23
        fake.rename = dict(RENAMED)
        clock.now += 11  # the cache expired: the API is asked again and answers renamed fields
        again = c.get_movies(ids)
        user = c.get_users([3])[3]
        assert len(fake.requests) == 4
        assert all(again[m].cost == good[m].cost == 0.25 for m in ids)
        assert all(again[m].genres == good[m].genres == ["Drama", "Comedy"] for m in ids)
        assert user.age == 23 and user.gender == "F"
        assert c.stats()["last_good_kept"] == 4 * 2 + 1
        # An explicit null is no better than a missing field...
        fake.rename, fake.override = {}, {"cost": None, "title": "New title"}
        clock.now += 11
        latest = c.get_movies(ids)
        assert all(latest[m].cost == 0.25 and latest[m].title == "New title" for m in ids)
        # ...but a new good value replaces the old one.
        fake.override = {"cost": 0.5}
        clock.now += 11
        assert all(m.cost == 0.5 for m in c.get_movies(ids).values())
    assert metric(kept, kind="movie", field="cost") - before == 8


def test_requests_cache_breaker_and_latency_are_prometheus_metrics(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    clock = FakeClock()
    requests = "recsys_enrichment_requests_total"
    lookups = "recsys_enrichment_cache_lookups_total"
    latency = "recsys_enrichment_request_seconds_count"
    ok, failed = metric(requests, kind="user", outcome="ok"), metric(requests, kind="user", outcome="failed")
    short = metric(requests, kind="user", outcome="short_circuited")
    hits, misses = metric(lookups, kind="user", result="hit"), metric(lookups, kind="user", result="miss")
    timed = metric(latency, kind="user")
    cfg = EnrichmentConfig(base_url=base, retries=0, breaker_failures=2, breaker_reset_s=10)
    with MetadataClient(cfg, clock=clock) as c:
        c.get_users([1, 2])
        c.get_users([1, 2])
        fake.force_status = 503
        c.get_users([5])
        assert metric("recsys_enrichment_breaker_state") == 0
        c.get_users([6])
        assert metric("recsys_enrichment_breaker_state") == 2  # open
        c.get_users([7])
        fake.force_status = None
        clock.now += 10
        c.get_users([8])
        assert metric("recsys_enrichment_breaker_state") == 0  # the trial succeeded
    assert metric(requests, kind="user", outcome="ok") - ok == 2
    assert metric(requests, kind="user", outcome="failed") - failed == 2
    assert metric(requests, kind="user", outcome="short_circuited") - short == 1
    assert metric(lookups, kind="user", result="hit") - hits == 2
    assert metric(lookups, kind="user", result="miss") - misses == 6
    assert metric(latency, kind="user") - timed == 4


def test_answers_keyed_by_id_are_understood(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    fake.keyed = True
    with client(base) as c:
        result = c.lookup_users([1, 2, N_USERS + 5])
    assert set(result.found) == {1, 2}
    assert result.not_found == {N_USERS + 5}


def test_records_without_ids_are_matched_by_position(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    fake.drop = {"user_id"}
    with client(base) as c:
        got = c.get_users([3, 4])
    assert {k: v.user_id for k, v in got.items()} == {3: 3, 4: 4}
    assert got[4].age == 24


@pytest.mark.parametrize(
    "body",
    [
        b"<html>oops</html>",
        b"",
        b"null",
        b"42",
        b'"text"',
        b"[1, 2, 3]",
        b'{"a": 1}',
        b'[{"id": "someone+else+2000", "title": "x"}]',
        b'[{"user_id": "not a number"}]',
        b'{"error": "boom"}',
        b"\xff\xfe\x00garbage",
    ],
)
def test_never_raises_on_garbage(api: tuple[FakeApi, str], body: bytes) -> None:
    fake, base = api
    fake.body = body
    ids = list(MOVIES)[:2]
    with client(base, retries=1) as c:
        movies = c.lookup_movies(ids)
        users = c.lookup_users([1, 2])
    assert movies.found == {} and users.found == {}
    assert movies.unavailable | movies.not_found == set(ids)
    assert users.unavailable | users.not_found == {1, 2}


def test_malformed_ids_are_never_sent(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    good = list(MOVIES)[:2]
    with client(base) as c:
        movies = c.lookup_movies([*good, "two words", "a,b", "x/y", "k=v", "", "tab\there"])
        users = c.lookup_users([1, -1, "12", "abc", True, 2**70])  # type: ignore[list-item]
    assert set(movies.found) == set(good)
    assert len(movies.invalid) == 6
    assert set(users.found) == {1, 12}
    assert len(users.invalid) == 4
    sent = {i for r in fake.requests for i in r}
    assert sent == {*good, "1", "12"}


def test_slugs_with_punctuation_survive_the_url(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    odd = "monsters_+inc.+2001"
    MOVIES[odd] = 9999
    try:
        with client(base) as c:
            got = c.get_movies([odd, "spider-man+3+2007"])
    finally:
        del MOVIES[odd]
    assert set(got) == {odd}
    assert fake.requests == [[odd, "spider-man+3+2007"]]


# --- configuration ---------------------------------------------------------------------------


def test_every_knob_is_documented_and_unknown_keys_are_refused() -> None:
    for name, info in EnrichmentConfig.model_fields.items():
        assert info.description, name
    assert EnrichmentConfig().max_batch == 200
    with pytest.raises(ValidationError):
        EnrichmentConfig(timeout=3)  # type: ignore[call-arg]


# --- the real simulator API ------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    """The simulator's metadata API (a small world) under uvicorn on a free port, with faults on."""
    from simulator.api import create_app
    from simulator.settings import SimSettings
    from simulator.store import read_public, save_world
    from simulator.world import generate_world

    var = tmp_path_factory.mktemp("simvar")
    save_world(generate_world(300, 80, seed=7), var / "sim")
    movie_ids = read_public(var / "sim")[2].column("id").to_pylist()
    settings = SimSettings(
        var_dir=var, api_error_rate=0.3, api_rename_fields={"vote_average": "rating"}, seed=7
    )
    with app_in_thread(create_app(settings)) as url:
        yield url, movie_ids


def test_against_the_simulator_api_with_faults(sim_api: tuple[str, list[str]]) -> None:
    base, movie_ids = sim_api
    cfg = EnrichmentConfig(base_url=base, retries=6, backoff_base_s=0.01, breaker_failures=50)
    with MetadataClient(cfg) as c:
        movies = c.lookup_movies([*movie_ids, "no+such+movie+1900"])
        users = c.lookup_users([1, 2, 300, 301, 10**9])
        single = c.lookup_users([10**9 + 1])
        stats = c.stats()
    assert set(movies.found) == set(movie_ids)  # 80 ids: one request (plus retries of injected 5xx)
    assert movies.not_found == {"no+such+movie+1900"}
    some = next(iter(movies.found.values()))
    assert some.vote_average is None  # renamed by the API: left None, the record kept
    assert some.cost is not None and some.genres and some.year is not None
    assert set(users.found) == {1, 2, 300}
    assert users.not_found == {301, 10**9}
    assert single.not_found == {10**9 + 1}  # a single unknown id: 404
    assert stats["malformed_answers"] == 0 and stats["records_skipped"] == 0
