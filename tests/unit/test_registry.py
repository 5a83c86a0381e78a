"""Model registry on a real MLflow (a SQLite file in a temp folder): provenance, gated promotion, rollback, CLI.

One database serves the whole module (creating MLflow's schema takes ~8 s here); each test gets
its own registered model name, so tests do not see each other's versions or aliases.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from ranking.cli_models import app
from ranking.provenance import UNKNOWN, Provenance, data_snapshot, feast_registry_version, git_commit
from ranking.registry import (
    CHALLENGER,
    CHAMPION,
    COST20,
    META_FILE,
    MODEL_FILE,
    NDCG20,
    P99_MS,
    AliasConflictError,
    ModelArtifactError,
    ModelRegistry,
    RollbackError,
    SmokeTestError,
    VersionNotFoundError,
    check_gates,
    check_text_model,
    smoke_test,
)
from ranking.settings import RankSettings, get_rank_settings

REPO = Path(__file__).resolve().parents[2]
FEATURES = [f"f{i}" for i in range(5)]
BASE = {NDCG20: 0.30, COST20: 1.00, P99_MS: 5.0}


def metrics(**changes: float) -> dict[str, float]:
    """The baseline metrics with some figures changed."""
    return {**BASE, **changes}


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'db' / 'mlflow.db'}"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real tiny LightGBM model saved as text, plus broken copies of it."""
    import lightgbm as lgb

    root = tmp_path_factory.mktemp("models")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, len(FEATURES)))
    params = {"objective": "regression", "num_leaves": 4, "num_threads": 1, "verbosity": -1}
    booster = lgb.train(params, lgb.Dataset(x, x[:, 0] + rng.normal(size=200)), num_boost_round=3)
    dirs = {name: root / name for name in ("good", "truncated", "narrow", "no_meta")}
    for d in dirs.values():
        d.mkdir()
        booster.save_model(str(d / MODEL_FILE))
        (d / META_FILE).write_text(json.dumps({"features": FEATURES}))
    text = (dirs["good"] / MODEL_FILE).read_text()
    (dirs["truncated"] / MODEL_FILE).write_text(text[: len(text) // 3])
    (dirs["narrow"] / META_FILE).write_text(json.dumps({"features": FEATURES[:4]}))
    (dirs["no_meta"] / META_FILE).unlink()
    return dirs


@pytest.fixture(scope="module")
def provenance(tmp_path_factory: pytest.TempPathFactory) -> Provenance:
    root = tmp_path_factory.mktemp("var")
    folder = root / "offline" / "features" / "user_watch_stats"
    folder.mkdir(parents=True)
    write_parquet(folder / "a.parquet", [datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 5, tzinfo=UTC)])
    registry_file = root / "feast" / "registry.db"
    registry_file.parent.mkdir()
    registry_file.write_bytes(b"feast registry proto")
    snapshot = data_snapshot({"user_watch_stats": folder}, root)
    return Provenance.collect(REPO, "ranker_v1", registry_file, snapshot, {"num_leaves": 4, "lambda": 0.5})


@pytest.fixture
def env(
    mlflow_uri: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Point the settings at the module's database and a model name of this test's own; yields the name."""
    name = "t-" + re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:80]
    monkeypatch.setenv("RECSYS_MLFLOW_TRACKING_URI", mlflow_uri)
    monkeypatch.setenv("RECSYS_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("RECSYS_RANK_MODEL_NAME", name)
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps table cells at 80 columns otherwise
    get_rank_settings.cache_clear()  # settings are cached per process: read this test's environment
    yield name
    get_rank_settings.cache_clear()  # and leave no test's settings behind for later tests


@pytest.fixture
def registry(env: str) -> ModelRegistry:
    return ModelRegistry.open()


def write_parquet(path: Path, times: list[datetime]) -> None:
    ts = pa.array(times, pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({"user_id": list(range(len(times))), "event_timestamp": ts}), path)


# --- registering ----------------------------------------------------------------------------


def test_a_version_carries_provenance_metrics_params_model_files_and_report(
    registry: ModelRegistry, models: dict[str, Path], provenance: Provenance, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    report.write_text('{"ndcg20": 0.3}')
    info = registry.register(models["good"], provenance, metrics(train_seconds=float("nan")), report)

    shown = registry.show(info.version)
    assert shown.version == 1 and shown.aliases == ()
    assert shown.tags["git_commit"] == provenance.git_commit
    assert shown.tags["feature_service"] == "ranker_v1"
    assert shown.tags["feast_registry_version"] == provenance.feast_registry_version
    assert shown.tags["data_hash"] == provenance.data.content_hash
    assert shown.tags["data_rows"] == "2"
    assert shown.tags["data_time_min"].startswith("2026-01-01")
    assert shown.metrics[NDCG20] == pytest.approx(0.30)
    assert shown.params == {"num_leaves": "4", "lambda": "0.5"}
    assert registry.load_provenance("v1") == provenance

    artifacts = {a.path for a in registry.client.list_artifacts(info.run_id)}
    artifacts |= {a.path for a in registry.client.list_artifacts(info.run_id, "model")}
    assert {"model/model.txt", "model/meta.json", "provenance.json", "evaluation"} <= artifacts
    assert not [a for a in artifacts if a.endswith((".pkl", ".pickle", ".joblib"))]

    local = registry.download(1)
    assert sorted(p.name for p in local.iterdir()) == [META_FILE, MODEL_FILE]
    assert local.is_relative_to(registry.settings.cache_dir)
    assert registry.download("1") == local  # cached: versions never change
    smoke_test(local)


def test_register_refuses_a_directory_without_its_files(
    registry: ModelRegistry, models: dict[str, Path], provenance: Provenance
) -> None:
    with pytest.raises(ModelArtifactError, match=r"lacks meta\.json"):
        registry.register(models["no_meta"], provenance, metrics())
    with pytest.raises(TypeError, match="model"):
        registry.register(models["good"], provenance, {"model": "lambdarank"})  # type: ignore[dict-item]
    assert registry.list_versions() == []


def test_unknown_versions_and_unset_aliases(registry: ModelRegistry) -> None:
    assert registry.aliases() == {}
    assert registry.resolve(CHAMPION) is None
    assert registry.list_versions() == []
    with pytest.raises(VersionNotFoundError, match=r"v7|version=7"):
        registry.show(7)
    with pytest.raises(VersionNotFoundError, match="no alias 'champion'"):
        registry.show(CHAMPION)
    with pytest.raises(RollbackError, match="no champion"):
        registry.rollback()


# --- promotion and rollback -------------------------------------------------------------------


def test_promotion_gates_force_and_rollback(
    registry: ModelRegistry, models: dict[str, Path], provenance: Provenance
) -> None:
    for m in (metrics(), metrics(ndcg20=0.32, cost20=1.05), metrics(ndcg20=0.25)):
        registry.register(models["good"], provenance, m)

    first = registry.promote(1)
    assert first.accepted and first.previous is None
    second = registry.promote(2)
    assert second.accepted and second.previous == 1 and not second.forced
    assert registry.show(CHAMPION).tags["previous_champion"] == "1"

    refused = registry.promote(3)
    assert not refused.accepted
    assert "ndcg20 0.2500 vs champion 0.3200" in refused.reason
    assert [c.metric for c in refused.checks if not c.passed] == [NDCG20]
    assert registry.aliases() == {CHAMPION: 2}
    assert "ndcg20" in registry.show(3).tags["promotion_refused"]

    forced = registry.promote(3, force=True)
    assert forced.accepted and forced.forced and forced.previous == 2
    assert registry.show(3).tags["promotion_forced"] == "true"
    assert "promotion_refused" not in registry.show(3).tags
    assert registry.promote(3).reason.endswith("nothing changed")

    assert (registry.rollback().from_version, registry.aliases()[CHAMPION]) == (3, 2)
    assert registry.rollback().to_version == 1
    with pytest.raises(RollbackError, match="no earlier champion"):
        registry.rollback()
    assert registry.resolve(CHAMPION) is not None and registry.resolve(CHAMPION).version == 1  # type: ignore[union-attr]


def test_rollback_skips_deleted_versions(
    registry: ModelRegistry, models: dict[str, Path], provenance: Provenance
) -> None:
    for v in (1, 2, 3):
        registry.register(models["good"], provenance, metrics(ndcg20=0.3 + v / 100))
        assert registry.promote(v).accepted
    registry.client.delete_model_version(registry.name, "2")
    assert registry.rollback().to_version == 1


def test_a_broken_model_fails_the_smoke_test_even_when_forced(
    registry: ModelRegistry, models: dict[str, Path], provenance: Provenance
) -> None:
    for name in ("good", "truncated", "narrow"):
        registry.register(models[name], provenance, metrics(ndcg20=0.5))
    assert registry.promote(1).accepted
    truncated = registry.promote(2, force=True)
    assert not truncated.accepted and truncated.reason.startswith("smoke test failed")
    narrow = registry.promote(3, force=True)
    assert not narrow.accepted and "expects 5 features, meta.json lists 4" in narrow.reason
    assert registry.aliases() == {CHAMPION: 1}
    with pytest.raises(SmokeTestError):
        smoke_test(models["truncated"])


def test_text_model_layout_catches_what_lightgbm_would_crash_on_or_load_short(
    models: dict[str, Path],
) -> None:
    text = (models["good"] / MODEL_FILE).read_bytes()
    check_text_model(models["good"] / MODEL_FILE)
    cuts = {
        "inside a tree (LightGBM aborts the process)": text[: len(text) // 3],
        "after a whole tree (LightGBM loads fewer trees)": text[: text.index(b"\nTree=1\n") + 1],
        "no header": text[5:],
    }
    for why, data in cuts.items():
        path = models["good"].parent / "cut.txt"
        path.write_bytes(data)
        with pytest.raises(SmokeTestError):
            check_text_model(path)
            pytest.fail(why)


def test_download_verifies_the_registered_hash(
    registry: ModelRegistry, models: dict[str, Path], provenance: Provenance
) -> None:
    info = registry.register(models["good"], provenance, metrics())
    local = registry.download(info.version)
    (local / MODEL_FILE).write_text("tree\n")  # a damaged cached copy is fetched again
    assert registry.download(info.version) == local and smoke_test(local) is None
    stored = Path(info.source.removeprefix("file://")) / MODEL_FILE
    stored.write_bytes(stored.read_bytes().replace(b"Tree=2", b"Tree=9"))
    shutil.rmtree(local)
    with pytest.raises(ModelArtifactError, match="SHA-256"):
        registry.download(info.version)
    assert not local.exists()


@pytest.mark.parametrize(
    ("candidate", "champion", "failing"),
    [
        (metrics(ndcg20=0.285), BASE, []),  # a drop inside the 0.02 allowance
        (metrics(ndcg20=0.28), BASE, []),  # exactly at the limit (float noise does not refuse it)
        (metrics(ndcg20=0.27), BASE, [NDCG20]),
        (metrics(cost20=1.10), BASE, []),
        (metrics(cost20=1.11), BASE, [COST20]),
        (metrics(p99_ms=50.0), BASE, []),
        (metrics(p99_ms=51.0), None, [P99_MS]),  # an absolute ceiling: applies with no champion too
        (metrics(ndcg20=0.01, cost20=9.0), None, []),  # nothing to compare with: relative gates pass
        ({COST20: 1.0, P99_MS: 5.0}, BASE, [NDCG20]),  # a missing figure fails
        (metrics(ndcg20=float("nan")), BASE, [NDCG20]),
        (metrics(), {P99_MS: 1.0}, []),  # the champion lacks figures: not compared
    ],
)
def test_gates(candidate: dict[str, float], champion: dict[str, float] | None, failing: list[str]) -> None:
    checks = check_gates(candidate, champion, RankSettings())
    assert [c.metric for c in checks if not c.passed] == failing
    assert all(c.metric in c.detail for c in checks)


def test_challenger_alias(registry: ModelRegistry, models: dict[str, Path], provenance: Provenance) -> None:
    for m in (metrics(), metrics(ndcg20=0.31)):
        registry.register(models["good"], provenance, m)
    registry.register(models["narrow"], provenance, metrics())
    registry.promote(1)
    with pytest.raises(SmokeTestError, match="expects 5 features"):
        registry.set_challenger(3)  # serving loads the challenger too
    assert registry.set_challenger("v2").version == 2
    assert registry.resolve(CHALLENGER).version == 2  # type: ignore[union-attr]
    with pytest.raises(AliasConflictError, match="champion"):
        registry.set_challenger(1)
    assert registry.promote(CHALLENGER).accepted
    assert registry.aliases() == {CHAMPION: 2}  # the winner stops challenging itself
    assert registry.clear_challenger() is None


# --- CLI --------------------------------------------------------------------------------------


def test_cli_list_show_promote_rollback_challenger(
    env: str, models: dict[str, Path], provenance: Provenance
) -> None:
    registry = ModelRegistry.open()
    for m in (metrics(), metrics(ndcg20=0.33), metrics(cost20=1.5)):
        registry.register(models["good"], provenance, m)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, result.output
        return result.output

    assert "champion: none -> v1" in run("promote", "1")
    assert "champion: v1 -> v2" in run("promote", "v2")
    refused = run("promote", "3", code=1)
    assert "refused" in refused and "cost20 1.5000 vs champion 1.0000" in refused
    listing = run("list")
    assert re.search(r"2\s+│\s+champion", listing) and provenance.git_commit[:10] in listing
    assert "tag feast_registry_version" in run("show", "champion")
    assert "challenger: v3" in run("challenger", "3")
    assert "challenger v3 removed" in run("challenger", "--clear")
    run("challenger", code=2)
    assert "champion: v2 -> v1" in run("rollback")
    assert "error:" in run("show", "9", code=2)
    assert "forced past failed gates" in run("promote", "3", "--force")


# --- provenance and settings ------------------------------------------------------------------


def test_git_commit_never_raises(tmp_path: Path) -> None:
    assert git_commit(tmp_path) == (UNKNOWN, False)
    assert git_commit(tmp_path / "missing") == (UNKNOWN, False)
    commit, _ = git_commit(REPO)
    assert re.fullmatch(r"[0-9a-f]{40}", commit)


def test_data_snapshot_reads_footers_and_hashes_what_changes(tmp_path: Path) -> None:
    views = tmp_path / "offline" / "features"
    for view in ("user_watch_stats", "movie_popularity"):
        (views / view).mkdir(parents=True)
    write_parquet(views / "user_watch_stats" / "1.parquet", [datetime(2026, 2, 1, 12, tzinfo=UTC)] * 3)
    write_parquet(views / "movie_popularity" / "1.parquet", [datetime(2026, 1, 3, tzinfo=UTC)])
    tables = {"user_watch_stats": views / "user_watch_stats", "movie_popularity": views / "movie_popularity"}

    snap = data_snapshot(tables, tmp_path)
    assert snap.rows == {"movie_popularity": 1, "user_watch_stats": 3}
    assert snap.time_range == ("2026-01-03T00:00:00+00:00", "2026-02-01T12:00:00+00:00")
    assert snap.files[0].path == "offline/features/movie_popularity/1.parquet"
    assert data_snapshot(tables, tmp_path).content_hash == snap.content_hash  # stable

    write_parquet(views / "user_watch_stats" / "2.parquet", [datetime(2026, 2, 2, tzinfo=UTC)])
    grown = data_snapshot(tables, tmp_path)
    assert grown.content_hash != snap.content_hash and grown.total_rows == 5
    one = data_snapshot({"t": [views / "user_watch_stats" / "2.parquet"]}, tmp_path)
    assert one.total_rows == 1 and one.time_range[0] == "2026-02-02T00:00:00+00:00"
    other_column = data_snapshot({"t": views / "user_watch_stats"}, tmp_path, time_columns={"t": "user_id"})
    assert other_column.time_range == (None, None)  # not a timestamp: no range, no error


def test_provenance_round_trips_and_registry_version(provenance: Provenance, tmp_path: Path) -> None:
    assert Provenance.from_json(provenance.to_json()) == provenance
    assert feast_registry_version(tmp_path / "none.db") == UNKNOWN
    assert len(provenance.feast_registry_version) == 64


def test_settings_locations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECSYS_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("RECSYS_VAR_DIR", str(tmp_path))
    default = RankSettings()
    assert default.tracking_uri == f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    assert default.artifact_root == (tmp_path / "mlflow" / "artifacts").as_uri()
    monkeypatch.setenv("RECSYS_MLFLOW_TRACKING_URI", "sqlite:////data/var/mlflow/mlflow.db")
    assert RankSettings().artifact_root == "file:///data/var/mlflow/artifacts"
    monkeypatch.setenv("RECSYS_MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert RankSettings().artifact_root is None and RankSettings().sqlite_path is None
