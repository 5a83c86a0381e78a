"""Fault -> alert -> `recsys.alerts`, measured: Redis dies under load, then comes back.

The whole path is real: a recommendation API process (`recsys serve` through
recsys/services.py) serving a registered LightGBM model from its own redis-server, the local
stack's Prometheus and Alertmanager (Debian packages, recsys/stack/monitoring.py) on free ports
loading deploy/prometheus/rules, Alertmanager posting to the API's `/admin/alerts` with the
admin token, and the API forwarding to Kafka. Only the Kafka broker is shared: it must be up
(`recsys stack up`, or the integration `stack` fixture).

`run_redis_outage` is used by tests/integration/test_alert_e2e.py (done-when (a)) and by
benchmarks/monitoring.py (`alert_seconds`). Our Prometheus stamps its alerts with an external
label `alert_run` so that concurrent runs, and alerts of other stacks on the shared topic,
are told apart.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml
from confluent_kafka import Consumer, TopicPartition

from events.kafka import ensure_topics, make_consumer
from events.topics import ALERTS
from feature_repo import online_marker
from ingestion.settings import IngestSettings
from monitoring.settings import MonitorSettings
from ranking import columns as C  # noqa: N812
from ranking.registry import ModelRegistry
from ranking.settings import RankSettings
from recsys.services import recommender_api
from recsys.settings import StackSettings
from recsys.stack.monitoring import Alertmanager, PlatformEndpoints, Prometheus
from serving.settings import ServingSettings
from tests.integration.conftest import free_port, wait_until
from tests.integration.test_serving import _sessions, register, train_model, write_online

FAST_ALERTS = frozenset({"ApiFallbackSurge", "ApiErrorSurge"})
"""The fast critical rules of deploy/prometheus/rules/availability.yml a dead Redis must trigger."""
RUN_LABEL = "alert_run"
"""External label our Prometheus adds to every alert it sends (one value per run)."""


@dataclass(frozen=True)
class AlertTimes:
    """What one outage measured."""

    alertname: str
    """The rule whose notification arrived first."""
    alert_seconds: float
    """Redis killed -> the firing alert read back from `recsys.alerts`."""
    resolve_seconds: float
    """Redis restarted (data restored) -> the resolved notification read back from `recsys.alerts`."""
    answers: dict[str, int]
    """Answers of the load loop by recommendation path (or HTTP status when not 200)."""


def start_redis(port: int) -> subprocess.Popen[bytes]:
    """A redis-server of this run alone on `port`, without persistence (a restart comes back empty)."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is installed by `make prereqs`"
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)

    def pong() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    wait_until(pong, 10, f"redis-server on port {port}")
    return proc


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()  # a no-op on one that already exited
    proc.wait()


def build_world(var: Path, redis_url: str) -> None:
    """Online features of a small world in Redis and a champion model in the registry under `var`."""
    from ingestion.feast_bridge import open_feature_store

    sessions = _sessions()
    part = var / "offline" / "sessions" / "date=2026-10-01"
    part.mkdir(parents=True)
    sessions.to_parquet(part / "sessions.parquet")
    ordered = sessions.sort_values(C.END_TS)
    recent = {
        int(u): ordered[ordered[C.USER] == u][C.ITEM].tolist()[-5:][::-1] for u in ordered[C.USER].unique()
    }
    write_online(open_feature_store(var, redis_url), sessions, recent)
    online_marker.mark(redis.Redis.from_url(redis_url))
    version = register(var, train_model(sessions, var.parent / "model", seed=1))
    assert ModelRegistry.open(RankSettings(RECSYS_VAR_DIR=var)).promote(version).accepted  # type: ignore[call-arg]


class _LabelledPrometheus(Prometheus):
    """The local stack's Prometheus with an external label naming this run on every alert it sends."""

    def __init__(self, stack: StackSettings, endpoints: PlatformEndpoints, run: str) -> None:
        super().__init__(stack, endpoints)
        self.run = run

    def render(self) -> str:
        """The stack manager's config plus `global.external_labels`."""
        config = yaml.safe_load(super().render())
        config["global"]["external_labels"] = {RUN_LABEL: self.run}
        return str(yaml.safe_dump(config, sort_keys=False))

    def query(self, promql: str) -> float | None:
        """The value of an instant query with one series, None when it has none."""
        answer = httpx.get(f"{self.address}/api/v1/query", params={"query": promql}, timeout=5).json()
        result = answer["data"]["result"]
        return float(result[0]["value"][1]) if result else None


class _Load:
    """GET /recommend for users 1..60 at about `rate` requests a second, in a thread; answers counted by path."""

    def __init__(self, api: str, rate: float = 10.0) -> None:
        self.api, self.pause = api, 1.0 / rate
        self.answers: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alert-path-load", daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.api, timeout=5) as client:
            user = 0
            while not self._stop.is_set():
                user = user % 60 + 1
                try:
                    r = client.get(f"/recommend/{user}")
                    key = (
                        r.headers.get("X-Recommendation-Path", "?")
                        if r.status_code == 200
                        else str(r.status_code)
                    )
                except httpx.HTTPError as e:
                    key = type(e).__name__
                self.answers[key] = self.answers.get(key, 0) + 1
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


