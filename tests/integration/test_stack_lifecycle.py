"""`recsys stack up` twice is a no-op; `down` leaves no process; `status` shows every component.

Runs an isolated stack (own var dir and ports) so the session's shared stack is untouched.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from events.settings import KafkaSettings
from recsys.settings import StackSettings
from recsys.stack.base import State
from recsys.stack.kafka import KafkaBroker
from recsys.stack.manager import Stack
from recsys.stack.redis_server import RedisServer

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_up_twice_then_down_leaves_nothing(tmp_path: Path) -> None:
    kafka_port, controller, redis_port = _free_port(), _free_port(), _free_port()
    settings = StackSettings(
        var_dir=tmp_path / "var",
        redis_url=f"redis://127.0.0.1:{redis_port}/0",
        kafka_controller_port=controller,
    )
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{kafka_port}")
    stack = Stack(settings)
    stack.components["kafka"] = KafkaBroker(settings, kafka)
    stack.components["redis"] = RedisServer(settings)
    try:
        first = stack.up(["kafka", "redis"])
        assert all(s.state is State.HEALTHY and s.managed for s in first)
        pids = {s.name: s.pid for s in first}
        second = stack.up(["kafka", "redis"])
        assert {s.name: s.pid for s in second} == pids  # no second process
        rows = {s.name: s for s in stack.status()}
        assert set(rows) == {"kafka", "redis", "prometheus", "alertmanager"}
        assert rows["kafka"].address == f"127.0.0.1:{kafka_port}"
        assert rows["redis"].state is State.HEALTHY
        assert (tmp_path / "var" / "run" / "kafka.pid").exists()
        assert (tmp_path / "var" / "log" / "kafka.log").exists()
    finally:
        stopped = stack.down(["kafka", "redis"])
    assert set(stopped) == {"kafka", "redis"}
    assert not any(_alive(pid) for pid in pids.values() if pid)
    assert not _listening(kafka_port) and not _listening(redis_port) and not _listening(controller)
    assert all(s.state is State.STOPPED for s in stack.status(["kafka", "redis"]))
    assert stack.down(["kafka", "redis"]) == []


def test_status_command_lists_components(stack: object) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "recsys.cli", "stack", "status", "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert '"name": "kafka"' in out.stdout and '"state": "healthy"' in out.stdout
