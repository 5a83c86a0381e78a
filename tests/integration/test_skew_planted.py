"""Done-when (c): a train/serve difference planted in ONE feature of serving's code is flagged by the skew check.

A small world on the real Redis, Feast and MLflow (the serving test's: 60 users x 90 movies,
online features written through Feast, a tiny real LambdaRank model with its candidate index).
The reference sample beside the model is what the unplanted feature code computes for every
user's candidates (`serving.recommender.rank` on the online features: the shared transforms
training uses), written with training's own writer. The champion then serves every user
through the real app with the feature log sampling every answer, while serving's column reader
is patched so one feature (`user_profile__age`) comes out in months instead of years, a unit bug
of the kind the check exists for. `recsys monitor skew`'s `run_skew` must flag that feature and
no other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

import serving.recommender as recommender
from feature_repo import online_marker
from monitoring.settings import MonitorSettings
from monitoring.skew import SCORE, run_skew
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
from tests.integration.test_serving import _sessions, register, train_model, write_online

TEST_DB = 11
PLANTED = "user_profile__age"
NOW = 1_790_000_000.0
"""One as-of time for both sides: the world's timestamps are tiny epoch seconds, so its day counts sit where
float32 steps are minutes long and the seconds between the two sides would move rows across bins."""


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
    write_online(store, sessions, recent)
    online_marker.mark(redis.Redis.from_url(url))
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
    by = {r.feature: r for r in result.rows}
    assert by[PLANTED].skewed and by[PLANTED].psi > 1.0, by[PLANTED]
    assert by[PLANTED].mean_served == pytest.approx(12 * by[PLANTED].mean_train, rel=0.2)
    flagged = {r.feature for r in result.rows if r.skewed and r.feature != SCORE}
    assert flagged == {PLANTED}, {r.feature: r.psi for r in result.rows if r.psi > 0.05}
    assert (var / "monitoring" / "skew" / "latest.json").is_file()
