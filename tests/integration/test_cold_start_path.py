"""Done-when: an account event through the real ingestion worker stores a vector that serving then uses.

Real Kafka and Redis (the `stack` fixture), the simulator's metadata API as a process, the
ingestion worker built as `recsys ingest` builds it (enrichment, self-descriptions, Feast push),
a registered champion, and the FastAPI app with the treatment's `cold_start: self_description`
for everyone. A few world users watch movies (so the catalogue and its titles are known); then
one user creates an account and nothing else. That user's first request must be answered from
the stored description (not the popular list), and the headers and provenance must say so.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import redis
from fastapi.testclient import TestClient

from events.codec import format_line
from events.kafka import ensure_topics, make_producer
from events.types import AccountEvent, WatchEvent
from ingestion.factory import build_worker
from ingestion.settings import IngestSettings
from ranking import columns as C  # noqa: N812
from ranking.registry import ModelRegistry
from ranking.settings import RankSettings
from recsys.services import ServiceProcess, metadata_api
from serving.app import create_app
from serving.settings import ServingSettings
from simulator.store import save_world
from simulator.world import World, generate_world
from tests.integration.conftest import StackInfo, free_port
from tests.integration.test_feast_repo import db_url
from tests.integration.test_serving import register, train_model

pytestmark = pytest.mark.integration
TEST_DB = 12
USERS, MOVIES = 120, 80
WATCHERS = range(1, 13)
"""World users whose watching makes the catalogue (and its titles) known to ingestion."""
EXPERIMENTS = """
experiments:
  - name: cold
    salt: cold-1
    enabled: true
    arms:
      - {name: treatment, weight: 1, model: champion, cold_start: self_description}
