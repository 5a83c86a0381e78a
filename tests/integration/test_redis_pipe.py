"""serving.redis_pipe against a real redis-server: replies in order, timeouts, errors, a stopped and a killed server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import hiredis
import pytest
import redis
import uvloop

from serving.redis_pipe import RedisPipe, encode_command
from tests.integration.conftest import private_redis_server

FIELDS = [b"a", b"b", b"missing"]


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A private redis-server (this test stops and kills it), with 300 hashes in db 3."""
    with private_redis_server() as (proc, url0):
        url = url0.removesuffix("/0") + "/3"
        client = redis.Redis.from_url(url)
        for i in range(300):
            client.hset(f"user:{i}", mapping={"a": f"a{i}", "b": str(i)})
        client.set("plain", "x")
        yield proc, url


Runner = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(params=["asyncio", "uvloop"])
def run_on(request: pytest.FixtureRequest) -> Runner:
    """Both event loops: uvicorn serves on uvloop, whose transports differ from asyncio's."""
    runner: Runner = asyncio.run if request.param == "asyncio" else uvloop.run
    return runner


def test_encode_command_is_resp() -> None:
    assert encode_command(b"HMGET", b"k", b"f") == b"*3\r\n$5\r\nHMGET\r\n$1\r\nk\r\n$1\r\nf\r\n"


def test_concurrent_reads_get_their_own_replies_from_the_selected_db(
    server: tuple[subprocess.Popen[bytes], str], run_on: Runner
) -> None:
    _, url = server

    async def run() -> list[list[bytes | None]]:
        pipe = RedisPipe(url)
        try:
            return await asyncio.gather(*(pipe.hmget(f"user:{i}".encode(), FIELDS) for i in range(300)))
        finally:
            await pipe.aclose()

    replies = run_on(run())
    assert replies == [[f"a{i}".encode(), str(i).encode(), None] for i in range(300)]


def test_error_reply_raises_for_its_request_only(
    server: tuple[subprocess.Popen[bytes], str], run_on: Runner
) -> None:
    _, url = server

    async def run() -> tuple[list[bytes | None], list[bytes | None]]:
        pipe = RedisPipe(url)
        try:
            first = asyncio.ensure_future(pipe.hmget(b"user:1", FIELDS))
            with pytest.raises(hiredis.ReplyError, match="WRONGTYPE"):
                await pipe.hmget(b"plain", FIELDS)
            return await first, await pipe.hmget(b"user:2", FIELDS)
        finally:
            await pipe.aclose()

    assert run_on(run()) == ([b"a1", b"1", None], [b"a2", b"2", None])


def test_stopped_server_times_out_and_late_replies_go_nowhere(
    server: tuple[subprocess.Popen[bytes], str], run_on: Runner
) -> None:
    proc, url = server

    async def run() -> list[list[bytes | None]]:
        pipe = RedisPipe(url)
        try:
            assert await pipe.hmget(b"user:0", FIELDS) == [b"a0", b"0", None]
            os.kill(proc.pid, signal.SIGSTOP)
            for i in range(5):  # each gives up; their replies arrive after SIGCONT
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.05):
                        await pipe.hmget(f"user:{100 + i}".encode(), FIELDS)
            os.kill(proc.pid, signal.SIGCONT)
            return [await pipe.hmget(f"user:{i}".encode(), FIELDS) for i in (7, 8)]
        finally:
            await pipe.aclose()

    assert run_on(run()) == [[b"a7", b"7", None], [b"a8", b"8", None]]


def test_killed_server_fails_waiting_requests_and_refuses_new_ones(
    server: tuple[subprocess.Popen[bytes], str], run_on: Runner
) -> None:
    proc, url = server

    async def run() -> None:
        pipe = RedisPipe(url)
        try:
            assert await pipe.hmget(b"user:0", FIELDS) == [b"a0", b"0", None]
            os.kill(proc.pid, signal.SIGSTOP)
            waiting = asyncio.ensure_future(pipe.hmget(b"user:1", FIELDS))
            await asyncio.sleep(0.05)
            proc.kill()
            proc.wait()
            with pytest.raises(ConnectionError):
                async with asyncio.timeout(5):
                    await waiting
            with pytest.raises(OSError):  # ConnectionRefusedError: a fresh connect is tried and fails
                await pipe.hmget(b"user:2", FIELDS)
        finally:
            await pipe.aclose()

    run_on(run())


def test_a_new_event_loop_gets_a_new_connection(server: tuple[subprocess.Popen[bytes], str]) -> None:
    _, url = server
    pipe = RedisPipe(url)
    for i in range(3):  # each asyncio.run is a new loop; the old loop's socket is unusable
        assert asyncio.run(pipe.hmget(f"user:{i}".encode(), FIELDS)) == [
            f"a{i}".encode(),
            str(i).encode(),
            None,
        ]


def test_only_redis_urls_plain_or_tls() -> None:
    with pytest.raises(ValueError, match="redis://"):
        RedisPipe("http://127.0.0.1:6379/0")
    pipe = RedisPipe("redis://:s%40cret@10.0.0.1:6380/2")
    assert (pipe.host, pipe.port, pipe.db, pipe.password, pipe.tls) == ("10.0.0.1", 6380, 2, "s@cret", None)
    # TLS against a real server: tests/integration/test_redis_tls_auth.py.
    assert RedisPipe("rediss://127.0.0.1:6379/0").tls is not None
