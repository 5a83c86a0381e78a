"""The provenance log on the real broker: delivery, lookup in the topic, Kafka down then back, explain via MLflow.

"Kafka down then back" without stopping the shared broker: the log's bootstrap address is a
local port where nothing listens at first (connections refused, deliveries time out, records
go back to the buffer); then a TCP relay starts on that very port and forwards to the real
broker. The producer's configuration never changes: librdkafka reconnects on its own, as it
would when a real broker restarts. A second test re-points a running log at another broker.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from events.kafka import ensure_topics, make_consumer
from events.settings import KafkaSettings
from ranking.provenance import Provenance, data_snapshot
from ranking.registry import COST20, META_FILE, MODEL_FILE, NDCG20, P99_MS, ModelRegistry
from ranking.settings import RankSettings
from serving.provenance import ProvenanceLog, ProvenanceStats
from serving.provenance_lookup import find_in_topic
from serving.provenance_record import ProvenanceNotFoundError, ProvenanceRecord
from tests.integration.conftest import StackInfo, free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def wait_for(check: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def make(user_id: int, **changes: object) -> ProvenanceRecord:
    fields: dict[str, object] = {
        "user_id": user_id,
        "experiment": "champion-vs-challenger",
        "arm": "treatment",
        "model_name": "recsys-ranker",
        "model_version": 1,
        "model_ref": "challenger",
        "feature_service": "ranker_v1",
        "candidate_sources": {"pop": 50, "als": 70},
        "cold_start": None,
        "result": ["the+green+mile+1999", "spider-man+3+2007"],
        "latency_ms": 8.0,
        **changes,
    }
    return ProvenanceRecord(**fields)  # type: ignore[arg-type]


def balanced(s: ProvenanceStats) -> bool:
    return s.recorded == s.sent + s.failed + s.overflow + s.abandoned + s.buffered + s.in_flight


def keys_in(topic: str, settings: KafkaSettings, expected: int, timeout_s: float = 20.0) -> list[str]:
    """Every key in a topic (partitions 0 and 1), read from the beginning until `expected` arrived."""
    consumer = make_consumer(f"t-{uuid.uuid4().hex[:8]}", settings)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in (0, 1)])
    keys: list[str] = []
    deadline = time.monotonic() + timeout_s
    while len(keys) < expected and time.monotonic() < deadline:
        for msg in consumer.consume(500, timeout=0.5):
            if msg.error() is None:
                keys.append((msg.key() or b"").decode())
    consumer.close()
    return keys


class Relay:
    """A TCP relay from a local port to the broker: "the broker is back at the address it had"."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", port))
        self.sockets: list[socket.socket] = [self.server]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                s.close()

    def close(self) -> None:
        for s in self.sockets:
            s.close()


@pytest.fixture
def ptopic(stack: StackInfo) -> str:
    """A fresh two-partition topic, like `recsys.provenance`."""
    name = f"test-prov-{uuid.uuid4().hex[:10]}"
    ensure_topics({name: 2})
    return name


@pytest.fixture
def broker(stack: StackInfo) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=stack.kafka_bootstrap)


# --- delivery and lookup ----------------------------------------------------------------------


def test_records_reach_kafka_and_are_found_in_the_topic(ptopic: str, broker: KafkaSettings) -> None:
    recs = [make(u) for u in range(30)]
    with ProvenanceLog(broker, topic=ptopic) as plog:
        for rec in recs:
            plog.record(rec)
        assert wait_for(lambda: plog.stats().sent == 30, 30), plog.stats()
    s = plog.stats()
    assert (s.sent, s.buffered, s.overflow, s.abandoned) == (30, 0, 0, 0) and balanced(s)

    # Another process (empty index) finds any of them by scanning the topic.
    other = ProvenanceLog(broker, topic=ptopic)
    assert other.lookup(recs[17].request_id) is None
    assert other.find_in_topic(recs[17].request_id, timeout_s=20) == recs[17]
    assert other.find(recs[3].request_id) == recs[3]
    assert find_in_topic(uuid.uuid4().hex, broker, ptopic, timeout_s=20) is None
    assert find_in_topic(recs[0].request_id, broker, f"no-such-{uuid.uuid4().hex[:8]}", 10) is None
    assert sorted(keys_in(ptopic, broker, 30)) == sorted(r.request_id for r in recs)
    with pytest.raises(ProvenanceNotFoundError):
        other.explain(uuid.uuid4().hex, None, timeout_s=20)  # type: ignore[arg-type]


