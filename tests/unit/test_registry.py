"""Model registry on a real MLflow (a SQLite file in a temp folder): provenance, gated promotion, rollback, CLI, baselines.

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
    BASELINE_POLICIES,
    CANDIDATES_DIR,
    CHALLENGER,
    CHAMPION,
    COST20,
    KIND_BASELINE,
    KIND_RANKER,
    KIND_TAG,
    META_FILE,
    META_SHA256_TAG,
    MODEL_FILE,
    NDCG20,
    P99_MS,
    PROMOTION_GATES_TAG,
    PROMOTION_REASON_TAG,
    AliasConflictError,
    ModelArtifactError,
    ModelRegistry,
    RollbackError,
    SmokeTestError,
    VersionNotFoundError,
    check_gates,
    check_text_model,
    read_features,
    read_kind,
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


def baseline_dir(root: Path, name: str, policy: object = "popularity", **meta: object) -> Path:
    """A baseline policy's model directory: meta.json and a small candidates/ folder, no model.txt."""
    folder = root / name
    (folder / CANDIDATES_DIR).mkdir(parents=True)
    (folder / CANDIDATES_DIR / "popularity.json").write_text('{"items": ["a+1999", "b+2001"]}')
    (folder / CANDIDATES_DIR / "popularity.npz").write_bytes(b"PK\x05\x06" + bytes(18))
    fields = {"kind": "baseline", "policy": policy, "features": [], "default_lambda": 0.5, "cost_scale": 1.2}
    (folder / META_FILE).write_text(json.dumps({**fields, "unknown_cost": None, **meta}))
    return folder


@pytest.fixture(scope="module")
def baselines(tmp_path_factory: pytest.TempPathFactory, models: dict[str, Path]) -> dict[str, Path]:
    """A good baseline directory per policy, plus broken ones."""
    root = tmp_path_factory.mktemp("baselines")
    dirs = {policy: baseline_dir(root, policy, policy) for policy in BASELINE_POLICIES}
    dirs["unknown_policy"] = baseline_dir(root, "unknown_policy", "most_watched")
    dirs["no_policy"] = baseline_dir(root, "no_policy", None)
    dirs["no_candidates"] = baseline_dir(root, "no_candidates")
    shutil.rmtree(dirs["no_candidates"] / CANDIDATES_DIR)
    dirs["empty_candidates"] = baseline_dir(root, "empty_candidates")
    for f in (dirs["empty_candidates"] / CANDIDATES_DIR).iterdir():
        f.unlink()
    dirs["with_trees"] = baseline_dir(root, "with_trees")  # a ranker mislabelled as a baseline
    shutil.copy(models["good"] / MODEL_FILE, dirs["with_trees"] / MODEL_FILE)
    dirs["bad_lambda"] = baseline_dir(root, "bad_lambda", default_lambda="high")
    dirs["unknown_kind"] = baseline_dir(root, "unknown_kind", kind="heuristic")
    dirs["kind_forgotten"] = baseline_dir(root, "kind_forgotten")
    meta = json.loads((dirs["kind_forgotten"] / META_FILE).read_text())
    (dirs["kind_forgotten"] / META_FILE).write_text(
        json.dumps({k: v for k, v in meta.items() if k != "kind"})
    )
    dirs["ranker_no_model"] = root / "ranker_no_model"  # a ranker's meta.json, no model.txt
    dirs["ranker_no_model"].mkdir()
    shutil.copy(models["good"] / META_FILE, dirs["ranker_no_model"] / META_FILE)
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
    assert registry.download(info.version) == local
    smoke_test(local)
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


# --- baseline policies ------------------------------------------------------------------------


def test_the_smoke_test_tells_baseline_and_ranker_directories_apart(
    models: dict[str, Path], baselines: dict[str, Path]
) -> None:
    assert read_kind(models["good"]) == (KIND_RANKER, None)  # a meta.json without "kind" is a ranker's
    for policy in BASELINE_POLICIES:
        assert read_kind(baselines[policy]) == (KIND_BASELINE, policy)
        assert read_features(baselines[policy]) == []
        smoke_test(baselines[policy])
    refused = {
        "unknown_policy": "'most_watched', want one of popularity",
        "no_policy": "baseline 'policy' is None",
        "no_candidates": "needs a non-empty candidates/",
        "empty_candidates": "needs a non-empty candidates/",
        "with_trees": "a baseline has no model.txt",
        "bad_lambda": "'default_lambda' is 'high'",
        "unknown_kind": "'kind' is 'heuristic'",
        "kind_forgotten": "a ranker has no 'policy'",
        "ranker_no_model": "lacks model.txt",
    }
    for name, message in refused.items():
        with pytest.raises(SmokeTestError, match=re.escape(message)):
            smoke_test(baselines[name])
            pytest.fail(f"{name} passed the smoke test")


