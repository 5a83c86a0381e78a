"""The risk study's incident drill: the online store's Redis is killed under the running platform, and recovered.

On the risk benchmark's private stack (its Kafka, its Redis, its recommendation API), after the
feedback-loop days: the local Prometheus and Alertmanager of `recsys.stack.monitoring` start on
the benchmark's ports and load deploy/prometheus/rules; a load thread asks the API for warm users'
lists; the stack's redis-server is killed with SIGKILL (the fault); the script polls Prometheus's
alert API (detection: the rule's `activeAt`, then `firing`) and reads `recsys.alerts` (the
notification the API's alert sink forwarded from Alertmanager); then it applies the runbook's
first mitigation for ApiFallbackSurge, `recsys stack up --only redis` (the AOF brings the data
back), and waits for model answers again (recovery) and for the resolved notification.

Every timestamp is wall-clock UTC; durations are from the injection or the recovery action.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

FAST_ALERTS = frozenset({"ApiFallbackSurge", "ApiErrorSurge"})
"""The fast critical rules a dead online store must trigger (deploy/prometheus/rules/availability.yml)."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class DrillRecord:
    """The drill's timeline and what it saw."""

    fault: str = "SIGKILL of the online store's redis-server (the private stack's, under the live API)"
    baseline_at: str = ""
    """Prometheus saw the load and the API answered from the model."""
    injected_at: str = ""
    pending_at: str | None = None
    """The rule's `activeAt` as Prometheus reports it (its condition first true)."""
    firing_at: str | None = None
    """First poll that saw the rule firing in Prometheus."""
    alert_at: str | None = None
    """The firing notification read back from `recsys.alerts`."""
    alertname: str | None = None
    alert_labels: dict[str, str] = field(default_factory=dict)
    mitigation: str = "recsys stack up --only redis (the runbook's first mitigation; AOF restores the data)"
    mitigated_at: str | None = None
    recovered_at: str | None = None
    """First model answer after the mitigation (the breaker closed, features read again)."""
    resolved_at: str | None = None
    """The resolved notification read back from `recsys.alerts`."""
    seconds: dict[str, float | None] = field(default_factory=dict)
    answers_during_fault: dict[str, int] = field(default_factory=dict)
    answers: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


class _Load:
    """GET /recommend for warm users at about `rate` requests a second in a thread; answers counted by path."""

    def __init__(self, api: str, users: list[int], rate: float = 10.0) -> None:
        self.api, self.users, self.pause = api, users, 1.0 / rate
        self.answers: dict[str, int] = {}
        self.last_model_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="risk-drill-load", daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.api, timeout=5) as client:
            i = 0
            while not self._stop.is_set():
                user = self.users[i % len(self.users)]
                i += 1
                try:
                    r = client.get(f"/recommend/{user}")
                    key = (
                        r.headers.get("X-Recommendation-Path", "?")
                        if r.status_code == 200
                        else str(r.status_code)
                    )
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                self.answers[key] = self.answers.get(key, 0) + 1
                if key == "model":
                    self.last_model_at = time.monotonic()
                self._stop.wait(self.pause)

    @contextmanager
    def running(self) -> Iterator[_Load]:
        """Load for the duration of the block."""
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(10)