"""


@dataclass(frozen=True)
class Sim:
    """The simulated world, where it is stored and its metadata API."""

    world: World
    var: Path
    meta_url: str


@pytest.fixture(scope="module")
def sim(stack: StackInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    var = tmp_path_factory.mktemp("cold-world") / "var"
    world = generate_world(USERS, MOVIES, seed=5)
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


def _newcomers(sim: Sim) -> list[tuple[int, str]]:
    """World users (not watchers) by the length of their likes answer, longest (most informative) first."""
    ids = [u for u in range(1, USERS + 1) if u not in WATCHERS]
    records = httpx.get(f"{sim.meta_url}/user/{','.join(map(str, ids))}", timeout=10).json()
    ranked = sorted(records, key=lambda r: -len(r.get("likes") or ""))
    return [(int(r["user_id"]), str(r["likes"])) for r in ranked]


def _sessions(movies: list[str]) -> pd.DataFrame:
    """Training sessions of index-only users (ids the world does not have) over the world's movies."""
    rng = np.random.default_rng(4)
    n = 1500
    start = pd.Timestamp("2026-10-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 9 * 86_400, n), unit="s")
    minutes = rng.integers(1, 120, n)
    return pd.DataFrame(
        {
            C.USER: rng.integers(50_001, 50_061, n).astype(np.int64),
            C.ITEM: [movies[i] for i in np.minimum(rng.zipf(1.3, n), len(movies)) - 1],
            C.MINUTES: minutes,
            C.START_TS: start,
            C.END_TS: start + pd.to_timedelta(minutes, unit="m"),
        }
    )


def test_an_account_event_stores_a_description_that_serving_uses(
    sim: Sim, stack: StackInfo, tmp_path: Path
) -> None:
    t_start = time.perf_counter()
    var = tmp_path / "var"
    url = db_url(stack.redis_url, TEST_DB)
    redis.Redis.from_url(url).flushdb()
    movies = list(sim.world.catalog.slug)
    (newcomer, likes), (unstored, _) = _newcomers(sim)[:2]

    # 1. The log: watchers stream minutes of many movies, then the newcomer creates an account.
    topic = f"cold-{uuid.uuid4().hex[:8]}"
    ensure_topics({topic: 1})
    producer = make_producer()
    t0 = (int(time.time()) - 2 * 86_400) * 10**9
    for i, user in enumerate(WATCHERS):
        for j in range(6):
            movie = movies[(i * 6 + j) % len(movies)]
            for minute in range(3):
                ts = t0 + (i * 6 + j) * 600 * 10**9 + minute * 60 * 10**9
                producer.produce(topic, format_line(WatchEvent(ts, user, movie, minute)).encode())
    producer.produce(topic, format_line(AccountEvent(t0 + 86_400 * 10**9, newcomer)).encode())
    assert producer.flush(30) == 0

    # 2. The real worker: lands, enriches, describes (encoder loaded on first use), pushes online.
    ingest = IngestSettings(RECSYS_VAR_DIR=var, RECSYS_REDIS_URL=url, topic=topic, group_id=f"g-{topic}",
                            metrics_port=0, RECSYS_SIM_API_URL=sim.meta_url)  # type: ignore[call-arg]  # fmt: skip
    worker = build_worker(ingest)
    t_ingest = time.perf_counter()
    worker.run(until_drained=True, max_seconds=60)
    ingest_s = time.perf_counter() - t_ingest
    assert worker.descriptions is not None and newcomer in worker.descriptions.described
    stored = list((var / "offline" / "features" / "user_description").glob(f"{topic}-*.parquet"))
    assert stored, "the description row landed offline"

    # 3. A champion over the world's movies, and serving with self_description for everyone.
    version = register(var, train_model(_sessions(movies), tmp_path / "model", seed=1))
    assert ModelRegistry.open(RankSettings(RECSYS_VAR_DIR=var)).promote(version).accepted  # type: ignore[call-arg]
    experiments = var / "experiments.yaml"
    experiments.write_text(EXPERIMENTS)
    settings = ServingSettings(RECSYS_VAR_DIR=var, RECSYS_REDIS_URL=url, experiments_file=experiments,
                               registry_poll_s=5.0, movie_refresh_s=60.0,
                               metadata_url=sim.meta_url)  # type: ignore[call-arg]  # fmt: skip
    with TestClient(create_app(settings)) as client:
        rt = client.app.state.rt  # type: ignore[attr-defined]
        assert rt.cold.wait(60.0), rt.cold.last_error
        assert rt.cold.built is not None and len(rt.table) > 0

        t = time.perf_counter()
        nobody = client.get("/recommend/999999999")  # stored nowhere, unknown to the API: the popular list
        popular_ms = (time.perf_counter() - t) * 1000
        assert nobody.headers["X-Cold-Start"] == "popular:inline_not_found"
        latencies = []
        for _ in range(5):
            t = time.perf_counter()
            answer = client.get(f"/recommend/{newcomer}")
            latencies.append((time.perf_counter() - t) * 1000)
        assert answer.status_code == 200
        assert answer.headers["X-Recommendation-Path"] == "cold_start"
        outcome = "degraded_encoder" if rt.cold.built.degraded else "stored_vector"
        assert answer.headers["X-Cold-Start"] == f"self_description:{outcome}", likes
        ids = answer.text.split(",")
        assert len(ids) == 20 and len(set(ids)) == 20
        assert ids != nobody.text.split(","), "the description changed the answer"
        record = client.get(f"/provenance/{answer.headers['X-Request-Id']}").json()["record"]
        assert record["cold_start"] == f"self_description:{outcome}"
        metrics = client.get("/metrics").text
        assert f'recsys_cold_start_outcome_total{{outcome="{outcome}",policy="self_description"}}' in metrics
        assert 'recsys_cold_start_total{policy="self_description"}' in metrics

        # A user whose description row has not landed: read inline from the metadata API and encoded.
        inline = [client.get(f"/recommend/{unstored}") for _ in range(2)]  # the second from the cache
        expected = "inline_encode"
        assert [a.headers["X-Cold-Start"] for a in inline] == [f"self_description:{expected}"] * 2
        assert inline[0].text == inline[1].text != nobody.text
        # The metadata API unreachable: the popular list, within the SLA, and the breaker stops asking.
        from serving.inline_description import InlineDescriber

        rt.cold.inline = InlineDescriber(f"http://127.0.0.1:{free_port()}", 0.15)
        t = time.perf_counter()
        down = [client.get(f"/recommend/{u}").headers["X-Cold-Start"] for u in range(200_001, 200_011)]
        assert set(down) == {"popular:inline_unavailable"} and time.perf_counter() - t < 6 * 0.6
    print(
        f"\nnewcomer {newcomer} likes {likes!r}\n -> {ids[:5]}\n"
        f"ingest {ingest_s:.1f} s, policy build {rt.cold.built.seconds:.2f} s ({rt.cold.built.model_id}), "
        f"cold request in-process {np.median(latencies):.1f} ms median / {max(latencies):.1f} ms max "
        f"(popular answer {popular_ms:.1f} ms), "
        f"test {time.perf_counter() - t_start:.0f} s"
    )