def test_kafka_down_then_back_at_the_same_address(ptopic: str, broker: KafkaSettings) -> None:
    port = free_port()
    host, _, kafka_port = broker.bootstrap_servers.split(",")[0].rpartition(":")
    down = KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}")
    recs = [make(u) for u in range(20)]
    plog = ProvenanceLog(down, topic=ptopic, delivery_timeout_s=1.0).start()
    relay: Relay | None = None
    try:
        for rec in recs:
            plog.record(rec)

        # Deliveries time out and come back to the buffer; one probe at a time after that. Which
        # comes first is a race: if the drain thread meets "all brokers down" before the records
        # arrive, only one record ever goes out; otherwise all 20 first attempts do and time out
        # (their callbacks may arrive over several polls on a slow machine). Either way the log
        # settles on probing: at least two failed attempts, one record in flight at most.
        def probing() -> bool:
            s = plog.stats()
            return s.retried >= 2 and s.in_flight <= 1 and not s.deliverable

        assert wait_for(probing, 30), plog.stats()
        s = plog.stats()
        assert s.sent == 0 and not s.deliverable and s.buffered + s.in_flight == 20 and s.in_flight <= 1
        assert plog.lookup(recs[5].request_id) == recs[5]  # answers while Kafka is down

        relay = Relay(port, (host, int(kafka_port)))
        back = time.monotonic()
        assert wait_for(lambda: plog.stats().sent == 20, 30), plog.stats()
        recovery_s = time.monotonic() - back
        assert plog.stats().deliverable
        assert plog.close(10)
    finally:
        plog.close(1)
        if relay is not None:
            relay.close()
    s = plog.stats()
    assert (s.sent, s.overflow, s.abandoned) == (20, 0, 0) and balanced(s)
    assert set(keys_in(ptopic, broker, 20)) == {r.request_id for r in recs}
    assert recovery_s < 15


def test_repointing_a_log_from_a_dead_broker(ptopic: str, broker: KafkaSettings) -> None:
    plog = ProvenanceLog(KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}"), topic=ptopic).start()
    try:
        recs = [make(u) for u in range(10)]
        for rec in recs:
            plog.record(rec)
        time.sleep(0.5)
        assert plog.stats().sent == 0
        plog.repoint(broker)
        assert wait_for(lambda: plog.stats().sent == 10, 30), plog.stats()
    finally:
        assert plog.close(10)
    assert balanced(plog.stats())
    assert sorted(keys_in(ptopic, broker, 10)) == sorted(r.request_id for r in recs)


# --- explain ----------------------------------------------------------------------------------


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelRegistry]:
    """A fresh MLflow registry in a temp SQLite file."""
    monkeypatch.setenv("RECSYS_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    monkeypatch.setenv("RECSYS_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("RECSYS_RANK_MODEL_NAME", "t-provenance")
    yield ModelRegistry.open(RankSettings())


def register_tiny_model(registry: ModelRegistry, tmp_path: Path) -> Provenance:
    """Train a 3-tree LightGBM model on random data and register it with a real provenance record."""
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    params = {"objective": "regression", "num_leaves": 4, "num_threads": 1, "verbosity": -1}
    booster = lgb.train(params, lgb.Dataset(x, x[:, 0]), num_boost_round=3)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    booster.save_model(str(model_dir / MODEL_FILE))
    (model_dir / META_FILE).write_text(json.dumps({"features": [f"f{i}" for i in range(5)]}))

    table = tmp_path / "var" / "offline" / "user_watch_stats"
    table.mkdir(parents=True)
    times = [datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 9, tzinfo=UTC)]
    ts = pa.array(times, pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({"user_id": [1, 2], "event_timestamp": ts}), table / "a.parquet")
    snapshot = data_snapshot({"user_watch_stats": table}, tmp_path / "var")
    provenance = Provenance.collect(
        REPO, "ranker_v1", tmp_path / "no-feast-registry.db", snapshot, {"lam": 0.2}
    )
    registry.register(model_dir, provenance, {NDCG20: 0.3, COST20: 1.0, P99_MS: 2.0})
    return provenance


def test_explain_names_the_commit_and_data_of_the_version_that_answered(
    ptopic: str, broker: KafkaSettings, registry: ModelRegistry, tmp_path: Path
) -> None:
    provenance = register_tiny_model(registry, tmp_path)
    answered = make(42, model_name=registry.name, model_version=1)
    deleted = make(43, model_name=registry.name, model_version=9)
    with ProvenanceLog(broker, topic=ptopic) as plog:
        plog.record(answered)
        plog.record(deleted)
        assert wait_for(lambda: plog.stats().sent == 2, 30)

    # A restarted server has an empty index: the record comes from the topic.
    fresh = ProvenanceLog(broker, topic=ptopic)
    out = fresh.explain(answered.request_id, registry, timeout_s=20)
    assert out["record"] == answered.to_dict()
    model = out["model"]
    assert (model["name"], model["version"]) == (registry.name, 1)
    assert re.fullmatch(r"[0-9a-f]{40}", model["code"]["git_commit"])
    assert model["code"] == {"git_commit": provenance.git_commit, "git_dirty": provenance.git_dirty}
    assert model["features"] == {"feature_service": "ranker_v1", "feast_registry_version": "unknown"}
    assert model["training_data"] == {
        "files": 1,
        "rows": 2,
        "rows_by_table": {"user_watch_stats": 2},
        "time_min": "2026-01-01T00:00:00+00:00",
        "time_max": "2026-01-09T00:00:00+00:00",
        "content_hash": provenance.data.content_hash,
    }
    assert model["params"] == {"lam": 0.2} and model["metrics"][NDCG20] == pytest.approx(0.3)

    gone = fresh.explain(deleted.request_id, registry, timeout_s=20)
    assert gone["record"]["model_version"] == 9 and "9" in gone["model"]["error"]
