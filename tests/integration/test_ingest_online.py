"""Ingestion to Feast's online store on a real Redis: fresh values online, and an outage that heals."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from events import format_line
from events.kafka import ensure_topics, make_producer
from events.types import RateEvent, WatchEvent
from ingestion.feast_bridge import open_feature_store
from ingestion.online import FeastOnlineWriter
from ingestion.settings import IngestSettings
from ingestion.worker import IngestWorker
from recsys.stack.redis_server import RedisServer
from tests.integration.conftest import StackInfo

pytestmark = pytest.mark.integration
T0 = 1_795_600_000 * 10**9


def _produce(topic: str, user: int, movie: str, minutes: int, start_ns: int) -> None:
    producer = make_producer()
    for m in range(minutes):
        line = format_line(WatchEvent(start_ns + m * 60 * 10**9, user, movie, m))
        producer.produce(topic, line.encode(), key=str(user).encode())
    producer.produce(topic, format_line(RateEvent(start_ns, user, movie, 4)).encode(), key=str(user).encode())
    assert producer.flush(30) == 0


def _online(store: object, user: int) -> dict[str, object]:
    rows = store.get_online_features(  # type: ignore[attr-defined]
        features=[
            "user_watch_stats:watch_count_total",
            "user_watch_stats:recent_movie_ids",
            "user_watch_stats:watch_minutes_7d",
            "user_rating_stats:rating_count",
        ],
        entity_rows=[{"user_id": user}],
    ).to_dict()
    return {k: v[0] for k, v in rows.items()}


def test_fresh_values_online_and_an_outage_heals(
    stack: StackInfo, own_redis: RedisServer, tmp_path: Path
) -> None:
    topic = f"movielog-test-{uuid.uuid4().hex[:8]}"
    ensure_topics({topic: 1})
    var = tmp_path / "var"
    store = open_feature_store(var, own_redis.url)
    settings = IngestSettings(
        RECSYS_VAR_DIR=var,
        topic=topic,
        group_id=f"g-{uuid.uuid4().hex[:6]}",
        batch_max_seconds=0.3,
        metrics_port=0,
        movie_job=False,
    )  # type: ignore[call-arg]
    worker = IngestWorker(settings, online=FeastOnlineWriter(store))

    # 1. What was just ingested is online.
    _produce(topic, 101, "the+green+mile+1999", 12, T0)
    worker.run(idle_exit_s=2, max_seconds=60)
    got = _online(store, 101)
    assert got["watch_count_total"] == 1 and got["watch_minutes_7d"] == 12.0
    assert got["recent_movie_ids"] == ["the+green+mile+1999"] and got["rating_count"] == 1
    assert worker.freshness_samples and max(worker.freshness_samples) < 30

    # 2. Redis goes away: landing continues, pushes wait.
    own_redis.down()
    _produce(topic, 202, "spider-man+3+2007", 5, T0 + 3600 * 10**9)
    stats = worker.run(idle_exit_s=2, max_seconds=8)
    assert stats.pushes_failed >= 1 and worker.pending_push_count() >= 1
    raw = list((var / "offline" / "raw" / "watch").rglob("*.parquet"))
    assert sum(1 for _ in raw) >= 2, "offline landing must continue while Redis is down"

    # 3. Redis is back (empty: a restart without persistence): pending users are pushed and a
    #    materialisation restores everyone else.
    own_redis.up()
    stats = worker.run(idle_exit_s=2, max_seconds=60)
    assert worker.pending_push_count() == 0 and stats.catch_ups >= 1
    assert _online(store, 202)["watch_minutes_7d"] == 5.0
    assert _online(store, 101)["watch_count_total"] == 1
