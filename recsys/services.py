"""Background platform processes the demo (and benchmarks) start: the metadata API and the recommender."""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from recsys.stack.errors import StackError
from recsys.stack.process import ManagedProcess, tail


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError):
        return False


class ServiceProcess:
    """A `recsys ...` command run detached with a pid file and a log, healthy when `health_url` answers 200."""

    def __init__(self, name: str, var: Path, argv: list[str], health_url: str) -> None:
        self.proc = ManagedProcess(name, var / "run", var / "log")
        self.argv = [sys.executable, "-m", "recsys.cli", *argv]
        self.health_url = health_url

    def up(self, env: dict[str, str] | None = None, timeout_s: float = 60.0) -> None:
        """Start unless already healthy; wait for health."""
        if _healthy(self.health_url):
            return
        if not self.proc.running():
            self.proc.start(self.argv, env=env)
        self.proc.wait_healthy(lambda: _healthy(self.health_url), timeout_s, self.health_url)

    def down(self) -> bool:
        """Stop it if we started it."""
        return self.proc.stop()

    def log_tail(self) -> str:
        """Last lines of its log."""
        return tail(self.proc.log_file)


def metadata_api(var: Path, port: int = 8080) -> ServiceProcess:
    """The simulator's metadata API on 127.0.0.1:<port>."""
    return ServiceProcess(
        "metadata-api", var, ["simulate", "api", "--port", str(port)], f"http://127.0.0.1:{port}/healthz"
    )


def wait_for(check: object, timeout_s: float, what: str) -> None:
    """Poll a zero-argument callable until truthy, else raise StackError naming `what`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.2)
    raise StackError(f"timed out waiting for {what}")


def recommender_api(var: Path, port: int = 8082, workers: int = 2) -> ServiceProcess:
    """The recommendation API (`recsys serve`) on 127.0.0.1:<port>, healthy when ready (models and features loaded)."""
    return ServiceProcess(
        "recommender-api",
        var,
        ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        f"http://127.0.0.1:{port}/readyz",
    )