def test_a_baseline_is_a_registered_version_served_by_the_same_api(
    registry: ModelRegistry, models: dict[str, Path], baselines: dict[str, Path], provenance: Provenance
) -> None:
    ranker = registry.register(models["good"], provenance, metrics())
    assert (ranker.kind, ranker.policy, ranker.tags[KIND_TAG]) == (KIND_RANKER, None, KIND_RANKER)
    assert registry.promote(ranker.version).accepted
    for name in ("no_candidates", "unknown_policy", "with_trees"):
        with pytest.raises(ModelArtifactError):
            registry.register(baselines[name], provenance, metrics())
    assert [v.version for v in registry.list_versions()] == [1]

    info = registry.register(baselines["recency_popularity"], provenance, metrics(ndcg20=0.2))
    shown = registry.show(info.version)  # read back from MLflow, not the object register built
    assert (shown.kind, shown.policy) == (KIND_BASELINE, "recency_popularity")
    assert shown.tags["git_commit"] == provenance.git_commit and "model_sha256" not in shown.tags
    assert [(v.version, v.kind, v.policy) for v in registry.list_versions()] == [
        (2, KIND_BASELINE, "recency_popularity"),
        (1, KIND_RANKER, None),
    ]
    local = registry.download(info.version)
    assert sorted(p.name for p in local.iterdir()) == [CANDIDATES_DIR, META_FILE]
    assert read_kind(local) == (KIND_BASELINE, "recency_popularity")

    assert not registry.promote(2).accepted  # the gates judge a baseline like any version
    why = "bootstrap over 5,000 users: NDCG@20 +0.004 [0.001, 0.007] over the ranker"
    result = registry.promote(2, smoke_test, force=True, reason=why)
    assert result.accepted and result.forced and result.reason == why and result.previous == 1
    champion = registry.resolve(CHAMPION)
    assert champion is not None and (champion.version, champion.kind) == (2, KIND_BASELINE)
    assert champion.promotion_reason == why
    assert champion.tags[PROMOTION_GATES_TAG].startswith("forced past failed gates: ndcg20 0.2000")
    assert registry.rollback().to_version == 1

    # Versions registered before kinds existed carry no tag: they read back as rankers and still download.
    registry.client.delete_model_version_tag(registry.name, "1", KIND_TAG)
    old = registry.show(1)
    assert (old.kind, old.policy) == (KIND_RANKER, None) and KIND_TAG not in old.tags
    smoke_test(registry.download(1))


def test_download_refuses_a_baseline_whose_stored_meta_changed(
    registry: ModelRegistry, baselines: dict[str, Path], provenance: Provenance
) -> None:
    for _ in range(2):
        info = registry.register(baselines["popularity"], provenance, metrics())
        stored = Path(info.source.removeprefix("file://")) / META_FILE
        stored.write_text(stored.read_text().replace('"default_lambda": 0.5', '"default_lambda": 5.0'))
    with pytest.raises(ModelArtifactError, match=r"meta\.json does not match its registered SHA-256"):
        registry.download(1)
    refused = registry.promote(1, force=True, reason="would be ignored")
    assert not refused.accepted and "SHA-256" in refused.reason
    # Without the hash (a tag lost), the files' kind and policy must still match the version's tags.
    registry.client.delete_model_version_tag(registry.name, "2", META_SHA256_TAG)
    stored.write_text(stored.read_text().replace('"popularity"', '"als"'))
    with pytest.raises(
        ModelArtifactError, match="files are a baseline als, registered as a baseline popularity"
    ):
        registry.download(2)
    assert registry.aliases() == {}


def test_promotion_reason_is_recorded_and_the_gate_verdict_kept(
    registry: ModelRegistry, models: dict[str, Path], provenance: Provenance
) -> None:
    for m in (metrics(), metrics(ndcg20=0.31)):
        registry.register(models["good"], provenance, m)
    plain = registry.promote(1)
    assert plain.reason == "passed smoke test and gates"
    assert registry.show(1).promotion_reason == plain.reason  # no reason given: the verdict, as before
    result = registry.promote(2, reason="  operator: ticket 42  ")
    assert result.accepted and not result.forced and result.reason == "operator: ticket 42"
    tags = registry.show(2).tags
    assert tags[PROMOTION_REASON_TAG] == "operator: ticket 42"
    assert tags[PROMOTION_GATES_TAG] == "passed smoke test and gates"
    assert registry.promote(2, reason="again").reason.endswith("nothing changed")
    assert registry.show(2).promotion_reason == "operator: ticket 42"  # nothing changed: nothing recorded


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
    assert re.search(r"promoted because\s+│ forced past failed gates", run("show", "3"))


def test_cli_shows_kind_policy_and_promotion_reason(
    env: str, models: dict[str, Path], baselines: dict[str, Path], provenance: Provenance
) -> None:
    registry = ModelRegistry.open()
    registry.register(models["good"], provenance, metrics())
    registry.register(baselines["item_item"], provenance, metrics(ndcg20=0.1))
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, result.output
        return result.output

    assert "champion: none -> v1" in run("promote", "1")
    why = "training verdict: the bootstrap CI of the NDCG gain lies above zero"
    assert why in run("promote", "2", "--force", "--reason", why)
    shown = run("show", "2")
    assert re.search(r"kind\s+│ baseline: item_item", shown)
    assert re.search(rf"promoted because\s+│ {why}", shown)
    assert "tag promotion_gates" in shown and "forced past failed gates" in shown
    listing = run("list")
    assert re.search(r"2\s+│\s+champion\s+│\s+baseline: item_item", listing)
    assert re.search(r"1\s+│\s+│\s+ranker\s+│", listing)
    assert why[:40] in listing and "passed smoke test and gates" in listing
    assert re.search(r"kind\s+│ ranker", run("show", "1"))


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
