"""Pure logic of the stack manager: address checks, prerequisite messages, generated configs."""

from __future__ import annotations

import base64
import shutil
import stat
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from ingestion.settings import IngestSettings
from monitoring.settings import MonitorSettings
from recsys.settings import StackSettings
from recsys.stack.errors import MissingPrerequisiteError, StackError
from recsys.stack.kafka import local_port, new_cluster_id
from recsys.stack.monitoring import Alertmanager, PlatformEndpoints, Prometheus, local_prometheus_config
from recsys.stack.prereqs import Program, require
from serving.settings import ServingSettings


def test_local_port_accepts_one_loopback_address() -> None:
    assert local_port("127.0.0.1:9092") == 9092
    assert local_port("localhost:19092") == 19092


@pytest.mark.parametrize("bootstrap", ["kafka:9092", "127.0.0.1:9092,127.0.0.1:9093", "10.0.0.1:9092", "x"])
def test_non_local_bootstrap_must_be_declared_external(bootstrap: str) -> None:
    with pytest.raises(StackError, match="RECSYS_KAFKA_EXTERNAL"):
        local_port(bootstrap)


def test_missing_program_names_its_package() -> None:
    with pytest.raises(MissingPrerequisiteError, match=r"no-such-binary-xyz.*Debian package pkg-xyz"):
        require([Program("no-such-binary-xyz", "pkg-xyz")], auto_install=False)


def test_local_prometheus_config_points_at_loopback_and_shared_rules(tmp_path: Path) -> None:
    cfg = local_prometheus_config(
        StackSettings(var_dir=tmp_path, prometheus_port=9990, alertmanager_port=9993),
        PlatformEndpoints.from_settings(ServingSettings(), IngestSettings()),
    )
    assert "127.0.0.1:9993" in cfg and "127.0.0.1:9990" in cfg
    assert "deploy/prometheus/rules/*.yml" in cfg
    assert "127.0.0.1:8082" in cfg and "127.0.0.1:9101" in cfg


def _check(tool: str, *args: str) -> None:
    path = shutil.which(tool)
    assert path, f"`{tool}` is installed by `make prereqs` (Debian prometheus / prometheus-alertmanager)"
    result = subprocess.run([path, *args], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"{tool} {' '.join(args)}:\n{result.stdout}\n{result.stderr}"


def test_generated_monitoring_configs_follow_the_settings_and_keep_the_token_out(tmp_path: Path) -> None:
    stack = StackSettings(
        var_dir=tmp_path, prometheus_port=19990, alertmanager_port=19993, alertmanager_group_wait_s=0.25
    )
    endpoints = PlatformEndpoints.from_settings(
        ServingSettings(host="0.0.0.0", port=18082, admin_token="a-long-secret-admin-token"),
        IngestSettings(metrics_host="127.0.0.2", metrics_port=19101),
        MonitorSettings(metrics_host="0.0.0.0", metrics_port=19102),
    )
    prometheus, alertmanager = Prometheus(stack, endpoints), Alertmanager(stack, endpoints)
    assert prometheus.write_config() and alertmanager.write_config()
    assert not alertmanager.write_config(), "an unchanged config is not rewritten (no reload)"
    prom = yaml.safe_load(prometheus.config_file.read_text())
    targets = {j["job_name"]: j["static_configs"][0]["targets"] for j in prom["scrape_configs"]}
    # A wildcard bind is scraped on loopback.
    assert targets == {
        "prometheus": ["127.0.0.1:19990"],
        "recsys-api": ["127.0.0.1:18082"],
        "recsys-ingest": ["127.0.0.2:19101"],
        "recsys-monitor": ["127.0.0.1:19102"],
    }
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:19993"]
    text = alertmanager.config_file.read_text()
    assert "a-long-secret-admin-token" not in text
    am = yaml.safe_load(text)
    assert am["route"]["group_wait"] == "250ms"
    [hook] = am["receivers"][0]["webhook_configs"]
    assert hook["url"] == "http://127.0.0.1:18082/admin/alerts"
    auth = hook["http_config"]["authorization"]
    assert auth["type"] == "Bearer" and Path(auth["credentials_file"]) == alertmanager.token_file
    assert alertmanager.token_file.read_text() == "a-long-secret-admin-token"
    assert stat.S_IMODE(alertmanager.token_file.stat().st_mode) == 0o600
    _check("promtool", "check", "config", str(prometheus.config_file))
    _check("amtool", "check-config", str(alertmanager.config_file))


def test_metrics_port_0_means_no_scrape_job() -> None:
    endpoints = PlatformEndpoints.from_settings(
        ServingSettings(), IngestSettings(metrics_port=0), MonitorSettings(metrics_port=0)
    )
    assert endpoints.scrape_targets == {"recsys-api": "127.0.0.1:8082"}
    monitor_only = PlatformEndpoints.from_settings(
        ServingSettings(), IngestSettings(metrics_port=0), MonitorSettings(metrics_port=9102)
    )
    assert monitor_only.scrape_targets == {"recsys-api": "127.0.0.1:8082", "recsys-monitor": "127.0.0.1:9102"}
    assert "recsys-local-admin" not in repr(endpoints)


def test_cluster_ids_never_start_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kafka's storage tool reads "-t -Mp..." as a missing argument: such draws are redrawn."""
    dash_first = uuid.UUID(bytes=bytes([0xF8]) + bytes(15))  # top six bits 62: "-" in URL-safe base64
    assert base64.urlsafe_b64encode(dash_first.bytes).startswith(b"-")
    draws = iter([dash_first, dash_first, uuid.UUID(int=7)])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(draws))
    cluster_id = new_cluster_id()
    assert cluster_id == base64.urlsafe_b64encode(uuid.UUID(int=7).bytes).decode().rstrip("=")
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
