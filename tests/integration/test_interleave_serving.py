"""Interleaved answers on the real stack: champion and challenger merged by team draft, teams in the provenance record.

The world of `test_serving` (60 users x 90 movies, two real LightGBM rankers in a real MLflow
registry) on its own Redis db and var dir: v1 is champion, v2 challenger, and the experiment
interleaves arm `control` (champion, team A) with `treatment` (challenger, team B).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ranking.registry import ModelRegistry
from ranking.settings import RankSettings
from serving.app import create_app
from serving.runtime import Runtime
from serving.settings import ServingSettings
from tests.integration.conftest import StackInfo
from tests.integration.test_feast_repo import db_url
from tests.integration.test_serving import build_world

TEST_DB = 13
USERS = list(range(1, 61))
INTERLEAVE = """
experiments:
  - name: ranker-il
    salt: il-1
    enabled: true
    kind: interleave
    primary_metric: hit_rate
{stopped}    arms:
      - {{name: control, weight: 1, model: champion}}
      - {{name: treatment, weight: 1, model: challenger}}
"""
ALONE = """
experiments:
  - name: alone
    salt: il-1
    arms:
      - {{name: {arm}, weight: 1, model: {model}}}
"""


@dataclass
class World:
    var: Path
    versions: list[int]
    settings: ServingSettings


@pytest.fixture(scope="module")
def world(stack: StackInfo, tmp_path_factory: pytest.TempPathFactory) -> World:
    var = tmp_path_factory.mktemp("interleave") / "var"
    url = db_url(stack.redis_url, TEST_DB)
    _, _, versions = build_world(var, url, tmp_path_factory.mktemp("interleave-models"))
    registry = ModelRegistry.open(RankSettings(RECSYS_VAR_DIR=var))  # type: ignore[call-arg]
    registry.set_challenger(versions[1])
    experiments = var / "experiments.yaml"
    experiments.write_text(INTERLEAVE.format(stopped=""))
    settings = ServingSettings(  # type: ignore[call-arg]
        RECSYS_VAR_DIR=var,
        RECSYS_REDIS_URL=url,
        experiments_file=experiments,
        registry_poll_s=3600.0,  # the test refreshes models itself
        feature_timeout_ms=2000.0,  # a loaded machine must not turn a model answer into a fallback
    )
    return World(var, versions, settings)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    world.settings.experiments_file.write_text(INTERLEAVE.format(stopped=""))
    with TestClient(create_app(world.settings)) as c:
        assert c.get("/readyz").status_code == 200
        yield c


def runtime(client: TestClient) -> Runtime:
    rt: Runtime = client.app.state.rt  # type: ignore[attr-defined]
    return rt


def switch(client: TestClient, text: str) -> None:
    """Rewrite the experiment file and let the runtime follow it, as every worker does."""
    rt = runtime(client)
    rt.settings.experiments_file.write_text(text)
    assert rt.watch_experiments(), "the edited experiment file was not picked up"


def record(client: TestClient, response: Any) -> dict[str, Any]:
    """The provenance record of an answer, through `GET /provenance/<X-Request-Id>`."""
    found = client.get(f"/provenance/{response.headers['X-Request-Id']}")
    assert found.status_code == 200, found.text
    rec: dict[str, Any] = found.json()["record"]
    return rec


def lists_of(client: TestClient, users: list[int]) -> dict[int, list[str]]:
    """Each user's answer under the current experiment; every one must be the model's."""
    out = {}
    for user in users:
        r = client.get(f"/recommend/{user}")
        assert r.headers["X-Recommendation-Path"] == "model", (user, r.headers)
        out[user] = r.text.split(",")
    return out


def test_interleaved_answers_merge_both_rankers_and_record_the_teams(
    world: World, client: TestClient
) -> None:
    v1, v2 = world.versions
    answers = {u: client.get(f"/recommend/{u}") for u in USERS}
    records = {u: record(client, r) for u, r in answers.items()}
    switch(client, ALONE.format(arm="control", model="champion"))
    own_a = lists_of(client, USERS)
    switch(client, ALONE.format(arm="treatment", model="challenger"))
    own_b = lists_of(client, USERS)
    mixed_users = 0
    for user, response in answers.items():
        ids = response.text.split(",")
        assert response.status_code == 200 and len(ids) == 20 and len(set(ids)) == 20
        headers = response.headers
        assert (headers["X-Arm"], headers["X-Experiment"]) == ("interleave", "ranker-il")
        assert (headers["X-Recommendation-Path"], headers["X-Model-Version"]) == ("model", f"v{v1}")
        rec = records[user]
        assert rec["result"] == ids and rec["arm"] == "interleave" and rec["model_version"] == v1
        assert rec["fallback"] is None
        teams = rec["interleave"]["teams"]
        assert {k: v for k, v in rec["interleave"].items() if k != "teams"} == {
            "a": "control",
            "b": "treatment",
            "a_version": v1,
            "b_version": v2,
        }
        assert len(teams) == 20 and set(teams) == {"A", "B"}
        # Each team's movies are its own ranker's, in its own order (team draft takes its best remaining).
        for team, own in (("A", own_a[user]), ("B", own_b[user])):
            picked = [m for m, t in zip(ids, teams, strict=True) if t == team]
            assert set(picked) <= set(own), (user, team, set(picked) - set(own))
            ranks = [own.index(m) for m in picked]
            assert ranks == sorted(ranks), (user, team)
        mixed_users += own_a[user] != own_b[user]
    assert mixed_users > len(USERS) // 2, "the two rankers should disagree for most users"


def test_cold_users_and_a_stopped_interleave_are_answered_by_control_alone(
    world: World, client: TestClient
) -> None:
    cold = client.get("/recommend/987654321")
    assert cold.headers["X-Recommendation-Path"] == "cold_start" and cold.headers["X-Arm"] == "control"
    rec = record(client, cold)
    assert (rec["arm"], rec["experiment"], rec["interleave"]) == ("control", "ranker-il", None)

    switch(client, INTERLEAVE.format(stopped="    stopped_at: 2026-12-05T12:00:00Z\n    stop_reason: test\n"))
    for user in USERS[:20]:
        r = client.get(f"/recommend/{user}")
        assert (r.headers["X-Arm"], r.headers["X-Experiment"]) == ("control", "ranker-il")
        assert r.headers["X-Model-Version"] == f"v{world.versions[0]}"
        rec = record(client, r)
        assert (rec["arm"], rec["interleave"], rec["fallback"]) == ("control", None, None)
        assert len(r.text.split(",")) == 20


def test_without_the_challenger_loaded_control_answers_alone_and_says_why(
    world: World, client: TestClient
) -> None:
    registry = ModelRegistry.open(RankSettings(RECSYS_VAR_DIR=world.var))  # type: ignore[call-arg]
    rt = runtime(client)
    assert registry.clear_challenger() == world.versions[1]
    try:
        rt.models.refresh()
        assert "challenger" not in rt.models.available()
        r = client.get("/recommend/3")
        assert r.status_code == 200 and len(r.text.split(",")) == 20
        assert r.headers["X-Arm"] == "control" and r.headers["X-Recommendation-Path"] == "model"
        rec = record(client, r)
        assert rec["interleave"] is None
        assert rec["fallback"] == "interleave: challenger not available: control alone"
    finally:
        registry.set_challenger(world.versions[1])
        rt.models.refresh()
    assert client.get("/recommend/3").headers["X-Arm"] == "interleave"


def test_the_cost_of_two_rankings_per_request(world: World, client: TestClient) -> None:
    """Server-side latency (the record's latency_ms) of interleaved answers vs control alone, same users, same app."""
    rt = runtime(client)

    def server_ms(rounds: int = 5) -> list[float]:
        out = []
        for _ in range(rounds):
            for user in USERS:
                rid = client.get(f"/recommend/{user}").headers["X-Request-Id"]
                rec = rt.provenance.lookup(rid)
                assert rec is not None
                out.append(rec.latency_ms)
        return out

    server_ms(1)  # warm both paths' caches
    interleaved = server_ms()
    switch(client, INTERLEAVE.format(stopped="    stopped_at: 2026-12-05T12:00:00Z\n"))
    server_ms(1)
    plain = server_ms()

    def summary(ms: list[float]) -> str:
        q = statistics.quantiles(ms, n=100)
        return f"p50 {statistics.median(ms):.2f} ms, p99 {q[98]:.2f} ms, mean {statistics.fmean(ms):.2f} ms"

    print(
        f"\nin-process server latency over {len(plain)} answers each (60 users x 90 movies, 8-tree rankers):"
    )
    print(f"  control alone (stopped): {summary(plain)}")
    print(f"  interleaved (2 rankings + team draft): {summary(interleaved)}")
    assert statistics.quantiles(interleaved, n=100)[98] < 300.0, "two rankings must stay well inside 600 ms"
