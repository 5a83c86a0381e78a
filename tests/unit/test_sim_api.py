"""The metadata API: records, batches with unknown ids, clear 4xx errors, fault injection, schema drift."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from events.metadata import MovieMeta, UserMeta
from simulator.api import create_app
from simulator.drift import SchemaChange
from simulator.settings import SimSettings
from simulator.state import TrafficState, write_state
from simulator.store import save_world
from simulator.world import World, generate_world

MOVIE_FIELDS = {
    "id", "tmdb_id", "imdb_id", "title", "genres", "overview", "popularity", "vote_average", "vote_count",
    "release_date", "runtime", "original_language", "cost", "adult",
}  # fmt: skip


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(500, 120, seed=31)


@pytest.fixture(scope="module")
def var(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    var = tmp_path_factory.mktemp("var")
    save_world(world, var / "sim")
    return var


def _client(var: Path, **settings: Any) -> TestClient:
    return TestClient(create_app(SimSettings(var_dir=var, **settings)))


@pytest.fixture(scope="module")
def client(var: Path) -> Iterator[TestClient]:
    with _client(var) as c:  # the lifespan loads the world
        yield c


def test_user_record(client: TestClient, world: World) -> None:
    r = client.get("/user/1")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"user_id", "age", "occupation", "gender", "likes", "dislikes"}
    assert body["user_id"] == 1 and body["age"] == world.population.age[0]
    assert body["gender"] in ("M", "F") and body["likes"] == world.population.likes[0]
    UserMeta.model_validate(body)  # the platform's own reading of the contract


def test_movie_record(client: TestClient, world: World) -> None:
    slug = world.catalog.slug[0]
    r = client.get(f"/movie/{slug}")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == MOVIE_FIELDS
    assert body["id"] == slug and body["title"] == world.catalog.title[0]
    assert all(set(g) == {"id", "name"} for g in body["genres"])
    assert body["cost"] == pytest.approx(float(world.catalog.cost[0]), abs=1e-3)
    assert MovieMeta.model_validate(body).genres


def test_batches_keep_order_and_mark_unknown_ids(client: TestClient, world: World) -> None:
    users = client.get("/user/3,999999,1").json()
    assert [u["user_id"] for u in users] == [3, 999999, 1]
    assert users[1] == {"user_id": 999999, "error": "not found"}
    assert "age" in users[0] and "age" in users[2]
    slugs = world.catalog.slug
    movies = client.get(f"/movie/{slugs[1]},no+such+movie+1999,{slugs[2]}").json()
    assert [m["id"] for m in movies] == [slugs[1], "no+such+movie+1999", slugs[2]]
    assert movies[1]["error"] == "not found" and "cost" in movies[2]


def test_single_unknown_id_is_404_json(client: TestClient) -> None:
    for path in ("/user/999999", "/movie/no+such+movie+1999"):
        r = client.get(path)
        assert r.status_code == 404
        assert r.json()["error"] == "not_found"


@pytest.mark.parametrize(
    "path",
    [
        "/user/abc",
        "/user/1,,2",
        "/user/-3",
        "/user/1,x",
        "/movie/bad%20id",
        "/movie/a/b",
        "/movie/a=1",
        "/user/",
    ],
)
def test_malformed_ids_are_400_json(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code in (400, 404), path
    if path != "/user/":
        assert r.status_code == 400 and r.json()["error"] == "malformed_id", path


def test_more_than_200_ids_is_400(client: TestClient) -> None:
    assert client.get("/user/" + ",".join(str(i) for i in range(1, 201))).status_code == 200
    r = client.get("/user/" + ",".join(str(i) for i in range(1, 202)))
    assert r.status_code == 400 and r.json()["error"] == "too_many_ids"


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "users": 500, "movies": 120, "seed": 31}


def test_injected_5xx_and_latency(var: Path) -> None:
    with _client(var, api_error_rate=1.0) as c:
        r = c.get("/user/1")
        assert r.status_code == 503 and r.json()["error"] == "injected_fault"
    with _client(var, api_latency_ms=80) as c:
        t0 = time.perf_counter()
        assert c.get("/user/1").status_code == 200
        assert time.perf_counter() - t0 >= 0.08


def test_missing_and_renamed_fields_keep_the_id(var: Path, world: World) -> None:
    with _client(var, api_drop_field_rate=1.0, api_rename_fields={"age": "user_age", "user_id": "uid"}) as c:
        users = c.get("/user/1,2,3").json()
    for u in users:
        assert "user_id" in u and "age" not in u
        assert len(u) == 5  # six fields, one dropped at random (possibly the renamed one)
    with _client(var, api_drop_field_rate=1.0) as c:
        movie = c.get(f"/movie/{world.catalog.slug[0]}").json()
    assert movie["id"] == world.catalog.slug[0] and len(movie) == len(MOVIE_FIELDS) - 1


def test_scheduled_schema_change_follows_the_simulated_clock(var: Path, world: World) -> None:
    start = datetime(2026, 6, 1, tzinfo=UTC)
    change = SchemaChange(start=start, rename={"vote_average": "rating_average"}, drop=["overview"])
    slug = world.catalog.slug[0]

    def at(when: datetime) -> dict[str, Any]:
        write_state(var / "sim", TrafficState(sim_now_ns=int(when.timestamp() * 1e9), next_user=1,
                                              world_seed=31, world_users=500))  # fmt: skip
        with _client(var, drifts=[change]) as c:
            body: dict[str, Any] = c.get(f"/movie/{slug}").json()
            return body

    before, after = at(start - timedelta(hours=1)), at(start + timedelta(hours=1))
    (var / "sim" / "state.json").unlink()
    assert "vote_average" in before and "overview" in before
    assert "rating_average" in after and "vote_average" not in after and "overview" not in after
