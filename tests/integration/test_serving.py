"""The recommendation API on real Redis, Feast, MLflow and Kafka: format, cold start, outages, swaps, provenance.

A small world: 60 users x 90 movies of sessions, their online features written through Feast,
two real LightGBM rankers with candidate indexes registered in a real MLflow registry.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import redis
import uvicorn
from fastapi.testclient import TestClient

from events.metadata import GENRES
from feature_repo import online_marker
from ranking import columns as C  # noqa: N812
from ranking.candidate_index import INDEX_DIR, CandidateIndex
from ranking.candidates import ALSConfig
from ranking.provenance import Provenance
from ranking.ranker import Ranker, RankerParams
from ranking.registry import ModelRegistry
from ranking.settings import RankSettings
from ranking.transforms import FEATURE_COLUMNS, FEATURE_SERVICE
from recsys.training import snapshot
from serving.app import create_app
from serving.settings import ServingSettings
from tests.integration.conftest import StackInfo, free_port, private_redis_server
from tests.integration.test_feast_repo import db_url

REPO = Path(__file__).resolve().parents[2]
TEST_DB = 6
SLUG = r"[a-z0-9+_.\-]+"
EXPERIMENTS = """
experiments:
  - name: ab
    salt: test-salt
    enabled: true
    arms:
      - {name: control, weight: 50, model: champion}
      - {name: treatment, weight: 50, model: challenger, lam: 0.5}
"""


@dataclass
class World:
    var: Path
    redis_url: str
    sessions: pd.DataFrame
    recent: dict[int, list[str]]
    versions: list[int]
    settings: ServingSettings


def _sessions() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 2500
    start = pd.Timestamp("2026-10-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 9 * 86_400, n), unit="s")
    minutes = rng.integers(1, 120, n)
    return pd.DataFrame(
        {
            C.USER: rng.integers(1, 61, n).astype(np.int64),
            C.ITEM: [f"movie+{m}+{1950 + m % 70}" for m in np.minimum(rng.zipf(1.2, n), 90)],
            C.MINUTES: minutes,
            C.START_TS: start,
            C.END_TS: start + pd.to_timedelta(minutes, unit="m"),
        }
    )


def write_online(store: Any, sessions: pd.DataFrame, recent: dict[int, list[str]]) -> None:
    """Online features for every user and movie of the world, through Feast."""
    now = pd.Timestamp.now(tz="UTC").floor("us")
    users = sorted(recent)
    movies = sorted(set(sessions[C.ITEM]))
    rng = np.random.default_rng(3)

    def frame(view: str, key: str, ids: list[Any]) -> pd.DataFrame:
        data: dict[str, Any] = {key: ids, "event_timestamp": [now] * len(ids), "created": [now] * len(ids)}
        for f in store.get_feature_view(view).features:
            kind = str(f.dtype)
            if f.name == "recent_movie_ids":
                data[f.name] = [recent[u] for u in ids]
            elif f.name == "genres":
                data[f.name] = [[GENRES[i % len(GENRES)]] for i in range(len(ids))]
            elif f.name == "genre_affinity":
                data[f.name] = [list(rng.dirichlet(np.ones(len(GENRES)))) for _ in ids]
            elif "Int" in kind:
                data[f.name] = rng.integers(1, 1_000, len(ids))
            elif "Float" in kind:
                data[f.name] = rng.random(len(ids)) * 5 + 0.1
            elif "Bool" in kind:  # movie_metadata.adult: no adult titles in this world
                data[f.name] = [False] * len(ids)
            else:
                data[f.name] = ["x"] * len(ids)
        return pd.DataFrame(data)

    for view in ("user_watch_stats", "user_rating_stats", "user_profile"):
        store.write_to_online_store(view, frame(view, "user_id", users))
    for view in ("movie_popularity", "movie_rating_stats", "movie_metadata"):
        store.write_to_online_store(view, frame(view, "movie_id", movies))


def train_model(sessions: pd.DataFrame, out: Path, seed: int, with_index: bool = True) -> Path:
    """A real (tiny) LambdaRank model and the candidate index it serves with."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(800, len(FEATURE_COLUMNS))).astype(np.float32)
    y = (x[:, seed % 5] > 0.3).astype(np.int64) + (x[:, 20] > 1).astype(np.int64)
    ranker = Ranker.train(
        x, y, np.full(40, 20), 1.0, RankerParams(n_estimators=8, num_threads=1), default_lambda=0.05
    )
    ranker.save(out)
    if with_index:
        index = CandidateIndex.build(
            sessions, pd.Timestamp("2026-10-11", tz="UTC"), ALSConfig(factors=4, iterations=3)
        )
        index.save(out / INDEX_DIR)
    return out


