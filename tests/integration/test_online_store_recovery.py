"""Redis crashes under the online store: kill -9 under load, and a restart that lost every key.

Both end with the same key count as a store rebuilt from the offline store, with no manual
step: the local stack's Redis persists an append-only file (fsync every second), and the
ingestion worker rebuilds the store when the marker says Redis lost it. The figures (RPO as
keys missing right after the restart, RTO as seconds until the count is back) are printed
for docs/ingestion.md.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis

from events import format_line
from events.kafka import ensure_topics, make_producer
from events.types import WatchEvent
from feature_repo import online_marker
from ingestion.feast_bridge import open_feature_store
from ingestion.online import FeastOnlineWriter
from ingestion.rebuild import rebuild
from ingestion.settings import IngestSettings
from ingestion.worker import IngestWorker
from recsys.settings import StackSettings
from recsys.stack.redis_server import RedisServer
from tests.integration.conftest import StackInfo, free_port

pytestmark = pytest.mark.integration
MIN_NS = 60 * 10**9


def _produce(topic: str, users: range, start_ns: int, minutes: int = 3) -> None:
    producer = make_producer()
    for u in users:
        for m in range(minutes):
            line = format_line(
                WatchEvent(start_ns + (u % 50) * MIN_NS + m * MIN_NS, u, f"movie+{u % 7}+2000", m)
            )
            producer.produce(topic, line.encode(), key=str(u).encode())
    assert producer.flush(30) == 0


def _reference_keys(var: Path, tmp_path: Path) -> int:
    """Key count of a store rebuilt from scratch from the same offline store (another Redis)."""
    ref = RedisServer(
        StackSettings(var_dir=tmp_path / "ref-var", redis_url=f"redis://127.0.0.1:{free_port()}/0")
    )
    ref.up()
    try:
        client = redis.Redis.from_url(ref.url)
        rebuild(open_feature_store(var, ref.url), client)
        return int(client.dbsize())
    finally:
        ref.down()


def _wait_keys(client: redis.Redis, want: int, timeout_s: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        try:
            if int(client.dbsize()) >= want:
                return time.monotonic() - t0
        except redis.RedisError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"key count not back to {want} within {timeout_s} s: {client.dbsize()}")


def test_kill_9_under_load_then_restart_and_a_restart_without_data(
    stack: StackInfo, own_redis: RedisServer, tmp_path: Path
) -> None:
    topic = f"movielog-test-{uuid.uuid4().hex[:8]}"
    ensure_topics({topic: 1})
    var = tmp_path / "var"
    client = redis.Redis.from_url(own_redis.url, socket_timeout=2)
    settings = IngestSettings(
        RECSYS_VAR_DIR=var, topic=topic, group_id=f"g-{uuid.uuid4().hex[:6]}", batch_max_messages=200,
        batch_max_seconds=0.2, metrics_port=0, movie_job=False, online_check_s=1.0,
    )  # type: ignore[call-arg]  # fmt: skip
    store = open_feature_store(var, own_redis.url)
    worker = IngestWorker(settings, online=FeastOnlineWriter(store, client))
    t0 = time.time_ns() - 3 * 3600 * 10**9
    _produce(topic, range(0, 300), t0)
    stats = worker.run(idle_exit_s=2, max_seconds=60)
    assert stats.landed == 900 and online_marker.check(client).verdict == "ok"

    # 1. kill -9 while the worker pushes a steady stream of new users.
    runner = threading.Thread(target=lambda: worker.run(idle_exit_s=4, max_seconds=90))
    runner.start()
    for k in range(10):
        _produce(topic, range(300 + 40 * k, 340 + 40 * k), t0)
        if k == 4:
            pid = own_redis.proc.pid()
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            time.sleep(1.0)
            own_redis.up()  # what a supervisor (systemd, `restart: unless-stopped`) does
            after_restart = int(client.dbsize())
        time.sleep(0.3)
    runner.join(120)
    assert not runner.is_alive()
    want = _reference_keys(var, tmp_path)
    assert int(client.dbsize()) == want and worker.pending_push_count() == 0
    assert after_restart > 0, "the append-only file brought the keys back"
    print(f"kill -9 under load: {after_restart} keys right after the restart, {want} after the run "
          f"(= a rebuild from the offline store), {worker.stats.rebuilds} rebuilds")  # fmt: skip

    # 2. Redis comes back with nothing (its append-only file lost): the next worker run rebuilds it.
    pid = own_redis.proc.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    shutil.rmtree(own_redis.home)
    own_redis.up()
    assert int(client.dbsize()) == 0 and online_marker.check(client).verdict == "missing"
    started = time.monotonic()
    runner = threading.Thread(target=lambda: worker.run(idle_exit_s=2, max_seconds=60))
    runner.start()
    rto = _wait_keys(client, want, 60)
    runner.join(90)
    assert int(client.dbsize()) == want and online_marker.check(client).verdict == "ok"
    assert worker.stats.rebuilds >= 2
    print(f"restart without data: {want} keys rebuilt by the worker {rto:.1f} s after it started "
          f"({time.monotonic() - started:.1f} s run)")  # fmt: skip
