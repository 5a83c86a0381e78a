"""Pure logic of the stack manager: address checks, prerequisite messages, generated configs."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import pytest

from recsys.settings import StackSettings
from recsys.stack.errors import MissingPrerequisiteError, StackError
from recsys.stack.kafka import local_port, new_cluster_id
from recsys.stack.monitoring import local_prometheus_config
from recsys.stack.prereqs import Program, require


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
        StackSettings(var_dir=tmp_path, prometheus_port=9990, alertmanager_port=9993)
    )
    assert "127.0.0.1:9993" in cfg and "127.0.0.1:9990" in cfg
    assert "deploy/prometheus/rules/*.yml" in cfg
    assert "127.0.0.1:8082" in cfg and "127.0.0.1:9101" in cfg


def test_cluster_ids_never_start_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kafka's storage tool reads "-t -Mp..." as a missing argument: such draws are redrawn."""
    dash_first = uuid.UUID(bytes=bytes([0xF8]) + bytes(15))  # top six bits 62: "-" in URL-safe base64
    assert base64.urlsafe_b64encode(dash_first.bytes).startswith(b"-")
    draws = iter([dash_first, dash_first, uuid.UUID(int=7)])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(draws))
    cluster_id = new_cluster_id()
    assert cluster_id == base64.urlsafe_b64encode(uuid.UUID(int=7).bytes).decode().rstrip("=")
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