def register(var: Path, model_dir: Path) -> int:
    registry = ModelRegistry.open(RankSettings(RECSYS_VAR_DIR=var))  # type: ignore[call-arg]
    prov = Provenance.collect(REPO, FEATURE_SERVICE, var / "feast" / "registry.db", snapshot(var / "offline"))
    return int(registry.register(model_dir, prov, {"ndcg20": 0.3, "cost20": 1.0, "p99_ms": 5.0}).version)


def build_world(var: Path, url: str, models: Path, seeds: tuple[int, ...] = (1, 2)) -> tuple[
    pd.DataFrame, dict[int, list[str]], list[int]
]:  # fmt: skip
    """The small world on disk and in Redis db `url` (flushed): sessions, online features, rankers (first promoted)."""
    from ingestion.feast_bridge import open_feature_store

    redis.Redis.from_url(url).flushdb()
    sessions = _sessions()
    part = var / "offline" / "sessions" / "date=2026-10-01"
    part.mkdir(parents=True)
    sessions.to_parquet(part / "sessions.parquet")
    recent = {
        int(str(u)): g.sort_values(C.END_TS)[C.ITEM].tolist()[-5:][::-1] for u, g in sessions.groupby(C.USER)
    }
    write_online(open_feature_store(var, url), sessions, recent)
    online_marker.mark(
        redis.Redis.from_url(url)
    )  # written whole by hand: no rebuild from the (empty) offline store
    versions = [register(var, train_model(sessions, models / f"m{i}", seed=i)) for i in seeds]
    registry = ModelRegistry.open(RankSettings(RECSYS_VAR_DIR=var))  # type: ignore[call-arg]
    assert registry.promote(versions[0]).accepted
    return sessions, recent, versions


@pytest.fixture(scope="module")
def world(stack: StackInfo, tmp_path_factory: pytest.TempPathFactory) -> World:
    var = tmp_path_factory.mktemp("serving") / "var"
    url = db_url(stack.redis_url, TEST_DB)
    sessions, recent, versions = build_world(var, url, tmp_path_factory.mktemp("models"))
    experiments = var / "experiments.yaml"
    experiments.write_text(EXPERIMENTS)
    settings = ServingSettings(  # type: ignore[call-arg]
        RECSYS_VAR_DIR=var,
        RECSYS_REDIS_URL=url,
        experiments_file=experiments,
        registry_poll_s=0.3,
        movie_refresh_s=1.0,
        breaker_cooldown_s=0.5,
    )
    return World(var, url, sessions, recent, versions, settings)


def test_answer_is_one_line_of_at_most_20_unseen_ids_with_routing_headers(world: World) -> None:
    with TestClient(create_app(world.settings)) as client:
        assert client.get("/readyz").status_code == 200
        for user in (1, 2, 3, 17):
            response = client.get(f"/recommend/{user}")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain")
            body = response.content.decode()
            ids = body.split(",")
            assert body == ",".join(ids) and " " not in body and "\n" not in body
            assert 1 <= len(ids) <= 20 and len(set(ids)) == len(ids)
            assert all(pd.Series(ids).str.fullmatch(SLUG))
            assert not set(ids) & set(world.recent[user]), "recently watched movies are filtered"
            assert response.headers["X-Recommendation-Path"] == "model"
            assert response.headers["X-Model-Version"] == f"v{world.versions[0]}"
            assert response.headers["X-Arm"] in {"control", "treatment"}
            assert len(response.headers["X-Request-Id"]) == 32
        # The same user gets the same arm every time (stable hash of user id and salt).
        arms = {client.get("/recommend/5").headers["X-Arm"] for _ in range(5)}
        assert len(arms) == 1


def test_unknown_user_gets_the_cold_start_list_and_provenance_traces_the_model(world: World) -> None:
    with TestClient(create_app(world.settings)) as client:
        cold = client.get("/recommend/987654321")
        assert cold.status_code == 200 and cold.headers["X-Recommendation-Path"] == "cold_start"
        assert len(cold.text.split(",")) == 20
        answered = client.get("/recommend/7")
        request_id = answered.headers["X-Request-Id"]
        explained = client.get(f"/provenance/{request_id}")
        assert explained.status_code == 200, explained.text
        body = explained.json()
        assert body["record"]["result"] == answered.text.split(",")
        assert body["record"]["model_version"] == world.versions[0]
        assert body["model"]["version"] == world.versions[0]
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], check=True, cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        assert body["model"]["code"]["git_commit"] == commit
        assert body["model"]["features"]["feature_service"] == FEATURE_SERVICE
        assert body["model"]["training_data"]["rows"] > 0
        assert client.get("/provenance/" + "0" * 32).status_code in (404, 504)
        assert client.get("/provenance/not-an-id").status_code == 400