class _AlertReader:
    """Reads `recsys.alerts` from its end at creation on."""

    def __init__(self) -> None:
        from confluent_kafka import TopicPartition

        from events.kafka import ensure_topics, make_consumer
        from events.topics import ALERTS

        ensure_topics()
        self.consumer = make_consumer(f"risk-drill-{os.getpid()}")
        partitions = self.consumer.list_topics(ALERTS, timeout=10).topics[ALERTS].partitions
        self.consumer.assign(
            [
                TopicPartition(
                    ALERTS, p, self.consumer.get_watermark_offsets(TopicPartition(ALERTS, p), timeout=10)[1]
                )
                for p in partitions
            ]
        )

    def poll(self, names: frozenset[str], status: str, timeout_s: float) -> dict[str, Any] | None:
        """The next alert named in `names` with `status` read within `timeout_s`, else None."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = self.consumer.poll(min(0.5, max(0.01, deadline - time.monotonic())))
            if msg is None or msg.error():
                continue
            alert = json.loads(msg.value() or b"{}")
            if alert.get("labels", {}).get("alertname") in names and alert.get("status") == status:
                return alert  # type: ignore[no-any-return]
        return None

    def close(self) -> None:
        """Leave the topic."""
        self.consumer.close()


def _prometheus_alerts(base: str) -> list[dict[str, Any]]:
    try:
        body = httpx.get(f"{base}/api/v1/alerts", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return []
    return [
        a
        for a in body.get("data", {}).get("alerts", [])
        if a.get("labels", {}).get("alertname") in FAST_ALERTS
    ]


def _query(base: str, promql: str) -> float | None:
    try:
        result = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=5).json()["data"][
            "result"
        ]
    except (httpx.HTTPError, ValueError, KeyError):
        return None
    return float(result[0]["value"][1]) if result else None


def _wait(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{what} not within {timeout_s:g} s")


def run_drill(
    var: Path,
    serving_port: int,
    prometheus_port: int,
    alertmanager_port: int,
    users: list[int],
    log: Callable[[str], None] = print,
    alert_timeout_s: float = 180.0,
    resolve_timeout_s: float = 240.0,
) -> DrillRecord:
    """Kill the private stack's Redis under load, watch the alert arrive, mitigate as the runbook says; the timeline."""
    from ingestion.settings import IngestSettings
    from monitoring.settings import MonitorSettings
    from recsys.settings import StackSettings
    from recsys.stack.manager import Stack
    from recsys.stack.monitoring import Alertmanager, PlatformEndpoints, Prometheus
    from recsys.stack.redis_server import RedisServer
    from serving.settings import ServingSettings

    rec = DrillRecord()
    stack = StackSettings(var_dir=var, prometheus_port=prometheus_port, alertmanager_port=alertmanager_port,
                          alertmanager_group_wait_s=0.5, auto_install=False)  # fmt: skip
    endpoints = PlatformEndpoints.from_settings(
        ServingSettings(var_dir=var, port=serving_port),
        IngestSettings(var_dir=var, metrics_port=0),
        MonitorSettings(var_dir=var, metrics_port=0),
    )
    t0 = time.monotonic()
    with ExitStack() as cleanup:
        alertmanager, prometheus = Alertmanager(stack, endpoints), Prometheus(stack, endpoints)
        cleanup.callback(alertmanager.down)
        cleanup.callback(prometheus.down)
        alertmanager.up()
        prometheus.up()
        prom = f"http://127.0.0.1:{prometheus_port}"
        topic = _AlertReader()
        cleanup.callback(topic.close)
        load = cleanup.enter_context(_Load(f"http://127.0.0.1:{serving_port}", users).running())
        # A healthy baseline: model answers, and a minute-rate Prometheus can see (the fast rules' traffic guard).
        _wait(lambda: load.answers.get("model", 0) >= 20, 60, "model answers before the fault")
        _wait(
            lambda: (_query(prom, "sum(rate(recsys_requests_total[1m]))") or 0) > 0.5,
            120,
            "Prometheus to see the load",
        )
        rec.baseline_at = _now()
        log(f"drill: baseline {dict(load.answers)}; Prometheus sees the load")

        redis = RedisServer(stack)
        pid = redis.proc.pid()
        if pid is None:
            raise RuntimeError("the private stack's redis-server is not ours to kill (no pid file)")
        before = dict(load.answers)
        injected = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        rec.injected_at = _now()
        log(f"drill: killed redis-server pid {pid} at {rec.injected_at}")

        firing: dict[str, Any] | None = None
        deadline = injected + alert_timeout_s
        while firing is None and time.monotonic() < deadline:
            for a in _prometheus_alerts(prom):
                if rec.pending_at is None and a.get("activeAt"):
                    rec.pending_at = str(a["activeAt"])
                if rec.firing_at is None and a.get("state") == "firing":
                    rec.firing_at = _now()
            firing = topic.poll(FAST_ALERTS, "firing", 1.0)
        if firing is None:
            rec.error = f"no firing {sorted(FAST_ALERTS)} alert on recsys.alerts within {alert_timeout_s:g} s"
            log(f"drill: {rec.error}")
        else:
            rec.alert_at = _now()
            rec.alertname = str(firing["labels"]["alertname"])
            rec.alert_labels = {str(k): str(v) for k, v in firing.get("labels", {}).items()}
            log(f"drill: {rec.alertname} read back from recsys.alerts at {rec.alert_at}")
        alert_s = time.monotonic() - injected
        rec.answers_during_fault = {k: v - before.get(k, 0) for k, v in load.answers.items()}

        mitigated = time.monotonic()
        Stack(stack).up(["redis"])  # the runbook's `recsys stack up --only redis`
        rec.mitigated_at = _now()
        _wait(lambda: load.last_model_at > mitigated, 60, "model answers after the mitigation")
        rec.recovered_at = _now()
        recovered_s = time.monotonic() - mitigated
        log(f"drill: redis back at {rec.mitigated_at}, model answers again at {rec.recovered_at}")
        resolved = (
            topic.poll(frozenset({rec.alertname}), "resolved", resolve_timeout_s) if rec.alertname else None
        )
        if resolved is not None:
            rec.resolved_at = _now()
            log(f"drill: resolved notification at {rec.resolved_at}")
        rec.seconds = {
            "injection_to_alert_on_topic": round(alert_s, 1) if firing else None,
            "mitigation_to_model_answers": round(recovered_s, 1),
            "mitigation_to_resolved_on_topic": round(time.monotonic() - mitigated, 1) if resolved else None,
            "injection_to_recovery": round(time.monotonic() - injected, 1) if resolved else None,
            "drill": round(time.monotonic() - t0, 1),
        }
        rec.answers = dict(load.answers)
    return rec


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from one ISO timestamp to another (None when either is missing)."""
    if not start or not end:
        return None
    a = datetime.fromisoformat(start.replace("Z", "+00:00"))
    b = datetime.fromisoformat(end.replace("Z", "+00:00"))
    return round((b - a).total_seconds(), 1)
