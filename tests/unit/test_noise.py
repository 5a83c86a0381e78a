"""Third-party noise is silenced at the source, and only it (issue 10, defect 11)."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from events.kafka import librdkafka_logger, make_producer
from events.settings import KafkaSettings

# The noise of a platform run, from the real libraries: Feast imported (its modules install
# `simplefilter("once", DeprecationWarning)` in front of any earlier filter), ibis reading a DuckDB
# table, MLflow opening its SQL store, INFO logging as `recsys ingest` sets it up, an httpx call.
PROBE = """
import logging, sys, warnings
from pathlib import Path

if sys.argv[1] == "quiet":
    from core.noise import quiet_third_party
    quiet_third_party()
logging.basicConfig(level=logging.INFO)
tmp = Path(sys.argv[2])

import feast
import ibis

con = ibis.duckdb.connect()
con.raw_sql("create table t as select 1 as a")
con.table("t").to_pyarrow()

from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

SqlAlchemyStore(f"sqlite:///{tmp}/mlflow.db", str(tmp / "artifacts"))
logging.getLogger("feast.infra.registry.registry").info("Registry cache expired, so refreshing")

import httpx

with httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200))) as c:
    c.get("http://metadata.test/movie/1")

warnings.warn("a warning that matters", UserWarning)
warnings.warn("a deprecation that matters", DeprecationWarning)
logging.getLogger("httpx").warning("an httpx warning that matters")
"""
NOISE = ("fetch_arrow_table", "noload", "Registry cache expired", "HTTP Request:")
KEPT = ("a warning that matters", "a deprecation that matters", "an httpx warning that matters")


def _stderr(tmp_path: Path, mode: str) -> str:
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    work = tmp_path / mode
    work.mkdir()
    result = subprocess.run(
        [sys.executable, "-W", "default", str(probe), mode, str(work)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_the_probe_reproduces_the_noise(tmp_path: Path) -> None:
    loud = _stderr(tmp_path, "loud")
    assert [n for n in NOISE if n not in loud] == []


def test_quiet_third_party_drops_the_noise_and_keeps_what_matters(tmp_path: Path) -> None:
    quiet = _stderr(tmp_path, "quiet")
    assert [n for n in NOISE if n in quiet] == [], quiet
    assert [k for k in KEPT if k not in quiet] == [], quiet


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def kafka_lines() -> Iterator[_Records]:
    logger = librdkafka_logger()
    handler = _Records()
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def test_librdkafka_coordinator_load_notice_is_dropped(kafka_lines: _Records) -> None:
    logger = librdkafka_logger()
    logger.warning(
        "%s [%s] %s",
        "GETPID",
        "rdkafka#producer-1",
        "[thrd:main]: Failed to acquire idempotence PID from broker TxnCoordinator/1: "
        "Coordinator load in progress: retrying",
    )
    logger.warning("%s [%s] %s", "REQTMOUT", "rdkafka#producer-1", "Timed out 1 in-flight request")
    assert [r.getMessage().split()[0] for r in kafka_lines.records] == ["REQTMOUT"]


def test_real_librdkafka_errors_still_reach_the_log(kafka_lines: _Records) -> None:
    producer = make_producer(KafkaSettings(bootstrap_servers="127.0.0.1:1"))
    producer.produce("nowhere", b"x")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not kafka_lines.records:
        producer.poll(0.2)  # librdkafka's lines are handed to Python from poll()
    producer.purge()
    assert any(
        r.levelno >= logging.ERROR and "Connection refused" in r.getMessage() for r in kafka_lines.records
    )