@pytest.fixture
def private_redis(world: World) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A redis-server of this test alone (it is killed or stopped), holding the world's online features."""
    from ingestion.feast_bridge import open_feature_store

    with private_redis_server() as (proc, url):
        write_online(open_feature_store(world.var, url), world.sessions, world.recent)
        yield proc, url


def _timed_paths(client: TestClient, users: list[int]) -> list[str]:
    """Each answer must be a 200 within the SLA; returns their recommendation paths."""
    paths = []
    for user in users:
        t0 = time.perf_counter()
        response = client.get(f"/recommend/{user}")
        elapsed = time.perf_counter() - t0
        assert response.status_code == 200 and response.text, response.text
        assert elapsed < 0.6, f"{elapsed * 1000:.0f} ms"
        paths.append(response.headers["X-Recommendation-Path"])
    return paths


def test_killed_redis_degrades_to_fallback_lists_within_the_sla(
    world: World, private_redis: tuple[subprocess.Popen[bytes], str]
) -> None:
    proc, url = private_redis
    settings = world.settings.model_copy(update={"redis_url": url})
    with TestClient(create_app(settings)) as client:
        assert client.get("/recommend/3").headers["X-Recommendation-Path"] == "model"
        proc.kill()
        proc.wait()
        assert set(_timed_paths(client, list(range(1, 61)) * 2)) == {"fallback"}
        metrics = client.get("/metrics").text
        assert "recsys_fallback_total" in metrics and "recsys_feature_errors_total" in metrics


def test_hung_redis_costs_the_timeout_and_answers_come_back_right_after(
    world: World, private_redis: tuple[subprocess.Popen[bytes], str]
) -> None:
    """A stopped (not dead) Redis: requests wait at most the feature timeout, the breaker opens, and
    when Redis wakes up with the late replies of the abandoned reads, each user gets their own features."""
    proc, url = private_redis
    settings = world.settings.model_copy(update={"redis_url": url})
    with TestClient(create_app(settings)) as client:
        before = {u: client.get(f"/recommend/{u}").text for u in range(1, 21)}
        os.kill(proc.pid, signal.SIGSTOP)
        assert set(_timed_paths(client, list(range(1, 41)))) == {"fallback"}
        metrics = client.get("/metrics").text
        assert 'recsys_feature_errors_total{reason="timeout"}' in metrics
        assert 'recsys_feature_errors_total{reason="breaker_open"}' in metrics
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(settings.breaker_cooldown_s + 0.2)
        deadline = time.monotonic() + 10
        while client.get("/recommend/1").headers["X-Recommendation-Path"] != "model":
            assert time.monotonic() < deadline, "the breaker never closed after Redis came back"
            time.sleep(0.1)
        # Same features in, same list out: no late reply reached the wrong request.
        assert {u: client.get(f"/recommend/{u}").text for u in range(1, 21)} == before


