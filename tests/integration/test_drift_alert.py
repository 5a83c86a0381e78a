"""Done-when (b): a genre surge injected by the simulator raises the drift alert; the same run without it does not.

Two histories of one tiny world with the same seed, one with a `GenreSurge` in its second half,
take the real path: the simulator writes course lines to Kafka, the ingestion worker lands them
(enriched from the simulator's metadata API, run as a process) in an offline store of its own.
`run_drift` compares the last three hours of each with the three before (no champion is registered, so
the reference is the preceding period): only the surged one has `genre` drifted. Then the
monitor's exporter serves each result in turn to the real Prometheus (the stack manager's class,
the repository's rule files, a `recsys-monitor` scrape job): FeatureDrift stays quiet on the
clean result and fires on the surged one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from events.kafka import ensure_topics
from ingestion.factory import build_worker
from ingestion.settings import IngestSettings
from monitoring.drift import DriftResult, run_drift
from monitoring.settings import MonitorSettings
from recsys.services import ServiceProcess, metadata_api
from recsys.settings import StackSettings
from recsys.stack.monitoring import PlatformEndpoints, Prometheus
from simulator.drift import GenreSurge
from simulator.history import backfill
from simulator.settings import SimSettings
from simulator.store import save_world
from simulator.world import World, generate_world
from tests.integration.conftest import StackInfo, free_port, wait_until

pytestmark = pytest.mark.integration
START_S = 1_767_225_600  # 2026-01-01T00:00Z
HOURS = 7
"""Simulated hours: the window is the last three, the reference the three before (the first hour is the
stream's start edge: sessions that began before it are cut short)."""
SURGE = GenreSurge(start=datetime.fromtimestamp(START_S + 4 * 3600, UTC), genre="Horror", factor=8.0)
MONITOR_JOB = "recsys-monitor"
EXPORTER = (
    "import time\nfrom monitoring.exporter import start_exporter\nfrom monitoring.settings import MonitorSettings\n"
    "start_exporter(MonitorSettings())\ntime.sleep(600)\n"
)


@dataclass(frozen=True)
class Sim:
    """The simulated world, where it is stored and its metadata API."""

    world: World
    var: Path
    meta_url: str


@pytest.fixture(scope="module")
def sim(stack: StackInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    """A tiny world and its metadata API (a process on a free port)."""
    var = tmp_path_factory.mktemp("drift-world") / "var"
    world = generate_world(400, 150, seed=21)
    save_world(world, var / "sim")
    port = free_port()
    api: ServiceProcess = metadata_api(var, port=port)
    try:
        api.up(env={"RECSYS_VAR_DIR": str(var)}, timeout_s=120)
    except Exception as e:
        raise AssertionError(f"metadata API did not start:\n{api.log_tail()}") from e
    try:
        yield Sim(world, var, f"http://127.0.0.1:{port}")
    finally:
        api.down()


def _history(sim: Sim, var: Path, drifts: list[GenreSurge]) -> DriftResult:
    """Simulate, land through Kafka and ingestion, run drift on the second half against the first."""
    topic = f"drift-{uuid.uuid4().hex[:8]}"
    ensure_topics({topic: 1})
    settings = SimSettings(
        var_dir=sim.var,
        topic=topic,
        sessions_per_hour=500,
        new_users_per_hour=0,
        drifts=drifts,
    )
    backfill(sim.world, settings, HOURS / 24, start_ns=START_S * 10**9, save_state=False,
             progress=False)  # fmt: skip
    ingest = IngestSettings(RECSYS_VAR_DIR=var, topic=topic, group_id=f"g-{topic}", metrics_port=0,
                            push_online=False, RECSYS_SIM_API_URL=sim.meta_url)  # type: ignore[call-arg]  # fmt: skip
    build_worker(ingest, online=False).run(until_drained=True, max_seconds=120)
    monitor = MonitorSettings(var_dir=var, drift_reference_hours=3, RECSYS_SIM_API_URL=sim.meta_url)  # type: ignore[call-arg]  # fmt: skip
    return run_drift(monitor, hours=3)


@pytest.fixture(scope="module")
def results(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, DriftResult]]:
    """The clean and the surged history, each in its own var dir, with its drift result."""
    out = {}
    for name, drifts in (("clean", []), ("surged", [SURGE])):
        var = tmp_path_factory.mktemp(f"drift-{name}") / "var"
        out[name] = (var, _history(sim, var, drifts))
    return out


def _scores(result: DriftResult) -> str:
    return ", ".join(f"{r.profile}/{r.feature} {r.score:.3f}" for r in result.rows)


def test_genre_surge_is_drift_and_the_clean_run_is_not(results: dict[str, tuple[Path, DriftResult]]) -> None:
    (_, clean), (_, surged) = results["clean"], results["surged"]
    print("clean:", _scores(clean), "\nsurged:", _scores(surged))
    assert clean.window is not None and surged.window is not None
    assert clean.window[0] == surged.window[0] == SURGE.start
    genre = {name: next(r for r in res.rows if r.feature == "genre") for name, (_, res) in results.items()}
    assert genre["surged"].drifted and genre["surged"].rows >= 500
    assert not genre["clean"].drifted and genre["clean"].score < genre["surged"].score / 2
    assert clean.drifted == [], _scores(clean)  # the same run without the surge raises nothing
    assert {r.feature for r in clean.rows} >= {
        "genre",
        "minutes_watched",
        "movie_cost",
        "response_ms",
    }
    assert not [c for c in clean.schema if c.source == "metadata"], clean.schema  # the API's records fit


class _MonitorPrometheus(Prometheus):
    """The stack manager's Prometheus (its config, the repository's rules) plus a scrape job for the exporter."""

    def __init__(self, stack: StackSettings, endpoints: PlatformEndpoints, exporter: str) -> None:
        self.exporter = exporter
        super().__init__(stack, endpoints)

    def render(self) -> str:
        """The generated config with a `recsys-monitor` job added unless the manager already has one."""
        config = yaml.safe_load(super().render())
        jobs = config["scrape_configs"]
        if not any(j["job_name"] == MONITOR_JOB for j in jobs):
            jobs.append({"job_name": MONITOR_JOB, "static_configs": [{"targets": [self.exporter]}]})
        text: str = yaml.safe_dump(config)
        return text


def _exporter(var: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RECSYS_VAR_DIR": str(var), "RECSYS_MONITOR_METRICS_PORT": str(port),
           "WHYLOGS_NO_ANALYTICS": "1"}  # fmt: skip
    return subprocess.Popen([sys.executable, "-c", EXPORTER], env=env, stdout=subprocess.DEVNULL)


def _drift_alerts(prometheus: str) -> list[dict[str, Any]]:
    alerts = httpx.get(f"{prometheus}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return [a for a in alerts if a["labels"].get("alertname") == "FeatureDrift"]


def _series(prometheus: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": "recsys_drift_detected"}, timeout=5)
    found: list[dict[str, Any]] = answer.json()["data"]["result"]
    return found


def test_the_drift_alert_fires_in_prometheus_on_the_surge_only(
    results: dict[str, tuple[Path, DriftResult]], tmp_path: Path
) -> None:
    port = free_port()
    stack = StackSettings(var_dir=tmp_path / "var", prometheus_port=free_port(), alertmanager_port=free_port(),
                          auto_install=False)  # fmt: skip
    endpoints = PlatformEndpoints(api=f"127.0.0.1:{free_port()}", ingest_metrics=None, admin_token="unused")
    prometheus = _MonitorPrometheus(stack, endpoints, f"127.0.0.1:{port}")
    exporter = _exporter(results["clean"][0], port)
    try:
        prometheus.up()
        address = prometheus.address
        # Clean: Prometheus scrapes the result and evaluates the rules on it; FeatureDrift stays quiet.
        seen = wait_until(lambda: _series(address), 60, "Prometheus to scrape the clean result")
        assert {s["metric"]["feature"] for s in seen} >= {"genre"} and all(s["value"][1] == "0" for s in seen)
        time.sleep(12)  # two rule evaluations (every 5 s) on the clean samples
        assert _drift_alerts(address) == []
        exporter.terminate()
        exporter.wait(10)
        # Surged: the same exporter on the same port serves the other result; the alert fires.
        exporter = _exporter(results["surged"][0], port)
        firing = wait_until(
            lambda: [a for a in _drift_alerts(address) if a["state"] == "firing"], 60, "FeatureDrift to fire"
        )
        assert "genre" in {a["labels"]["feature"] for a in firing}
        assert all(a["labels"]["severity"] == "warning" for a in firing)
    finally:
        exporter.terminate()
        exporter.wait(10)
        prometheus.down()
