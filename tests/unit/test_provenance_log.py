"""The provenance log without a broker: record shape, never blocking, overflow accounting, lookup, probing.

"Kafka down" is a real producer pointed at a closed local port: librdkafka really tries to
connect and really fails, no mock stands in for the client.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pytest

from events.settings import KafkaSettings
from ranking.registry import ModelRegistry
from ranking.settings import RankSettings
from serving.provenance import ProvenanceLog, ProvenanceStats
from serving.provenance_lookup import explain_record
from serving.provenance_record import ProvenanceNotFoundError, ProvenanceRecord, hash_features
from serving.settings import ServingSettings

FIELDS = [
    "request_id",
    "ts",
    "user_id",
    "experiment",
    "arm",
    "model_name",
    "model_version",
    "model_ref",
    "lam",
    "feature_service",
    "features_hash",
    "candidate_sources",
    "cold_start",
    "result",
    "fallback",
    "latency_ms",
    "status",
    "interleave",
]


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def down() -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=f"127.0.0.1:{closed_port()}")


FEATURES_HASH = hash_features({"watch_minutes": 120, "genres": ["drama"]})
RESULT = [f"movie+{i}+1999" for i in range(20)]


def make(user_id: int = 7, **changes: object) -> ProvenanceRecord:
    fields: dict[str, object] = {
        "user_id": user_id,
        "experiment": "champion-vs-challenger",
        "arm": "control",
        "model_name": "recsys-ranker",
        "model_version": 3,
        "model_ref": "champion",
        "lam": 0.25,
        "feature_service": "ranker_v1",
        "features_hash": FEATURES_HASH,
        "candidate_sources": {"pop": 50, "als": 70},
        "result": RESULT,
        "latency_ms": 12.5,
        **changes,
    }
    return ProvenanceRecord(**fields)  # type: ignore[arg-type]


def balanced(s: ProvenanceStats) -> bool:
    return s.recorded == s.sent + s.failed + s.overflow + s.abandoned + s.buffered + s.in_flight


def wait_for(check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)


# --- the record ---------------------------------------------------------------------------------


def test_a_record_is_one_compact_json_object_with_every_field() -> None:
    rec = make()
    raw = rec.to_json()
    data = json.loads(raw)
    assert list(data) == FIELDS
    assert b": " not in raw and b", " not in raw and b"\n" not in raw
    assert len(rec.request_id) == 32 and int(rec.request_id, 16) >= 0
    ts = datetime.fromisoformat(data["ts"])
    assert ts.utcoffset() is not None and ts.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert abs((datetime.now(UTC) - ts).total_seconds()) < 60
    assert data["candidate_sources"] == {"pop": 50, "als": 70} and len(data["result"]) == 20
    assert data["status"] == 200 and data["fallback"] is None
    assert ProvenanceRecord.from_json(raw) == rec
    # Readers tolerate fields a newer writer added; they refuse a record missing what they need.
    assert ProvenanceRecord.from_json(json.dumps({**data, "new_field": 1})) == rec
    with pytest.raises(ValueError, match="user_id"):
        ProvenanceRecord.from_json(json.dumps({k: v for k, v in data.items() if k != "user_id"}))
    assert make().request_id != rec.request_id


def test_feature_hashes_are_canonical() -> None:
    assert hash_features({"a": 1, "b": [2.5]}) == hash_features({"b": [2.5], "a": 1})
    assert hash_features({"a": np.int64(1)}) == hash_features({"a": 1})
    assert hash_features({"a": 1}) != hash_features({"a": 2})
    vec = np.arange(4, dtype=np.float64)
    assert hash_features(vec) == hash_features(vec.copy())
    assert hash_features(vec) != hash_features(vec.astype(np.float32))
    assert len(hash_features(b"raw")) == 64


# --- the buffer ---------------------------------------------------------------------------------


def test_recording_100k_with_kafka_down_never_blocks_and_counts_overflow(down: KafkaSettings) -> None:
    records = [make(u) for u in range(100_000)]
    plog = ProvenanceLog(down, buffer_size=10_000, index_size=1_000).start()
    try:
        start = time.perf_counter()
        for rec in records:
            plog.record(rec)
        elapsed = time.perf_counter() - start
        # A record() that waited on the dead broker would take its delivery timeout (seconds) per
        # call once the buffer is full; not blocking keeps 100k calls far inside this bound
        # (about 0.1 s here; the speed itself is benchmarks/serving.py's business).
        assert elapsed < 10.0, f"100k records took {elapsed:.2f} s"
        s = plog.stats()
        assert (s.recorded, s.sent, s.buffered) == (100_000, 0, 10_000)
        assert s.overflow >= 100_000 - 10_000 - plog.max_in_flight and balanced(s)
        assert s.indexed == 1_000
    finally:
        started = time.monotonic()
        assert plog.close(0.3) is False  # nothing can be delivered
        assert time.monotonic() - started < 3
    s = plog.stats()
    assert s.buffered == s.in_flight == 0 and s.abandoned > 0 and balanced(s)


def test_a_full_buffer_drops_the_oldest() -> None:
    plog = ProvenanceLog(buffer_size=5)  # never started: nothing drains
    recs = [make(u) for u in range(8)]
    for rec in recs:
        plog.record(rec)
    s = plog.stats()
    assert (s.recorded, s.buffered, s.overflow) == (8, 5, 3)
    assert [r.user_id for r in plog._buffer] == [3, 4, 5, 6, 7]


def test_record_never_raises() -> None:
    plog = ProvenanceLog()
    plog.record(None)  # type: ignore[arg-type]
    s = plog.stats()
    assert (s.recorded, s.failed, s.buffered, s.indexed) == (1, 1, 0, 0) and balanced(s)


def test_lookup_answers_from_memory_before_kafka_has_the_record() -> None:
    plog = ProvenanceLog(index_size=3)
    recs = [make(u) for u in range(4)]
    for rec in recs[:3]:
        plog.record(rec)
    assert plog.lookup(recs[0].request_id) == recs[0]  # asked about: now the most recent
    plog.record(recs[3])
    assert plog.lookup(recs[1].request_id) is None  # the least recently used went
    assert [plog.lookup(r.request_id) for r in (recs[0], recs[2], recs[3])] == [recs[0], recs[2], recs[3]]
    assert plog.lookup("0" * 32) is None

    unindexed = ProvenanceLog(index_size=0)
    unindexed.record(recs[0])
    assert unindexed.lookup(recs[0].request_id) is None and unindexed.stats().indexed == 0


def test_after_a_failed_delivery_only_one_probe_is_in_flight(down: KafkaSettings) -> None:
    plog = ProvenanceLog(down, delivery_timeout_s=0.3, max_in_flight=100).start()
    try:
        for u in range(50):
            plog.record(make(u))
        wait_for(lambda: plog.stats().retried > 0 and plog.stats().in_flight <= 1, 10)
        s = plog.stats()
        assert s.retried > 0 and not s.deliverable and s.sent == 0
        assert s.in_flight <= 1 and s.buffered + s.in_flight == 50 and s.overflow == 0
        assert s.last_error is not None
    finally:
        plog.close(0.2)
    assert plog.stats().abandoned == 50


def test_close_without_start_flushes_from_the_callers_thread(down: KafkaSettings) -> None:
    plog = ProvenanceLog(down)
    plog.record(make())
    assert plog.close(0.2) is False and plog.stats().abandoned == 1
    assert plog.close(0.2) is False  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        plog.start()
    empty = ProvenanceLog(down)
    assert empty.close(0.2) is True


def test_sizes_come_from_the_serving_settings(down: KafkaSettings) -> None:
    plog = ProvenanceLog.from_settings(ServingSettings(provenance_buffer=3, provenance_index=2), down)
    assert (plog.buffer_size, plog.index_size) == (3, 2)
    with pytest.raises(ValueError, match="buffer_size"):
        ProvenanceLog(down, buffer_size=0)


# --- explain without a model -------------------------------------------------------------------


def test_explain_of_an_answer_without_a_model_needs_no_registry_call() -> None:
    registry = ModelRegistry(client=None, settings=RankSettings())  # type: ignore[arg-type]
    rec = make(model_name=None, model_version=None, model_ref=None, fallback="no champion")
    out = explain_record(rec, registry)
    assert out["model"] is None and "no champion" in out["note"]
    assert out["record"]["request_id"] == rec.request_id

    other = explain_record(make(model_name="other-model"), registry)
    assert "not 'other-model'" in other["model"]["error"]

    plog = ProvenanceLog(index_size=10)
    plog.record(rec)
    assert plog.explain(rec.request_id, registry)["record"]["fallback"] == "no champion"
    assert ProvenanceNotFoundError.http_status == 404