class Server:
    """The app under a real uvicorn server in a thread (real HTTP, real lifespan)."""

    def __init__(self, settings: ServingSettings) -> None:
        self.port = free_port()
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the API did not become ready")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def _admin_models(url: str) -> dict[str, Any]:
    """The service's /admin/models answer."""
    answer = httpx.get(f"{url}/admin/models", headers={"Authorization": "Bearer recsys-local-admin"})
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def test_promotion_failed_load_and_rollback_under_load_without_a_failed_answer(
    world: World, tmp_path: Path
) -> None:
    registry = ModelRegistry.open(RankSettings(RECSYS_VAR_DIR=world.var))  # type: ignore[call-arg]
    broken = register(world.var, train_model(world.sessions, tmp_path / "broken", seed=3, with_index=False))
    statuses: list[int] = []
    seen: list[str] = []  # the model version of each answer the model made
    paths: list[str] = []
    stop = threading.Event()
    # A generous feature timeout: on a loaded CI machine a 50 ms read can time out, and a fallback
    # answer names no model version (the degradation paths have tests of their own).
    settings = world.settings.model_copy(
        update={"experiments_file": tmp_path / "none.yaml", "feature_timeout_ms": 2000.0}
    )

    def load(url: str) -> None:
        with httpx.Client(base_url=url, timeout=5) as client:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    r = client.get(f"/recommend/{1 + i % 60}")
                    statuses.append(r.status_code)
                    paths.append(r.headers.get("X-Recommendation-Path", "?"))
                    if paths[-1] == "model":
                        seen.append(r.headers.get("X-Model-Version", "?"))
                except httpx.HTTPError:
                    statuses.append(-1)

    def wait_until(check: Callable[[], bool], failure: Callable[[], str], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, failure()
            time.sleep(0.1)

    def wait_for(version: str) -> None:
        wait_until(
            lambda: bool(seen) and seen[-1] == version, lambda: f"never served {version}; last {seen[-5:]}"
        )

    v1, v2 = world.versions
    answered: list[int] = []  # answers counted at each step: the load must run through every swap
    with Server(settings) as url:
        threads = [threading.Thread(target=load, args=(url,)) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            wait_for(f"v{v1}")
            answered.append(len(statuses))
            assert registry.promote(v2, force=True).accepted
            wait_for(f"v{v2}")
            answered.append(len(statuses))
            # A version whose candidate index is missing: the service keeps v2 and counts the failure.
            assert registry.promote(broken, force=True).accepted
            wait_until(
                lambda: f"v{broken}" in _admin_models(url)["failed"],
                lambda: "the failed load was never reported",
            )
            time.sleep(0.3)  # answers made after the failed load
            assert seen[-1] == f"v{v2}", seen[-5:]
            answered.append(len(statuses))
            assert "recsys_model_load_failures_total" in httpx.get(f"{url}/metrics").text
            registry.rollback()  # broken -> v2
            registry.rollback()  # v2 -> v1
            wait_for(f"v{v1}")
            answered.append(len(statuses))
            wait_until(lambda: len(statuses) > 200, lambda: f"only {len(statuses)} answers")
        finally:
            stop.set()
            for t in threads:
                t.join(10)
            champion = registry.resolve("champion")
            if champion is None or champion.version != v1:  # leave the module's world as it was
                registry.promote(v1, force=True)
    assert all(b > a for a, b in itertools.pairwise(answered)), f"answers per step: {answered}"
    assert set(statuses) == {200}, f"non-200 answers: {sorted(set(statuses))}"
    assert {f"v{v1}", f"v{v2}"} <= set(seen)
    assert paths.count("model") > 0.9 * len(paths), f"paths: {sorted(set(paths))}"


def test_background_refresh_reads_the_movie_table_in_a_child_process(world: World) -> None:
    with TestClient(create_app(world.settings)) as client:
        rt = client.app.state.rt  # type: ignore[attr-defined]
        before = rt.table
        assert rt.refresh_table(background=True), rt.table_error
        assert rt.table.generation == before.generation + 1
        assert list(rt.table.ids) == list(before.ids)
        np.testing.assert_array_equal(
            rt.table.columns["movie_metadata__cost"], before.columns["movie_metadata__cost"]
        )
        assert client.get("/recommend/4").headers["X-Recommendation-Path"] == "model"
        # The periodic registry refresh rebuilds the user-feature layout from the (re-read) registry.
        layout = rt.users.layout
        rt.refresh_registry()
        assert rt.users.layout is not layout and rt.users.layout == layout
        assert client.get("/recommend/4").headers["X-Recommendation-Path"] == "model"


def test_a_write_of_movie_features_reaches_the_in_memory_table_within_seconds(world: World) -> None:
    """The ingestion writer bumps the movie-change counter; every worker re-reads its table soon after."""
    import pyarrow as pa

    from ingestion.feast_bridge import open_feature_store
    from ingestion.online import FeastOnlineWriter

    settings = world.settings.model_copy(
        update={"movie_refresh_s": 3600.0, "movie_check_s": 0.1, "movie_min_refresh_s": 0.0}
    )
    store = open_feature_store(world.var, world.redis_url)
    writer = FeastOnlineWriter(store, redis.Redis.from_url(world.redis_url))
    view = store.get_feature_view("movie_metadata")

    def write_cost(movie: str, cost: float) -> None:
        current = store.get_online_features(
            features=[f"movie_metadata:{f.name}" for f in view.features], entity_rows=[{"movie_id": movie}]
        ).to_dict()
        row = {k: v[0] for k, v in current.items()} | {"cost": cost}
        now = pd.Timestamp.now(tz="UTC").floor("us")
        frame = pd.DataFrame([row | {"event_timestamp": now, "created": now}])
        writer.write("movie_metadata", pa.Table.from_pandas(frame, preserve_index=False))

    with TestClient(create_app(settings)) as client:
        rt = client.app.state.rt  # type: ignore[attr-defined]
        movie, old = str(rt.table.ids[0]), float(rt.table.columns["movie_metadata__cost"][0])
        generation = rt.table.generation
        try:
            write_cost(movie, 123.25)
            deadline = time.monotonic() + 60.0  # the first background read also starts the refresher process
            while rt.table.columns["movie_metadata__cost"][0] != 123.25 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert rt.table.columns["movie_metadata__cost"][0] == 123.25
            assert rt.table.generation > generation
            assert 'recsys_movie_table_refreshes_total{trigger="changed"}' in client.get("/metrics").text
            assert client.get("/recommend/4").status_code == 200
        finally:
            write_cost(movie, old)


def _sample(metrics: str, name: str) -> float:
    """The value of an unlabelled sample in Prometheus text (0 when absent)."""
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_a_flushed_online_store_is_reported_not_passed_off_as_model_answers(
    world: World, private_redis: tuple[subprocess.Popen[bytes], str]
) -> None:
    """Redis restarted empty: known users are scored without features, and the answer, the
    provenance record and the metrics say so (before: path `model`, and every user the same hash)."""
    _proc, url = private_redis
    settings = world.settings.model_copy(update={"redis_url": url, "movie_refresh_s": 3600.0})
    users = list(range(1, 11))
    with TestClient(create_app(settings)) as client:
        assert {client.get(f"/recommend/{u}").headers["X-Recommendation-Path"] for u in users} == {"model"}
        # The counter is process-wide: other tests' in-process apps may have counted before this one.
        before = _sample(client.get("/metrics").text, "recsys_missing_user_features_total")
        redis.Redis.from_url(url).flushall()
        answers = {u: client.get(f"/recommend/{u}") for u in users}
        for user, response in answers.items():
            assert response.status_code == 200
            assert response.headers["X-Recommendation-Path"] == "model_no_features", user
            assert response.headers["X-Model-Version"] == f"v{world.versions[0]}"
            ids = response.text.split(",")
            assert len(ids) == 20 and len(set(ids)) == 20
            record = client.get(f"/provenance/{response.headers['X-Request-Id']}").json()["record"]
            assert record["fallback"] == "no_user_features"
            assert record["features_hash"] is None, "no features were read: no hash of all-null values"
            assert record["model_version"] == world.versions[0]
        assert len({a.text for a in answers.values()}) > 1, "still personal: the model's candidate index"
        cold = client.get("/recommend/987654321")  # a new user stays a cold start, not a lost one
        assert cold.headers["X-Recommendation-Path"] == "cold_start"
        metrics = client.get("/metrics").text
        assert _sample(metrics, "recsys_missing_user_features_total") - before == 10.0
        assert 'path="model_no_features"' in metrics


def test_kill_9_of_the_service_then_restart_measures_its_rto(world: World, tmp_path: Path) -> None:
    """Serving keeps no state of its own: after kill -9 a restart answers again, and answers made before are traceable."""
    port = free_port()
    env = {**os.environ, "RECSYS_VAR_DIR": str(world.var), "RECSYS_REDIS_URL": world.redis_url,
           "RECSYS_SERVING_EXPERIMENTS_FILE": str(world.settings.experiments_file)}  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def start() -> tuple[subprocess.Popen[bytes], float]:
        t0 = time.monotonic()
        with (tmp_path / "serve.log").open("ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "recsys.cli", "serve", "--port", str(port), "--workers",
                                     "2"], env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip
        deadline = t0 + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    return proc, time.monotonic() - t0
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            time.sleep(0.2)
        raise AssertionError("service not ready within 180 s")

    proc, first_s = start()
    answered = httpx.get(f"{base}/recommend/3", timeout=5)
    assert answered.status_code == 200
    time.sleep(2)  # the delivery thread indexes the record
    os.killpg(proc.pid, signal.SIGKILL)  # the master and both workers, no graceful shutdown
    proc.wait(30)
    killed_at = time.monotonic()
    proc, restart_s = start()
    try:
        rto = time.monotonic() - killed_at
        assert httpx.get(f"{base}/recommend/3", timeout=5).status_code == 200
        found = httpx.get(f"{base}/provenance/{answered.headers['X-Request-Id']}", timeout=10)
        assert found.status_code == 200, found.text
        print(f"serving kill -9: ready again {restart_s:.1f} s after the restart (first start {first_s:.1f} s); "
              f"RTO {rto:.1f} s; answers made before the kill still traceable")  # fmt: skip
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
