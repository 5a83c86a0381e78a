"""Integration fixtures: the real Kafka broker and Redis, started through the project's stack manager.

If a component cannot start, the fixture raises and every test that needs it errors loudly;
nothing is skipped. Components this session started are stopped at the end; ones that were
already running (e.g. after `recsys stack up`) are left as they were.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from events.kafka import delete_topics, ensure_topics, make_admin
from events.settings import get_kafka_settings
from recsys.settings import StackSettings, get_settings
from recsys.stack.base import State
from recsys.stack.manager import CORE, Stack
from recsys.stack.redis_server import RedisServer


@dataclass(frozen=True)
class StackInfo:
    """Addresses of the running services."""

    kafka_bootstrap: str
    redis_url: str


TEST_TOPIC_PREFIXES = ("test-", "faults-", "movielog-test-", "cold-")
"""Topics the tests create under fresh names; the session deletes the ones it made."""


def _topics() -> set[str]:
    return set(make_admin().list_topics(timeout=10).topics)


def _delete_topics_made_since(before: set[str]) -> None:
    """Delete the test topics created since `before`: left on the broker they slow every later run
    (a soak collapsed in its first minute with 65 such topics on the local broker)."""
    made = sorted(t for t in _topics() - before if t.startswith(TEST_TOPIC_PREFIXES))
    for name, error in delete_topics(made).items():  # a clean-up failure must not fail the session: say it
        print(f"could not delete test topic {name}: {error}")


@pytest.fixture(scope="session")
def stack() -> Iterator[StackInfo]:
    """Kafka and Redis, healthy, for the whole session; the test topics it made are deleted at the end."""
    manager = Stack()
    before = {s.name: s.state for s in manager.status(list(CORE))}
    manager.up(list(CORE))
    topics_before = _topics()
    yield StackInfo(get_kafka_settings().bootstrap_servers, get_settings().redis_url)
    _delete_topics_made_since(topics_before)
    started_here = [name for name, state in before.items() if state is not State.HEALTHY]
    if started_here:
        manager.down(started_here)


@pytest.fixture
def topic(stack: StackInfo) -> str:
    """A fresh single-partition topic, so tests never see each other's messages."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    ensure_topics({name: 1})
    return name


def wait_until(check: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.5) -> Any:
    """Poll `check` until it returns something truthy and return that; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own, started by the stack manager (its persistence settings), on a free port."""
    server = RedisServer(
        StackSettings(var_dir=tmp_path / "redis-var", redis_url=f"redis://127.0.0.1:{free_port()}/0")
    )
    server.up()
    yield server
    server.down()


@contextmanager
def private_redis_server() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A redis-server of one test alone (free to kill or SIGSTOP it), no persistence; yields it and its URL (db 0)."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is installed by `make prereqs`"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL)  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()  # SIGKILL ends a stopped server too
            proc.wait()
