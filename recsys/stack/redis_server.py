"""Redis for the online store: the one at RECSYS_REDIS_URL when it answers, else a local redis-server."""

from __future__ import annotations

from urllib.parse import urlparse

import redis

from recsys.settings import StackSettings
from recsys.stack import prereqs
from recsys.stack.base import ComponentStatus, State
from recsys.stack.errors import StackError
from recsys.stack.process import ManagedProcess

_LOOPBACK = ("127.0.0.1", "localhost")


def ping(url: str, timeout_s: float = 1.0) -> bool:
    """True when Redis at `url` answers PING."""
    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


class RedisServer:
    """Starts `redis-server` bound to 127.0.0.1 only when nothing answers at the configured URL."""

    name = "redis"

    def __init__(self, stack: StackSettings) -> None:
        self.stack = stack
        self.url = stack.redis_url
        self.home = stack.var / "redis"
        self.proc = ManagedProcess("redis", stack.var / "run", stack.var / "log")

    @property
    def address(self) -> str:
        """The URL without its password."""
        parsed = urlparse(self.url)
        return f"{parsed.scheme}://{parsed.hostname}:{parsed.port or 6379}{parsed.path}"

    def status(self) -> ComponentStatus:
        """Healthy when PING answers."""
        pid = self.proc.pid()
        if ping(self.url):
            detail = (
                "external" if self.stack.redis_external else ("" if pid else "running, not started by us")
            )
            return ComponentStatus(self.name, self.address, State.HEALTHY, pid is not None, pid, detail)
        state = State.UNHEALTHY if pid or self.stack.redis_external else State.STOPPED
        return ComponentStatus(self.name, self.address, state, pid is not None, pid)

    def up(self) -> ComponentStatus:
        """Use the configured Redis if it answers; otherwise start one on the URL's loopback port."""
        if ping(self.url):
            return self.status()
        if self.stack.redis_external:
            raise StackError(f"external Redis at {self.address} does not answer PING")
        parsed = urlparse(self.url)
        if parsed.hostname not in _LOOPBACK:
            raise StackError(
                f"Redis at {self.address} does not answer and is not on loopback; "
                "start it or set RECSYS_REDIS_URL to a loopback address"
            )
        if not self.proc.running():
            tools = prereqs.require([prereqs.REDIS], self.stack.auto_install)
            self.home.mkdir(parents=True, exist_ok=True)
            argv = [
                tools["redis-server"],
                "--bind",
                "127.0.0.1",
                "--port",
                str(parsed.port or 6379),
                "--dir",
                str(self.home),
                "--daemonize",
                "no",
                # Append-only file fsynced every second (RPO <= 1 s): a crash or kill -9 restarts
                # with the data. No RDB snapshots: the AOF (with its RDB preamble) is the one copy.
                # Whatever a lost AOF cannot bring back, the marker check rebuilds from the offline store.
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--protected-mode",
                "yes",
            ]
            if parsed.password:
                argv += ["--requirepass", parsed.password]
            self.proc.start(argv)
        self.proc.wait_healthy(lambda: ping(self.url), self.stack.start_timeout_s, "PING")
        return self.status()

    def down(self) -> bool:
        """Stop redis-server if we started it."""
        return self.proc.stop()
