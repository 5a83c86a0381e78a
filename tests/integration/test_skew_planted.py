"""Done-when (c): a train/serve difference planted in ONE feature of serving's code is flagged by the skew check.

A small world on the real Redis, Feast and MLflow (the serving test's: 60 users x 90 movies, a
tiny real LambdaRank model with its candidate index). Its features are written to the offline
store as ingestion writes them and materialised into Redis by the real rebuild (`ingestion.rebuild`),
so the online rows serving reads are the offline rows the replay reads.
The reference sample beside the model is what the unplanted feature code computes for every
user's candidates (`serving.recommender.rank` on the online features: the shared transforms
training uses), written with training's own writer. The champion then serves every user
through the real app with the feature log sampling every answer, while serving's column reader
is patched so one feature (`user_profile__age`) comes out in months instead of years, a unit bug
of the kind the check exists for. `recsys monitor skew`'s `run_skew` must flag that feature and
no other: by the log-and-recompute check (every served row recomputed through Feast's offline
store at its `as_of` differs in that feature, and in no other: the proof that the replay
reproduces serving exactly) and by PSI.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
from fastapi.testclient import TestClient

import serving.recommender as recommender
from events.metadata import GENRES
from feature_repo.config import arrow_schema, offline_dir
from ingestion.rebuild import ALL_VIEWS, rebuild
from monitoring.settings import MonitorSettings
from monitoring.skew import SCORE, run_skew
from monitoring.skew_replay import RECOMPUTED
from ranking import columns as C  # noqa: N812
from ranking.reference_sample import write_reference_sample
from ranking.registry import ModelRegistry
from ranking.settings import RankSettings
from serving.app import create_app
from serving.models import load_bundle
from serving.movie_table import read_online
from serving.recommender import ScoredRows, rank
from serving.runtime import Runtime
from serving.settings import ServingSettings
from serving.user_features import UserFeatureClient
from tests.integration.conftest import StackInfo
from tests.integration.test_feast_repo import db_url
from tests.integration.test_serving import _sessions, register, train_model

TEST_DB = 11
PLANTED = "user_profile__age"
FEATURES_AT = pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(hours=1)
"""Event time of every feature row (within every view's TTL of NOW)."""
NOW = FEATURES_AT.timestamp() + 600.0
"""One as-of time for both sides: the world's timestamps are tiny epoch seconds, so its day counts sit where
float32 steps are minutes long and the seconds between the two sides would move rows across bins."""


def _write_offline(store: Any, var: Path, sessions: pd.DataFrame, recent: dict[int, list[str]]) -> None:
    """Every user's and movie's feature rows, written to the offline store as ingestion writes them."""
    users, movies = sorted(recent), sorted(set(sessions[C.ITEM]))
    rng = np.random.default_rng(3)
    for view in ALL_VIEWS:
        fv = store.get_feature_view(view)
        ids: list[Any] = users if view.startswith("user_") else movies
        data: dict[str, Any] = {fv.join_keys[0]: ids}
        for f in fv.features:
            kind = str(f.dtype)
            if f.name == "recent_movie_ids":
                data[f.name] = [recent[u] for u in ids]
            elif f.name == "genres":
                data[f.name] = [[GENRES[i % len(GENRES)]] for i in range(len(ids))]
            elif f.name == "genre_affinity":
                data[f.name] = [list(rng.dirichlet(np.ones(len(GENRES)))) for _ in ids]
            elif "Array" in kind:  # list-valued fields of views the ranker does not read (user_description)
                data[f.name] = [[] for _ in ids]
            elif "Int" in kind:
                data[f.name] = rng.integers(1, 1_000, len(ids))
            elif "Float" in kind:
                data[f.name] = rng.random(len(ids)) * 5 + 0.1
            elif "Bool" in kind:  # movie_metadata.adult: no adult titles in this world
                data[f.name] = [False] * len(ids)
            else:
                data[f.name] = ["x"] * len(ids)
        data["event_timestamp"] = data["created"] = [FEATURES_AT] * len(ids)
        folder = offline_dir(view, var)
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pydict(data, schema=arrow_schema(fv)), folder / "world.parquet")


