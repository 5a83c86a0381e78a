"""Background platform processes the demo (and benchmarks) start: the metadata API and the recommender.

Addresses come from settings unless given: the metadata API listens on `RECSYS_SIM_API_HOST`/
`RECSYS_SIM_API_PORT`, the recommendation API on `RECSYS_SERVING_HOST`/`RECSYS_SERVING_PORT`.
Health is probed on loopback when a service binds every interface.
"""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from recsys.stack.errors import StackError
from recsys.stack.monitoring import client_address
from recsys.stack.process import ManagedProcess, tail


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError):
        return False


class ServiceProcess:
    """A `recsys ...` command run detached with a pid file and a log, healthy when `health_url` answers 200."""

    def __init__(self, name: str, var: Path, argv: list[str], base_url: str, health_path: str) -> None:
        self.proc = ManagedProcess(name, var / "run", var / "log")
        self.argv = [sys.executable, "-m", "recsys.cli", *argv]
        self.base_url = base_url
        self.health_url = f"{base_url}{health_path}"

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


def metadata_api(var: Path, host: str | None = None, port: int | None = None) -> ServiceProcess:
    """The simulator's metadata API (`recsys simulate api`) on host:port, default RECSYS_SIM_API_HOST/PORT."""
    from simulator.settings import get_sim_settings

    s = get_sim_settings()
    host = s.api_host if host is None else host
    port = s.api_port if port is None else port
    return ServiceProcess(
        "metadata-api",
        var,
        ["simulate", "api", "--host", host, "--port", str(port)],
        f"http://{client_address(host, port)}",
        "/healthz",
    )


def wait_for(check: object, timeout_s: float, what: str) -> None:
    """Poll a zero-argument callable until truthy, else raise StackError naming `what`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.2)
    raise StackError(f"timed out waiting for {what}")


def recommender_api(
    var: Path,
    host: str | None = None,
    port: int | None = None,
    workers: int = 2,
    until_ready: bool = True,
) -> ServiceProcess:
    """The recommendation API (`recsys serve`) on host:port, default RECSYS_SERVING_HOST/PORT.

    Healthy when /readyz answers (models and features loaded), or /healthz (alive, fallback
    lists only) when `until_ready` is False.
    """
    from serving.settings import get_serving_settings

    s = get_serving_settings()
    host = s.host if host is None else host
    port = s.port if port is None else port
    return ServiceProcess(
        "recommender-api",
        var,
        ["serve", "--host", host, "--port", str(port), "--workers", str(workers)],
        f"http://{client_address(host, port)}",
        "/readyz" if until_ready else "/healthz",
    )
