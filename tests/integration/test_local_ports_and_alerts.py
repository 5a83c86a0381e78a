"""The demo's services and the local monitoring on ports chosen by the test, and an alert's whole path.

Issue 10, defect 7: the metadata API and the recommendation API are started through
recsys/services.py (as `recsys demo` does) on free ports, and the generated Prometheus and
Alertmanager configs point at those ports. Defect 6: the real Alertmanager, started by the stack
manager's class, delivers an alert to the API's `/admin/alerts` with the admin bearer token read
from its credentials file; the API forwards it to the `recsys.alerts` topic.
"""

from __future__ import annotations

import json
import os
import stat
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import TopicPartition

from events.kafka import make_consumer
from events.topics import ALERTS
from ingestion.settings import IngestSettings
from recsys.services import ServiceProcess, metadata_api, recommender_api
from recsys.settings import StackSettings
from recsys.stack.monitoring import Alertmanager, PlatformEndpoints, Prometheus
from serving.settings import DEV_ADMIN_TOKEN, ServingSettings
from simulator.store import save_world
from simulator.world import generate_world
from tests.integration.conftest import StackInfo, free_port, wait_until
from tests.integration.test_feast_repo import db_url

TEST_DB = 7


@dataclass
class Services:
    var: Path
    metadata_port: int
    api_port: int
    env: dict[str, str]


@pytest.fixture(scope="module")
def services(stack: StackInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """A tiny world's metadata API and a recommendation API (no model yet: fallback lists), on free ports."""
    var = tmp_path_factory.mktemp("ports") / "var"
    save_world(generate_world(40, 30, seed=3), var / "sim")
    env = {"RECSYS_VAR_DIR": str(var), "RECSYS_REDIS_URL": db_url(stack.redis_url, TEST_DB)}
    metadata_port, api_port = free_port(), free_port()
    started: list[ServiceProcess] = []
    try:
        for service in (
            metadata_api(var, port=metadata_port),
            recommender_api(var, port=api_port, workers=1, until_ready=False),
        ):
            started.append(service)
            try:
                service.up(env=env, timeout_s=120)
            except Exception as e:
                raise AssertionError(f"{service.proc.name} did not start:\n{service.log_tail()}") from e
        yield Services(var, metadata_port, api_port, env)
    finally:
        for service in started:
            service.down()


def test_demo_services_answer_on_the_ports_they_were_given(services: Services) -> None:
    meta = f"http://127.0.0.1:{services.metadata_port}"
    api = f"http://127.0.0.1:{services.api_port}"
    assert httpx.get(f"{meta}/healthz", timeout=5).status_code == 200
    movies = httpx.get(f"{meta}/movie/1", timeout=5)
    assert movies.status_code in (200, 404), movies.text  # the metadata API itself, not another server
    assert httpx.get(f"{api}/healthz", timeout=5).status_code == 200
    answer = httpx.get(f"{api}/recommend/1", timeout=5)
    assert answer.status_code == 200 and "X-Recommendation-Path" in answer.headers
    # Nothing of ours took the default ports instead.
    assert services.metadata_port != 8080 and services.api_port != 8082


def _alerts_offset() -> int:
    consumer = make_consumer(f"test-alerts-{uuid.uuid4().hex[:8]}")
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(ALERTS, 0), timeout=10)
        return int(high)
    finally:
        consumer.close()


def _alerts_since(offset: int, run: str, timeout_s: float) -> list[dict[str, Any]]:
    """Alerts on `recsys.alerts` from `offset` on whose `test_run` label is `run` (waits for the first)."""
    consumer = make_consumer(f"test-alerts-{uuid.uuid4().hex[:8]}")
    consumer.assign([TopicPartition(ALERTS, 0, offset)])
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not found:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            alert = json.loads(msg.value() or b"{}")
            if alert.get("labels", {}).get("test_run") == run:
                found.append(alert)
    finally:
        consumer.close()
    return found