def _clean_rows(store: Any, url: str, model_dir: Path, users: list[int]) -> list[ScoredRows]:
    """What the unplanted code computes for each user's candidates, from the online store."""
    bundle = load_bundle("ranker", 0, model_dir)
    table = read_online(store, url, [str(m) for m in bundle.index.items], 1)
    client = UserFeatureClient.from_store(store, url, 5.0)

    async def features() -> list[dict[str, Any]]:
        try:
            return [await client.get(u) for u in users]
        finally:
            await client.aclose()

    out = []
    for user, feats in zip(users, asyncio.run(features()), strict=True):
        scored = rank(user, feats, bundle, table, None, NOW).scored
        assert scored is not None
        out.append(scored)
    return out


def test_a_planted_difference_in_one_feature_is_the_only_skew_flagged(
    stack: StackInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingestion.feast_bridge import open_feature_store

    var = tmp_path / "var"
    url = db_url(stack.redis_url, TEST_DB)
    redis.Redis.from_url(url).flushdb()
    sessions = _sessions()
    store = open_feature_store(var, url)
    recent = {u: g.sort_values(C.END_TS)[C.ITEM].tolist()[-5:][::-1] for u, g in sessions.groupby(C.USER)}
    _write_offline(store, var, sessions, recent)
    assert rebuild(
        store, redis.Redis.from_url(url)
    ).ran  # the online store, materialised from the offline one
    users = sorted(recent)
    model_dir = train_model(sessions, tmp_path / "model", seed=1)
    clean = _clean_rows(store, url, model_dir, users)
    x = np.concatenate([s.x for s in clean])
    write_reference_sample(
        model_dir, x, np.concatenate([s.scores for s in clean]), np.zeros(len(x), np.int64)
    )
    version = register(var, model_dir)
    registry = ModelRegistry.open(RankSettings(RECSYS_VAR_DIR=var))  # type: ignore[call-arg]
    assert registry.promote(version).accepted

    # The plant, in serving's code: the column reader rank() hands to the shared transforms.
    shared = recommender.matrix_from_columns

    def planted(column: Callable[[str], np.ndarray], *args: Any) -> np.ndarray:
        def read(name: str) -> np.ndarray:
            values = column(name)
            return values * 12.0 if name == PLANTED else values

        return shared(read, *args)

    monkeypatch.setattr(recommender, "matrix_from_columns", planted)
    monkeypatch.setattr(Runtime, "now", lambda _self: NOW)
    settings = ServingSettings(  # type: ignore[call-arg]
        RECSYS_VAR_DIR=var,
        RECSYS_REDIS_URL=url,
        experiments_file=var / "no-experiments.yaml",  # everyone gets the champion
        feature_log_rate=1.0,
        feature_log_rows=10_000,  # every scored row: both sides hold the same candidates
    )
    with TestClient(create_app(settings)) as client:
        for user in users:
            response = client.get(f"/recommend/{user}")
            assert response.headers["X-Recommendation-Path"] == "model", response.text
    # Leaving the app closed the feature log: everything sampled is on disk.

    result = run_skew(MonitorSettings(RECSYS_VAR_DIR=var), hours=1.0)  # type: ignore[call-arg]
    assert result.model_version == version
    assert result.train_rows == len(x) and result.served_rows >= len(x)
    assert result.replay == "ok" and result.replayed_rows == min(result.served_rows, 2000), result.replay
    by = {r.feature: r for r in result.rows}
    # Log and recompute: the planted feature differs in every replayed row, every other one in (almost) none.
    assert by[PLANTED].skewed and by[PLANTED].mismatch_share == pytest.approx(1.0), by[PLANTED]
    assert by[PLANTED].mean_served == pytest.approx(12 * (by[PLANTED].mean_replayed or 0.0), rel=0.05)
    recomputed = {r.feature: r.mismatch_share for r in result.rows if r.mismatch_share is not None}
    assert len(recomputed) == len(RECOMPUTED)
    others = {f: m for f, m in recomputed.items() if f != PLANTED}
    assert max(others.values()) < result.mismatch_threshold, others
    assert max(others.values()) == 0.0, others  # same inputs, same code: not one row differs
    # The distribution check beside it: the same verdict from PSI.
    assert by[PLANTED].psi > 1.0, by[PLANTED]
    assert by[PLANTED].mean_served == pytest.approx(12 * by[PLANTED].mean_train, rel=0.2)
    flagged = {r.feature for r in result.rows if r.skewed and r.feature != SCORE}
    assert flagged == {PLANTED}, {r.feature: (r.mismatch_share, r.psi) for r in result.rows if r.skewed}
    assert max(r.psi for r in result.rows if r.feature not in (PLANTED, SCORE)) < result.threshold
    assert (var / "monitoring" / "skew" / "latest.json").is_file()
