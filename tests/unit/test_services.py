"""The demo's background services take their addresses from settings (issue 10, defect 7)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from recsys.services import metadata_api, recommender_api
from serving.settings import get_serving_settings
from simulator.settings import get_sim_settings


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    get_sim_settings.cache_clear()
    get_serving_settings.cache_clear()
    yield
    get_sim_settings.cache_clear()
    get_serving_settings.cache_clear()


def test_addresses_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_SIM_API_PORT", "18180")
    monkeypatch.setenv("RECSYS_SERVING_PORT", "18182")
    meta, api = metadata_api(tmp_path), recommender_api(tmp_path)
    assert meta.argv[-4:] == ["--host", "127.0.0.1", "--port", "18180"]
    assert meta.health_url == "http://127.0.0.1:18180/healthz"
    assert api.argv[-6:-2] == ["--host", "127.0.0.1", "--port", "18182"]
    assert api.health_url == "http://127.0.0.1:18182/readyz"


def test_a_wildcard_bind_is_probed_on_loopback(tmp_path: Path) -> None:
    meta = metadata_api(tmp_path, host="0.0.0.0", port=18280)
    assert "0.0.0.0" in meta.argv and meta.base_url == "http://127.0.0.1:18280"
    api = recommender_api(tmp_path, host="::1", port=18282, until_ready=False)
    assert api.health_url == "http://[::1]:18282/healthz"
