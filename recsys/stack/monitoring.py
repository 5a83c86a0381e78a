"""Prometheus and Alertmanager from Debian packages, started on request with configs generated under var/.

Every address in the generated configs comes from settings: the ports of Prometheus and
Alertmanager from `StackSettings`, the recommendation API (scrape target and alert sink) from
`RECSYS_SERVING_HOST/PORT`, the ingestion and monitor metrics endpoints from
`RECSYS_INGEST_METRICS_HOST/PORT` and `RECSYS_MONITOR_METRICS_HOST/PORT`.
Alertmanager authenticates to the API's admin route with the admin token, which it reads from a
0600 credentials file under var/ (`credentials_file`), never from the YAML. The file is rewritten
on every `up` and re-read by Alertmanager on each notification, so a rotated token needs no restart;
a changed config is applied to a running daemon with POST /-/reload.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from recsys.settings import StackSettings
from recsys.stack import prereqs
from recsys.stack.base import ComponentStatus, State
from recsys.stack.errors import StackError
from recsys.stack.process import ManagedProcess

if TYPE_CHECKING:
    from ingestion.settings import IngestSettings
    from monitoring.settings import MonitorSettings
    from serving.settings import ServingSettings

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules"
"""Alert rules shared with docker-compose; the local config points at them."""

API_JOB = "recsys-api"
"""Scrape job of the recommendation API (the alert rules and the Grafana dashboard name it)."""
INGEST_JOB = "recsys-ingest"
"""Scrape job of the ingestion workers' metrics endpoint."""
MONITOR_JOB = "recsys-monitor"
"""Scrape job of the monitor's online metrics job and drift/skew exporter."""
SCRAPE_JOBS = (API_JOB, INGEST_JOB, MONITOR_JOB)
"""The platform's scrape jobs, shared with deploy/prometheus/prometheus.yml."""
ALERTS_PATH = "/admin/alerts"
"""The API's alert sink (an admin route: bearer token required)."""
TOKEN_FILE = "admin_token"
"""Name of the credentials file, under var/alertmanager/, holding the admin token."""

_ANY_INTERFACE = {"", "0.0.0.0", "::", "[::]"}


def client_address(host: str, port: int) -> str:
    """`host:port` a local client dials for a service bound to `host` (a wildcard bind is reached on loopback)."""
    name = "127.0.0.1" if host.strip() in _ANY_INTERFACE else host.strip()
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"  # an IPv6 literal
    return f"{name}:{port}"


@dataclass(frozen=True)
class PlatformEndpoints:
    """Where local monitoring finds the platform: the API (scrape target, alert sink), metrics endpoints, the token."""

    api: str
    """`host:port` of the recommendation API."""
    ingest_metrics: str | None
    """`host:port` of the ingestion metrics endpoint; None when disabled (RECSYS_INGEST_METRICS_PORT=0)."""
    admin_token: str = field(repr=False)
    """Bearer token of the API's admin routes (written to the credentials file, never to a config)."""
    monitor_metrics: str | None = None
    """`host:port` of the monitor's metrics endpoint; None when disabled (RECSYS_MONITOR_METRICS_PORT=0)."""

    @classmethod
    def from_settings(
        cls,
        serving: ServingSettings | None = None,
        ingest: IngestSettings | None = None,
        monitor: MonitorSettings | None = None,
    ) -> PlatformEndpoints:
        """From the serving, ingestion and monitor settings (the process-wide ones unless given)."""
        from ingestion.settings import get_ingest_settings
        from monitoring.settings import get_monitor_settings
        from serving.settings import get_serving_settings

        srv = serving or get_serving_settings()
        ing = ingest or get_ingest_settings()
        mon = monitor or get_monitor_settings()
        return cls(
            api=client_address(srv.host, srv.port),
            ingest_metrics=client_address(ing.metrics_host, ing.metrics_port) if ing.metrics_port else None,
            # The token the API accepts: RECSYS_ADMIN_TOKEN, or the dev token in local mode on loopback.
            admin_token=srv.check_admin_token().get_secret_value(),
            monitor_metrics=client_address(mon.metrics_host, mon.metrics_port) if mon.metrics_port else None,
        )

    @property
    def scrape_targets(self) -> dict[str, str]:
        """Scrape job -> target."""
        optional = {INGEST_JOB: self.ingest_metrics, MONITOR_JOB: self.monitor_metrics}
        return {API_JOB: self.api, **{job: t for job, t in optional.items() if t is not None}}

    @property
    def alerts_url(self) -> str:
        """The webhook Alertmanager posts to."""
        return f"http://{self.api}{ALERTS_PATH}"


