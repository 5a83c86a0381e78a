"""Pure serving logic: the breaker, the fallback list, the model path on a real tiny model, id validation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.resilience import CircuitBreaker
from serving.app import create_app
from serving.models import ModelBundle
from serving.movie_table import COST, NUMERIC, MovieTable
from serving.recommender import fallback_list, has_history, rank, without


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_failures_then_half_opens_for_one_trial() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=3, reset_s=2.0, clock=clock)
    for _ in range(3):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.now = 2.5
    assert breaker.state == "half_open"
    assert breaker.allow() and not breaker.allow(), "one trial at a time"
    breaker.failure()  # the trial failed: open again
    assert breaker.state == "open"
    clock.now = 5.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow()


def _table(ids: list[str], cost: list[float]) -> MovieTable:
    data = {"movie_id": ids, "movie_metadata__cost": cost, "movie_metadata__genres": [["drama"]] * len(ids)}
    return MovieTable.from_rows(data)  # type: ignore[arg-type]


def test_fallback_list_keeps_popular_movies_but_pushes_expensive_ones_down() -> None:
    ids = [f"m{i}" for i in range(30)]
    cost = [1.0] * 30
    cost[0] = 50.0  # the most popular movie is very expensive
    out = fallback_list(ids, _table(ids, cost))
    assert sorted(out) == sorted(ids)
    assert out.index("m0") > 5 and out[0] == "m1"
    assert without(out, {"m1", "m2"}, 3) == [m for m in out if m not in {"m1", "m2"}][:3]


def test_model_path_answers_twenty_unseen_movies(bundle: ModelBundle) -> None:
    user = int(bundle.index.als.user_ids[0])
    watched = set(bundle.index.items[bundle.index.watched(user)].tolist())
    recent = [m for m in bundle.index.items[bundle.index.popular(3)].tolist()]
    table = _table(list(bundle.index.items), [1.0] * len(bundle.index.items))
    out = rank(user, {"user_watch_stats__recent_movie_ids": recent}, bundle, table, None, 1.8e9)
    assert out.path == "model" and 0 < len(out.movies) <= 20
    assert len(set(out.movies)) == len(out.movies)
    assert not set(out.movies) & (watched | set(recent))
    assert out.lam == 0.1 and out.candidate_sources["pop"] > 0


def test_history_comes_from_online_features_or_the_index(bundle: ModelBundle) -> None:
    known = int(bundle.index.als.user_ids[0])
    assert has_history(None, bundle, known)
    assert not has_history(None, bundle, 10**9)
    assert has_history({"user_watch_stats__watch_count_total": 3}, None, 10**9)
    assert not has_history({"user_watch_stats__watch_count_total": None}, None, 10**9)


BAD_IDS = ("abc", "-1", "1.5", "9" * 19, "%20", "1,2", "%F0%9F%8E%AC")
"""Not a non-negative integer of at most 18 digits."""


def test_malformed_ids_get_a_one_line_4xx_and_valid_ids_without_dependencies_a_fallback(
    tmp_path: Path,
) -> None:
    from serving.models import ModelManager
    from serving.provenance import ProvenanceLog
    from serving.routing import Router
    from serving.runtime import Runtime, check_bundle
    from serving.settings import ServingSettings

    settings = ServingSettings(RECSYS_VAR_DIR=tmp_path)  # type: ignore[call-arg]
    manager = ModelManager(lambda: None, check_bundle, 60.0)
    runtime = Runtime(settings, Router(), manager, None, ProvenanceLog(index_size=10))
    with TestClient(create_app(settings, runtime)) as client:
        for path in [f"/recommend/{bad}" for bad in BAD_IDS] + ["/recommend/", "/recommend"]:
            response = client.get(path)
            assert response.status_code == 400, path
            assert response.text and "\n" not in response.text, path
        ok = client.get("/recommend/42")  # no model, no features: the fallback path, still 200
        assert ok.status_code == 200 and ok.headers["X-Recommendation-Path"] == "fallback"
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200
        assert client.get("/admin/experiments").status_code == 401
        assert "recsys_requests_total" in client.get("/metrics").text


def test_workers_follow_edits_of_the_experiment_file_and_ignore_invalid_ones(tmp_path: Path) -> None:
    from serving.models import ModelManager
    from serving.provenance import ProvenanceLog
    from serving.routing import Router
    from serving.runtime import Runtime, check_bundle
    from serving.settings import ServingSettings

    path = tmp_path / "experiments.yaml"
    arms = "    arms:\n      - {name: a, weight: 1}\n      - {name: b, weight: %d}\n"
    head = "experiments:\n  - name: ab\n    salt: s1\n    enabled: true\n"
    path.write_text(head + arms % 1)
    settings = ServingSettings(RECSYS_VAR_DIR=tmp_path, experiments_file=path)  # type: ignore[call-arg]
    runtime = Runtime(settings, Router.from_file(path), ModelManager(lambda: None, check_bundle, 60.0), None,
                      ProvenanceLog(index_size=10))  # fmt: skip
    assert not runtime.watch_experiments(), "unchanged file: nothing to do"
    path.write_text(head + arms % 3)
    assert runtime.watch_experiments()
    assert runtime.router.experiment is not None
    assert runtime.router.experiment.shares()["b"] == 0.75
    path.write_text(head + "    arms: []\n")  # invalid: no arms
    assert not runtime.watch_experiments()
    assert runtime.router.experiment.shares()["b"] == 0.75, "the running experiment keeps serving"


def test_a_prepared_table_serves_from_built_caches_and_the_old_one_keeps_its_own(bundle: ModelBundle) -> None:
    """The refresher builds a new table's views before the swap: no request rebuilds them on the event loop."""
    ids = [str(m) for m in bundle.index.items]
    old, new = _table(ids, [1.0] * len(ids)), _table(ids, [2.0] * len(ids))
    old_view = bundle.vocab_table(old)
    new.warm()
    new_view = bundle.vocab_table(new)  # what Runtime.prepare_table does before `rt.table = new`
    assert "_row_of" in new.__dict__ and "_matrix" in new_view.__dict__ and "_cost_of" in new.__dict__
    assert (
        bundle.vocab_table(old) is old_view and bundle.vocab_table(new) is new_view
    )  # both held: no rebuild
    assert float(new_view.matrix[0, NUMERIC.index(COST)]) == 2.0
    third = _table(ids, [3.0] * len(ids))
    bundle.vocab_table(third)
    assert (
        bundle.vocab_table(new) is new_view and bundle.vocab_table(old) is not old_view
    )  # two kept, oldest out


def test_worker_metrics_files_go_to_a_tmpfs_when_the_host_has_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The per-request metric writes go to memory-mapped files: on /dev/shm they never wait on disk writeback."""
    from serving import cli

    shm = Path("/dev/shm")
    assert cli.metrics_parent() == (str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None)
    monkeypatch.setattr(cli, "SHM", tmp_path / "no-such-tmpfs")
    assert cli.metrics_parent() is None  # no tmpfs: the temp dir, as before