class _AlertTopic:
    """Reads `recsys.alerts` from its end at creation on, keeping only this run's alerts."""

    def __init__(self, run: str) -> None:
        self.run = run
        self.consumer: Consumer = make_consumer(f"alert-path-{uuid.uuid4().hex[:8]}")
        partitions = self.consumer.list_topics(ALERTS, timeout=10).topics[ALERTS].partitions
        starts = [
            TopicPartition(
                ALERTS, p, self.consumer.get_watermark_offsets(TopicPartition(ALERTS, p), timeout=10)[1]
            )
            for p in partitions
        ]
        self.consumer.assign(starts)

    def next(self, names: frozenset[str], status: str, timeout_s: float) -> dict[str, Any]:
        """The first alert of this run named in `names` with `status`; AssertionError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = self.consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            alert = json.loads(msg.value() or b"{}")
            labels = alert.get("labels", {})
            if (
                labels.get(RUN_LABEL) == self.run
                and labels.get("alertname") in names
                and alert.get("status") == status
            ):
                return alert  # type: ignore[no-any-return]
        raise AssertionError(
            f"no {status} {sorted(names)} alert of run {self.run} on {ALERTS} within {timeout_s:g} s"
        )

    def close(self) -> None:
        """Leave the topic."""
        self.consumer.close()


def run_redis_outage(
    work: Path, alert_timeout_s: float = 180.0, resolve_timeout_s: float = 240.0
) -> AlertTimes:
    """Kill the API's Redis under load and restart it; seconds from each to its notification on `recsys.alerts`."""
    ensure_topics()
    var, run = work / "var", uuid.uuid4().hex
    redis_port, api_port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    with ExitStack() as cleanup:
        proc = start_redis(redis_port)
        cleanup.callback(lambda: _kill(proc))
        build_world(var, redis_url)
        api = recommender_api(var, port=api_port, workers=1)
        env = {
            "RECSYS_VAR_DIR": str(var),
            "RECSYS_REDIS_URL": redis_url,
            "RECSYS_SERVING_AUTO_REBUILD": "false",
        }
        cleanup.callback(api.down)
        api.up(env=env, timeout_s=180)  # a StackError with the log's tail if it does not get ready
        stack = StackSettings(
            var_dir=var,
            prometheus_port=free_port(),
            alertmanager_port=free_port(),
            alertmanager_group_wait_s=0.5,
            auto_install=False,
        )
        endpoints = PlatformEndpoints.from_settings(
            ServingSettings(var_dir=var, port=api_port),
            IngestSettings(var_dir=var, metrics_port=0),
            MonitorSettings(var_dir=var, metrics_port=0),
        )
        alertmanager, prometheus = Alertmanager(stack, endpoints), _LabelledPrometheus(stack, endpoints, run)
        cleanup.callback(alertmanager.down)
        cleanup.callback(prometheus.down)
        alertmanager.up()
        prometheus.up()
        topic = _AlertTopic(run)
        cleanup.callback(topic.close)
        load = cleanup.enter_context(_Load(api.base_url).running())
        # A healthy baseline first: the API answers from the model and Prometheus sees the traffic
        # (the fast rules need a minute of samples and their traffic guard).
        wait_until(lambda: load.answers.get("model", 0) >= 20, 60, "model answers before the fault")
        rate = "sum(rate(recsys_requests_total[1m]))"
        wait_until(lambda: (prometheus.query(rate) or 0) > 0.5, 90, "Prometheus to see the load")
        snapshot = dict(_dump(redis_url))

        killed = time.monotonic()
        _kill(proc)
        firing = topic.next(FAST_ALERTS, "firing", alert_timeout_s)
        alert_seconds = time.monotonic() - killed
        name = firing["labels"]["alertname"]

        restarted = time.monotonic()
        proc = start_redis(redis_port)
        _restore(redis_url, snapshot)
        topic.next(frozenset({name}), "resolved", resolve_timeout_s)
        resolve_seconds = time.monotonic() - restarted
        return AlertTimes(name, alert_seconds, resolve_seconds, dict(load.answers))
    raise AssertionError("unreachable: ExitStack re-raises what the block raised")


def _dump(url: str) -> Iterator[tuple[bytes, bytes]]:
    """Every key of the store and its DUMP (the online features, byte for byte)."""
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(count=1000):
        value = client.dump(key)
        if isinstance(value, bytes):
            yield key, value


def _restore(url: str, snapshot: dict[bytes, bytes]) -> None:
    """Put the dumped keys back into a restarted (empty) Redis and stamp the store whole again."""
    client = redis.Redis.from_url(url)
    pipe = client.pipeline(transaction=False)
    for key, value in snapshot.items():
        pipe.restore(key, 0, value, replace=True)
    pipe.execute()
    online_marker.mark(client)
