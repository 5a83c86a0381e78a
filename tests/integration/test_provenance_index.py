"""The Redis provenance index on the real broker and a private redis-server: O(1) lookups, no scans for unknown ids.

Before the index, `/provenance/<id>` of an id the process did not hold in memory scanned the
whole topic (~0.6 s each on the demo's topic): 50 random ids kept a worker busy for 30 s.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from events.settings import KafkaSettings
from serving import provenance as provenance_module
from serving.app import create_app
from serving.models import ModelManager
from serving.provenance import ProvenanceLog
from serving.provenance_index import INDEX_PREFIX, ProvenanceIndex
from serving.provenance_record import ProvenanceBusyError, ProvenanceRecord
from serving.routing import Router
from serving.runtime import Runtime, check_bundle
from serving.settings import ServingSettings
from tests.integration.conftest import StackInfo, private_redis_server

pytestmark = pytest.mark.integration


def record(user_id: int) -> ProvenanceRecord:
    """An answer without a model (explain then needs no registry)."""
    return ProvenanceRecord(user_id=user_id, experiment=None, arm="default", model_name=None,
                            model_version=None, result=["the+green+mile+1999"], fallback="no_model",
                            latency_ms=3.0)  # fmt: skip


@pytest.fixture
def broker(stack: StackInfo) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=stack.kafka_bootstrap)


@pytest.fixture
def redis_url() -> Iterator[str]:
    with private_redis_server() as (_proc, url):
        yield url


@pytest.fixture
def no_scans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every topic scan `find` would start (the scan itself is replaced by a recorder)."""
    scanned: list[str] = []

    def scan(request_id: str, *_args: Any) -> None:
        scanned.append(request_id)

    monkeypatch.setattr(provenance_module, "find_in_topic", scan)
    return scanned


def written(topic: str, broker: KafkaSettings, url: str, recs: list[ProvenanceRecord]) -> None:
    """Deliver records through a log with the index, and wait until every position is in Redis."""
    with ProvenanceLog(broker, topic=topic, redis_index=ProvenanceIndex(url, 600)) as plog:
        for rec in recs:
            plog.record(rec)
        deadline = time.monotonic() + 30
        while plog.redis_index is not None and plog.redis_index.stats().written < len(recs):
            assert time.monotonic() < deadline, (plog.stats(), plog.redis_index.stats())
            time.sleep(0.05)


def test_delivered_records_are_indexed_with_a_ttl_and_found_without_a_scan(
    topic: str, broker: KafkaSettings, redis_url: str, no_scans: list[str]
) -> None:
    recs = [record(u) for u in range(30)]
    written(topic, broker, redis_url, recs)
    client = redis.Redis.from_url(redis_url)
    assert client.get(INDEX_PREFIX + recs[0].request_id) == b"0:0"
    ttl = int(client.ttl(INDEX_PREFIX + recs[29].request_id))  # type: ignore[arg-type]
    assert 0 < ttl <= 600
    other = ProvenanceLog(broker, topic=topic, index_size=0, redis_index=ProvenanceIndex(redis_url, 600))
    assert [other.find(r.request_id) for r in (recs[29], recs[3], recs[0])] == [recs[29], recs[3], recs[0]]
    t0 = time.perf_counter()
    assert all(other.find(uuid.uuid4().hex) is None for _ in range(50))
    assert time.perf_counter() - t0 < 5.0, "50 unknown ids: one Redis GET each, not a topic scan each"
    assert no_scans == [] and other.stats().scans == 0


def test_unknown_ids_on_the_api_are_a_quick_404_and_known_ones_are_explained(
    topic: str, broker: KafkaSettings, redis_url: str, no_scans: list[str], tmp_path: Path
) -> None:
    known = record(7)
    written(topic, broker, redis_url, [known])
    settings = ServingSettings(RECSYS_VAR_DIR=tmp_path, RECSYS_REDIS_URL=redis_url)  # type: ignore[call-arg]
    plog = ProvenanceLog(broker, topic=topic, index_size=10, redis_index=ProvenanceIndex(redis_url, 600))
    runtime = Runtime(settings, Router(), ModelManager(lambda: None, check_bundle, 60.0), None, plog)
    with TestClient(create_app(settings, runtime)) as client:
        t0 = time.perf_counter()
        assert {client.get(f"/provenance/{uuid.uuid4().hex}").status_code for _ in range(50)} == {404}
        assert time.perf_counter() - t0 < 10.0
        found = client.get(f"/provenance/{known.request_id}")  # another process's record: via the index
        assert found.status_code == 200, found.text
        assert found.json()["record"]["user_id"] == 7
        answered = client.get("/recommend/42")  # this process's own answer: indexed after delivery
        request_id = answered.headers["X-Request-Id"]
        deadline = time.monotonic() + 30
        while redis.Redis.from_url(redis_url).get(INDEX_PREFIX + request_id) is None:
            assert time.monotonic() < deadline, plog.stats()
            time.sleep(0.05)
    assert no_scans == [] and plog.stats().scans == 0


def test_without_redis_scans_are_bounded_and_the_excess_is_refused(
    topic: str, broker: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with private_redis_server() as (proc, url):
        plog = ProvenanceLog(broker, topic=topic, redis_index=ProvenanceIndex(url, 60), max_scans=1)
        proc.kill()
        proc.wait()
    entered, release = threading.Event(), threading.Event()

    def slow_scan(request_id: str, *_args: Any) -> None:
        entered.set()
        release.wait(10)

    monkeypatch.setattr(provenance_module, "find_in_topic", slow_scan)
    first = threading.Thread(target=plog.find, args=(uuid.uuid4().hex,))
    first.start()
    assert entered.wait(10), "Redis down: the lookup falls back to a scan"
    with pytest.raises(ProvenanceBusyError):
        plog.find(uuid.uuid4().hex)
    release.set()
    first.join(10)
    assert plog.find(uuid.uuid4().hex) is None, "the gate is free again"
    assert plog.stats().scans == 2
