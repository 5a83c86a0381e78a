"""Closed loop against stub recommenders: answers, timeouts, refused connections and 5xx logged as the course does."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from events import ParseError, RecommendationEvent, WatchEvent, format_line, parse_line
from simulator.clock import SimClock
from simulator.recommend import RecommendClient, parse_answer
from simulator.run import drive
from simulator.settings import SimSettings
from simulator.sinks import ListSink
from simulator.traffic import Traffic
from simulator.truth import Truth
from simulator.world import World, generate_world

START_NS = 1_767_225_600 * 10**9  # 2026-01-01
Reply = Callable[[int], tuple[int, str]]


@contextmanager
def stub(reply: Reply, delay_s: float = 0.0) -> Iterator[str]:
    """A tiny recommendation service on a free port: reply(user_id) -> (status, body)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real service

        def do_GET(self) -> None:
            if delay_s:
                time.sleep(delay_s)
            status, body = reply(int(self.path.rsplit("/", 1)[1]))
            data = body.encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client gave up (timeout test)
                pass

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # the default backlog of 5 drops connects under concurrent calls

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(1_000, 200, seed=41)


def _fetch(url: str, users: list[int]) -> list[RecommendationEvent]:
    client = RecommendClient(url, timeout_ms=600, concurrency=8)
    try:
        outcomes = client.fetch(users)
    finally:
        client.close()
    assert len(client.answer_ms) == len(users)  # every call's answer time, for the demo's summary
    assert sorted(round(ms) for ms in client.answer_ms) == sorted(o.response_ms for o in outcomes)
    events = []
    for u, o in zip(users, outcomes, strict=True):
        event = RecommendationEvent(START_NS, u, client.server, o.status, o.items, o.response_ms, o.error, 6)
        parsed = parse_line(format_line(event))
        assert isinstance(parsed, RecommendationEvent)
        events.append(parsed)
    return events


def test_answers_are_logged_as_lists() -> None:
    with stub(lambda u: (200, "a+1999,b+2000, c+2001\n")) as url:
        (e,) = _fetch(url, [7])
    assert e.status == 200 and e.results == ("a+1999", "b+2000", "c+2001") and e.error is None
    assert 0 <= e.response_ms < 600


def test_timeout_is_logged_like_the_course_after_600_ms() -> None:
    with stub(lambda u: (200, "a+1999"), delay_s=1.5) as url:
        t0 = time.perf_counter()
        events = _fetch(url, [1, 2, 3, 4])
        assert time.perf_counter() - t0 < 1.4  # concurrent calls, each cut at 600 ms
    port = url.rsplit(":", 1)[1]
    for e in events:
        assert e.status == 0 and e.results == ()
        assert (
            e.error
            == f"java.util.concurrent.TimeoutException: Request timeout to 127.0.0.1/127.0.0.1:{port} after 600 ms"
        )
        assert 600 <= e.response_ms < 1000


def test_connection_refused_is_logged_like_the_course() -> None:
    port = closed_port()
    (e,) = _fetch(f"http://127.0.0.1:{port}", [5])
    assert e.status == 0 and e.error == f"Connection refused: 127.0.0.1/127.0.0.1:{port}"
    assert e.response_ms < 600


def test_server_errors_keep_status_and_one_line_body() -> None:
    with stub(lambda u: (503, "model not loaded,\nretry later")) as url:
        (e,) = _fetch(url, [5])
    assert e.status == 503 and e.error == "model not loaded, retry later"


def test_broken_answers_keep_only_valid_ids() -> None:
    assert parse_answer("a+1, b c ,x/y, d=1,,e+2") == ("a+1", "e+2")
    assert len(parse_answer(",".join(f"m{i}" for i in range(30)))) == 20


