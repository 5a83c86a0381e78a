"""The model registry against a real `mlflow server` over HTTP, with artifacts proxied by the server.

What the SQLite unit tests cannot show: the server's own checks (a version's source must lie
inside its run's artifacts), `mlflow-artifacts:` URIs for upload and download, and that
nothing in the registry assumes a local file store. The server takes ~40 s to start here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ranking.provenance import Provenance, data_snapshot
from ranking.registry import (
    CANDIDATES_DIR,
    CHAMPION,
    COST20,
    KIND_BASELINE,
    KIND_RANKER,
    META_FILE,
    MODEL_FILE,
    NDCG20,
    P99_MS,
    ModelRegistry,
    smoke_test,
)
from ranking.settings import RankSettings
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A tracking server on a free port with its own SQLite store and artifact folder; stopped afterwards."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    argv = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    argv += [
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "art"),
    ]
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"mlflow server did not start:\n{(root / 'server.log').read_text()[-3000:]}"
                    ) from exc
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server's own session: uvicorn and its worker
        proc.wait(timeout=30)
        log.close()


def test_register_promote_rollback_download_over_http(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lightgbm as lgb

    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3))
    booster = lgb.train(
        {"objective": "regression", "num_leaves": 4, "num_threads": 1, "verbosity": -1},
        lgb.Dataset(x, x[:, 0]),
        num_boost_round=3,
    )
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    booster.save_model(str(model_dir / MODEL_FILE))
    (model_dir / META_FILE).write_text(json.dumps({"features": ["a", "b", "c"]}))
    provenance = Provenance.collect(
        Path(__file__).parent, "ranker_v1", tmp_path / "none.db", data_snapshot({}, tmp_path)
    )

    monkeypatch.setenv("RECSYS_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("RECSYS_MLFLOW_TRACKING_URI", server)
    settings = RankSettings()
    assert settings.artifact_root is None  # the server decides where artifacts go
    registry = ModelRegistry.open(settings)
    for ndcg in (0.30, 0.32, 0.20):
        info = registry.register(model_dir, provenance, {NDCG20: ndcg, COST20: 1.0, P99_MS: 3.0})
    assert info.source.startswith("mlflow-artifacts:")

    assert registry.promote(1).accepted and registry.promote(2).accepted
    refused = registry.promote(3)
    assert not refused.accepted and NDCG20 in refused.reason
    assert registry.rollback().to_version == 1
    champion = registry.resolve(CHAMPION)
    assert champion is not None and champion.version == 1
    assert champion.tags["git_commit"] == provenance.git_commit

    local = registry.download(CHAMPION)
    assert (local / MODEL_FILE).read_bytes() == (model_dir / MODEL_FILE).read_bytes()
    assert registry.load_provenance(2) == provenance


def test_a_baseline_version_over_http(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A baseline policy (meta.json + candidates/, no model.txt) goes through the server like a ranker."""
    model_dir = tmp_path / "baseline"
    (model_dir / CANDIDATES_DIR).mkdir(parents=True)
    (model_dir / CANDIDATES_DIR / "popularity.json").write_text('{"items": ["a+1999"]}')
    meta = {
        "kind": "baseline",
        "policy": "item_item",
        "features": [],
        "default_lambda": 0.0,
        "cost_scale": 1.0,
    }
    (model_dir / META_FILE).write_text(json.dumps({**meta, "unknown_cost": None}))
    provenance = Provenance.collect(
        Path(__file__).parent, "ranker_v1", tmp_path / "none.db", data_snapshot({}, tmp_path)
    )
    monkeypatch.setenv("RECSYS_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("RECSYS_MLFLOW_TRACKING_URI", server)
    monkeypatch.setenv("RECSYS_RANK_MODEL_NAME", "baseline-over-http")  # not the other test's model
    registry = ModelRegistry.open(RankSettings())
    info = registry.register(model_dir, provenance, {NDCG20: 0.1, COST20: 1.0, P99_MS: 1.0})

    result = registry.promote(info.version, smoke_test, force=True, reason="training verdict: CI above zero")
    assert result.accepted and result.reason == "training verdict: CI above zero"
    champion = registry.show(CHAMPION)
    assert (champion.kind, champion.policy) == (KIND_BASELINE, "item_item")
    assert champion.promotion_reason == "training verdict: CI above zero"
    local = registry.download(CHAMPION)
    assert sorted(p.name for p in local.iterdir()) == [CANDIDATES_DIR, META_FILE]
    assert (local / META_FILE).read_bytes() == (model_dir / META_FILE).read_bytes()
    assert KIND_RANKER not in {v.kind for v in registry.list_versions()}


def _open_and_read(var: str) -> None:
    ModelRegistry.open(RankSettings(RECSYS_VAR_DIR=Path(var))).aliases()  # type: ignore[call-arg]


def test_processes_opening_a_fresh_registry_at_once_all_succeed(tmp_path: Path) -> None:
    """`recsys serve --workers 2` on a fresh var dir: both workers create MLflow's SQLite database at once."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_open_and_read, args=(str(tmp_path / "var"),)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
