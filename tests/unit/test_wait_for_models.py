"""`wait_for_models`: the operate demonstration waits until the API runs a new challenger before the next day."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Header, HTTPException

from recsys.experiment_run import ExperimentNotServedError, wait_for_models
from serving.settings import DEV_ADMIN_TOKEN, get_serving_settings
from tests.servers import app_in_thread


@pytest.fixture(autouse=True)
def dev_token(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local mode without a token: the dev token (the settings are cached per process: read them anew)."""
    monkeypatch.delenv("RECSYS_ADMIN_TOKEN_FILE", raising=False)
    monkeypatch.delenv("RECSYS_SERVING_LOCAL_MODE", raising=False)
    get_serving_settings.cache_clear()
    yield
    get_serving_settings.cache_clear()


def admin_api(views: list[dict[str, Any]]) -> tuple[FastAPI, list[str]]:
    """`GET /admin/experiments` answering `views` in turn (the last one from then on), with the dev token."""
    app, seen = FastAPI(), []

    @app.get("/admin/experiments")
    async def experiments(authorization: str = Header("")) -> dict[str, Any]:
        seen.append(authorization)
        if authorization != f"Bearer {DEV_ADMIN_TOKEN}":
            raise HTTPException(401)
        return views[min(len(seen) - 1, len(views) - 1)]

    return app, seen


def test_it_returns_once_the_experiment_runs_with_the_challenger_loaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old = {"experiment": "operate-1", "stopped": False, "models": {"champion": 4, "challenger": 5}}
    loading = {"experiment": "operate-2", "stopped": False, "models": {"champion": 4}}
    ready = {"experiment": "operate-2", "stopped": False, "models": {"champion": 4, "challenger": 6}}
    app, seen = admin_api([old, old, loading, ready])
    with app_in_thread(app) as url:
        waited = wait_for_models(url, "operate-2", 6, settle_s=0.0, probes=3, timeout_s=20)
    assert waited < 20 and len(seen) >= 3 + 3, (
        "three probes that were not ready, then three in a row that were"
    )


def test_it_gives_up_when_the_model_never_loads() -> None:
    app, _ = admin_api([{"experiment": "operate-2", "stopped": False, "models": {"champion": 4}}])
    with app_in_thread(app) as url, pytest.raises(ExperimentNotServedError, match="v6"):
        wait_for_models(url, "operate-2", 6, settle_s=0.0, probes=3, timeout_s=2)
