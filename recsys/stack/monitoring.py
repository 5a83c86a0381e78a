"""Prometheus and Alertmanager from Debian packages, started on request with configs generated under var/."""

from __future__ import annotations

import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from pathlib import Path

from recsys.settings import StackSettings
from recsys.stack import prereqs
from recsys.stack.base import ComponentStatus, State
from recsys.stack.errors import StackError
from recsys.stack.process import ManagedProcess

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules"
"""Alert rules shared with docker-compose; the local config points at them."""

SCRAPE_TARGETS = {"recsys-api": "127.0.0.1:8082", "recsys-ingest": "127.0.0.1:9101"}
"""Local scrape targets: the serving API and the ingestion workers' metrics port."""


def http_ok(url: str, timeout_s: float = 1.0) -> bool:
    """True when GET `url` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


class _HttpDaemon(ABC):
    """A daemon whose health is an HTTP readiness endpoint; subclasses name the binary and its arguments."""

    name = ""
    port = 0

    def __init__(self, stack: StackSettings) -> None:
        self.stack = stack
        self.home = stack.var / self.name
        self.proc = ManagedProcess(self.name, stack.var / "run", stack.var / "log")

    @abstractmethod
    def _binary(self) -> str:
        """Path of the program (installing it when missing)."""

    @abstractmethod
    def _argv(self, binary: str) -> list[str]:
        """Full command line."""

    @property
    def address(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def _ready(self) -> bool:
        return http_ok(f"{self.address}/-/ready")

    def status(self) -> ComponentStatus:
        """Healthy when /-/ready answers."""
        pid = self.proc.pid()
        if self._ready():
            return ComponentStatus(self.name, self.address, State.HEALTHY, pid is not None, pid)
        return ComponentStatus(
            self.name, self.address, State.UNHEALTHY if pid else State.STOPPED, pid is not None, pid
        )

    def up(self) -> ComponentStatus:
        """Start unless already ready."""
        if self._ready():
            return self.status()
        if not self.proc.running():
            program = prereqs.PROMETHEUS if self.name == "prometheus" else prereqs.ALERTMANAGER
            tools = prereqs.require([program], self.stack.auto_install)
            self.home.mkdir(parents=True, exist_ok=True)
            self.proc.start(self._argv(tools[program.command]), cwd=self.home)
        self.proc.wait_healthy(self._ready, self.stack.start_timeout_s, "/-/ready")
        return self.status()

    def down(self) -> bool:
        """Stop it if we started it."""
        return self.proc.stop()


class Prometheus(_HttpDaemon):
    """Scrapes the platform's metrics and evaluates the alert rules in deploy/prometheus/rules."""

    name = "prometheus"

    def __init__(self, stack: StackSettings) -> None:
        self.port = stack.prometheus_port
        super().__init__(stack)

    def _binary(self) -> str:
        return "prometheus"

    def _argv(self, binary: str) -> list[str]:
        config = self.home / "prometheus.yml"
        config.write_text(local_prometheus_config(self.stack))
        return [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.home / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
        ]


class Alertmanager(_HttpDaemon):
    """Routes firing alerts to the platform's alert sink."""

    name = "alertmanager"

    def __init__(self, stack: StackSettings) -> None:
        self.port = stack.alertmanager_port
        super().__init__(stack)

    def _binary(self) -> str:
        return "alertmanager"

    def _argv(self, binary: str) -> list[str]:
        config = self.home / "alertmanager.yml"
        config.write_text(
            "route:\n  receiver: recsys\n  group_wait: 5s\n  group_interval: 30s\n  repeat_interval: 1h\n"
            "receivers:\n  - name: recsys\n    webhook_configs:\n"
            "      - url: http://127.0.0.1:8082/admin/alerts\n        send_resolved: true\n"
        )
        return [
            binary,
            f"--config.file={config}",
            f"--storage.path={self.home / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            # A single local instance: no gossip port to bind or conflict on.
            "--cluster.listen-address=",
        ]


def local_prometheus_config(stack: StackSettings) -> str:
    """prometheus.yml for the local stack: loopback targets, the shared rule files, the local Alertmanager."""
    if not RULES_DIR.exists():
        raise StackError(f"{RULES_DIR} is missing: run the stack manager from a checkout of the repository")
    jobs = "".join(
        f"  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
        for job, target in SCRAPE_TARGETS.items()
    )
    return (
        "global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\n"
        f"rule_files:\n  - {RULES_DIR}/*.yml\n"
        "alerting:\n  alertmanagers:\n"
        f"    - static_configs:\n        - targets: ['127.0.0.1:{stack.alertmanager_port}']\n"
        f"scrape_configs:\n  - job_name: prometheus\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{stack.prometheus_port}']\n{jobs}"
    )