def _post_alert(alertmanager: str, name: str, run: str) -> None:
    alert = {
        "labels": {"alertname": name, "job": "recsys-api", "severity": "warning", "test_run": run},
        "annotations": {"summary": "raised by the local-monitoring integration test"},
        "startsAt": datetime.now(UTC).isoformat(),
    }
    response = httpx.post(f"{alertmanager}/api/v2/alerts", json=[alert], timeout=5)
    assert response.status_code == 200, response.text


def _webhook_counter(alertmanager: str, metric: str) -> float:
    text = httpx.get(f"{alertmanager}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(metric + "{") and 'integration="webhook"' in line
    )


def test_local_monitoring_points_at_the_ports_and_alerts_reach_the_api_with_the_token(
    services: Services,
) -> None:
    stack = StackSettings(
        var_dir=services.var,
        prometheus_port=free_port(),
        alertmanager_port=free_port(),
        alertmanager_group_wait_s=0.5,
        auto_install=False,
    )
    ingest_port = free_port()
    endpoints = PlatformEndpoints.from_settings(
        ServingSettings(var_dir=services.var, port=services.api_port),
        IngestSettings(var_dir=services.var, metrics_port=ingest_port),
    )
    api = f"http://127.0.0.1:{services.api_port}"
    # The sink refuses a call without the token: what every local alert got before the fix.
    assert httpx.post(f"{api}/admin/alerts", json={"alerts": []}, timeout=5).status_code == 401

    alertmanager, prometheus = Alertmanager(stack, endpoints), Prometheus(stack, endpoints)
    try:
        alertmanager.up()
        prometheus.up()
        am_config = alertmanager.config_file.read_text()
        assert f"url: {api}/admin/alerts" in am_config
        assert DEV_ADMIN_TOKEN not in am_config, "the token belongs in the credentials file only"
        assert alertmanager.token_file.read_text() == DEV_ADMIN_TOKEN
        assert stat.S_IMODE(os.stat(alertmanager.token_file).st_mode) == 0o600

        # Prometheus scrapes the API and the ingestion metrics port where the settings put them.
        def targets() -> dict[str, dict[str, Any]] | None:
            answer = httpx.get(f"{prometheus.address}/api/v1/targets", timeout=5).json()
            active = {t["labels"]["job"]: t for t in answer["data"]["activeTargets"]}
            return active if active.get("recsys-api", {}).get("health") == "up" else None

        active = wait_until(targets, 30, "Prometheus to scrape the API")
        assert active["recsys-api"]["scrapeUrl"] == f"{api}/metrics"
        assert active["recsys-ingest"]["scrapeUrl"] == f"http://127.0.0.1:{ingest_port}/metrics"
        managers = httpx.get(f"{prometheus.address}/api/v1/alertmanagers", timeout=5).json()
        assert [m["url"] for m in managers["data"]["activeAlertmanagers"]] == [
            f"http://127.0.0.1:{stack.alertmanager_port}/api/v2/alerts"
        ]

        # An alert posted to Alertmanager reaches /admin/alerts with the token and lands on Kafka.
        run = uuid.uuid4().hex
        offset = _alerts_offset()
        _post_alert(alertmanager.address, "LocalPortsTest", run)
        [delivered] = _alerts_since(offset, run, timeout_s=30)
        assert delivered["labels"]["alertname"] == "LocalPortsTest"
        assert delivered["status"] == "firing"
        assert _webhook_counter(alertmanager.address, "alertmanager_notifications_failed_total") == 0

        # Control: with a wrong token in the file (re-read per notification) the API refuses it.
        alertmanager.token_file.write_text("not-the-admin-token")
        other = uuid.uuid4().hex
        _post_alert(alertmanager.address, "LocalPortsWrongToken", other)
        wait_until(
            lambda: _webhook_counter(alertmanager.address, "alertmanager_notifications_failed_total") >= 1,
            30,
            "the webhook with a wrong token to fail",
        )
        assert _alerts_since(offset, other, timeout_s=2) == []
    finally:
        prometheus.down()
        alertmanager.down()
