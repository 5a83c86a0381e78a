"""Pure logic of the stack manager: address checks, prerequisite messages, generated configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys.settings import StackSettings
from recsys.stack.errors import MissingPrerequisiteError, StackError
from recsys.stack.kafka import local_port
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