def _closed_run(world: World, url: str, hours: float = 1.0) -> tuple[list[str], Traffic]:
    settings = SimSettings(serving_url=url, sessions_per_hour=600, rec_request_share=1.0, preroll_hours=0)
    client = RecommendClient(url, 600, 16)
    traffic = Traffic(world, settings, "closed", START_NS, recommender=client)
    try:
        lines = [line for b in traffic.batches(START_NS + int(hours * 3600e9)) for line in b.lines]
    finally:
        client.close()
    return lines, traffic


def test_users_often_watch_good_recommendations(world: World) -> None:
    best = {
        u: ",".join(ids) for u, ids in Truth(world, SimSettings()).oracle_ranking(range(1, 1001), 20).items()
    }
    with stub(lambda u: (200, best[u])) as url:  # answers made in advance: the stub must be fast
        lines, traffic = _closed_run(world, url)
    events = [parse_line(line) for line in lines]
    assert not any(isinstance(e, ParseError) for e in events)
    recs = [e for e in events if isinstance(e, RecommendationEvent)]
    ok = [e for e in recs if e.status == 200]
    assert len(ok) > 0.9 * len(recs) > 0  # a few may time out when the machine is busy: that is logged too
    assert all(len(e.results) == 20 for e in ok)
    assert traffic.stats.accepted > 0.3 * traffic.stats.requests
    pending: dict[int, RecommendationEvent] = {}
    taken: list[bool] = []
    for e in events:  # the first movie watched after each answer: from the list?
        if isinstance(e, RecommendationEvent):
            pending[e.user_id] = e
        elif isinstance(e, WatchEvent) and e.user_id in pending and e.minute == 0:
            taken.append(e.movie_id in pending.pop(e.user_id).results)
    assert np.mean(taken) > 0.3


def test_users_ignore_bad_recommendations_more(world: World) -> None:
    truth = Truth(world, SimSettings())
    order = np.argsort(truth.affinity(np.arange(1, 1001)), axis=1)[:, :20]
    worst = {u: ",".join(truth.movie_ids[m] for m in row) for u, row in enumerate(order.tolist(), 1)}
    with stub(lambda u: (200, worst[u])) as url:
        _, traffic = _closed_run(world, url)
    assert traffic.stats.accepted < 0.1 * traffic.stats.requests


def test_a_dead_recommender_is_logged_and_users_still_watch(world: World) -> None:
    lines, traffic = _closed_run(world, f"http://127.0.0.1:{closed_port()}", hours=0.5)
    recs = [e for e in map(parse_line, lines) if isinstance(e, RecommendationEvent)]
    assert recs and all(
        e.status == 0 and re.fullmatch(r"Connection refused: .+/.+:\d+", e.error or "") for e in recs
    )
    assert traffic.stats.requests_failed == traffic.stats.requests
    assert traffic.stats.by_kind["watch"] > 0 and traffic.stats.accepted == 0


def test_paced_calls_are_made_when_each_session_starts(world: World) -> None:
    arrivals: list[float] = []

    def reply(user: int) -> tuple[int, str]:
        arrivals.append(time.monotonic())
        return 200, world.catalog.slug[0]

    speed = 60.0  # a simulated minute per wall second
    settings = SimSettings(sessions_per_hour=3_000, rec_request_share=1.0, preroll_hours=0, speed=speed)
    with stub(reply) as url:
        client = RecommendClient(url, 600, 16)
        clock = SimClock(START_NS, speed)
        traffic = Traffic(world, settings, "closed", START_NS, recommender=client, clock=clock)
        sink = ListSink()
        t0 = time.monotonic()
        drive(traffic, [sink], until_ns=START_NS + 90 * 10**9, progress=False)
        client.close()
    recs = [e for e in map(parse_line, sink.lines) if isinstance(e, RecommendationEvent)]
    due = sorted(t0 + (e.ts_ns - START_NS) / 1e9 / speed for e in recs)
    assert len(recs) == len(arrivals) > 20
    lateness = np.array(sorted(arrivals)) - np.array(due)
    assert lateness.min() > -0.05  # never called ahead of the session's time
    assert np.median(lateness) < 0.2