def http_ok(url: str, timeout_s: float = 1.0) -> bool:
    """True when GET `url` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


class _HttpDaemon(ABC):
    """A daemon whose health is an HTTP readiness endpoint; subclasses name the program and write its config."""

    name = ""
    port = 0
    program = prereqs.PROMETHEUS

    def __init__(self, stack: StackSettings, endpoints: PlatformEndpoints | None = None) -> None:
        self.stack = stack
        self.home = stack.var / self.name
        self.config_file = self.home / f"{self.name}.yml"
        self.proc = ManagedProcess(self.name, stack.var / "run", stack.var / "log")
        # Resolved on first use: `stack status` must not need valid serving settings.
        self._endpoints = endpoints

    @property
    def endpoints(self) -> PlatformEndpoints:
        """The platform addresses the config points at (from settings unless given)."""
        if self._endpoints is None:
            self._endpoints = PlatformEndpoints.from_settings()
        return self._endpoints

    @abstractmethod
    def render(self) -> str:
        """The config file's text."""

    @abstractmethod
    def _argv(self, binary: str) -> list[str]:
        """Full command line."""

    def write_config(self) -> bool:
        """Write the config (and what it references) under var/; True when the file changed."""
        self.home.mkdir(parents=True, exist_ok=True)
        text = self.render()
        if self.config_file.exists() and self.config_file.read_text() == text:
            return False
        self.config_file.write_text(text)
        return True

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
        """Write the config from settings, start unless ready; a running daemon reloads a changed config."""
        changed = self.write_config()
        if self._ready():
            if changed:
                self._reload()
            return self.status()
        if not self.proc.running():
            tools = prereqs.require([self.program], self.stack.auto_install)
            self.proc.start(self._argv(tools[self.program.command]), cwd=self.home)
        self.proc.wait_healthy(self._ready, self.stack.start_timeout_s, "/-/ready")
        return self.status()

    def _reload(self) -> None:
        request = urllib.request.Request(f"{self.address}/-/reload", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                resp.read()
        except (urllib.error.URLError, OSError) as e:
            raise StackError(f"{self.name} on {self.address} did not reload {self.config_file}: {e}") from e

    def down(self) -> bool:
        """Stop it if we started it."""
        return self.proc.stop()


class Prometheus(_HttpDaemon):
    """Scrapes the platform's metrics and evaluates the alert rules in deploy/prometheus/rules."""

    name = "prometheus"
    program = prereqs.PROMETHEUS

    def __init__(self, stack: StackSettings, endpoints: PlatformEndpoints | None = None) -> None:
        self.port = stack.prometheus_port
        super().__init__(stack, endpoints)

    def render(self) -> str:
        """prometheus.yml for these settings."""
        return local_prometheus_config(self.stack, self.endpoints)

    def _argv(self, binary: str) -> list[str]:
        return [
            binary,
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.home / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
        ]


class Alertmanager(_HttpDaemon):
    """Routes firing alerts to the platform's alert sink, authenticated with the admin token."""

    name = "alertmanager"
    program = prereqs.ALERTMANAGER

    def __init__(self, stack: StackSettings, endpoints: PlatformEndpoints | None = None) -> None:
        self.port = stack.alertmanager_port
        super().__init__(stack, endpoints)

    @property
    def token_file(self) -> Path:
        """The 0600 credentials file Alertmanager reads the bearer token from."""
        return self.home / TOKEN_FILE

    def render(self) -> str:
        """alertmanager.yml for these settings (it names the token file, never the token)."""
        return local_alertmanager_config(self.stack, self.endpoints, self.token_file)

    def write_config(self) -> bool:
        """Write the token file (0600) and the config; True when the config changed."""
        self.home.mkdir(parents=True, exist_ok=True)
        write_secret(self.token_file, self.endpoints.admin_token)
        return super().write_config()

    def _argv(self, binary: str) -> list[str]:
        return [
            binary,
            f"--config.file={self.config_file}",
            f"--storage.path={self.home / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            # A single local instance: no gossip port to bind or conflict on.
            "--cluster.listen-address=",
        ]


def write_secret(path: Path, secret: str) -> None:
    """Replace `path` with `secret`, readable by the owner only from the first byte on (0600, atomic)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret)
    os.replace(tmp, path)


def local_prometheus_config(stack: StackSettings, endpoints: PlatformEndpoints | None = None) -> str:
    """prometheus.yml for the local stack: the platform's targets from settings, the shared rules, the local Alertmanager."""
    if not RULES_DIR.exists():
        raise StackError(f"{RULES_DIR} is missing: run the stack manager from a checkout of the repository")
    targets = (endpoints or PlatformEndpoints.from_settings()).scrape_targets
    jobs = "".join(
        f"  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
        for job, target in targets.items()
    )
    return (
        "global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\n"
        f"rule_files:\n  - {RULES_DIR}/*.yml\n"
        "alerting:\n  alertmanagers:\n"
        f"    - static_configs:\n        - targets: ['127.0.0.1:{stack.alertmanager_port}']\n"
        f"scrape_configs:\n  - job_name: prometheus\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{stack.prometheus_port}']\n{jobs}"
    )


def local_alertmanager_config(stack: StackSettings, endpoints: PlatformEndpoints, token_file: Path) -> str:
    """alertmanager.yml for the local stack: every alert to the API's sink with the bearer token from `token_file`."""
    return (
        "route:\n  receiver: recsys-api\n  group_by: [alertname, job]\n"
        f"  group_wait: {round(stack.alertmanager_group_wait_s * 1000)}ms\n  group_interval: 30s\n  repeat_interval: 1h\n"
        "receivers:\n  - name: recsys-api\n    webhook_configs:\n"
        f"      - url: {endpoints.alerts_url}\n        send_resolved: true\n"
        "        http_config:\n          authorization:\n            type: Bearer\n"
        f"            credentials_file: {token_file}\n"
    )
