"""A/B routing: stable hash assignment, weight splits, validation, atomic reload, model fallback; serving settings."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from typer.testing import CliRunner

from ranking.cost_policy import CostRule
from serving.experiments import (
    Arm,
    Experiment,
    ExperimentFileError,
    assign,
    bucket,
    load_experiments,
    parse_experiments,
)
from serving.routing import NO_EXPERIMENT_ARM, Router, loaded_bundle, resolve_model
from serving.settings import (
    DEFAULT_EXPERIMENTS_FILE,
    DEV_ADMIN_TOKEN,
    AdminTokenError,
    ServingSettings,
    get_serving_settings,
)

REPO = Path(__file__).resolve().parents[2]
USERS = range(200_000)


def experiment_yaml(salt: str = "s1", weights: tuple[float, ...] = (90, 10), name: str = "exp") -> str:
    """An experiment file with arms a0, a1, ... of the given weights."""
    arms = "".join(
        f"      - {{name: a{i}, weight: {w}, model: {'champion' if i == 0 else 'challenger'}}}\n"
        for i, w in enumerate(weights)
    )
    return f"experiments:\n  - name: {name}\n    salt: {salt}\n    arms:\n{arms}"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def arms_of(router: Router, users: range) -> list[str]:
    return [router.assign(u).arm.name for u in users]


# --- the shipped file -------------------------------------------------------------------------


def test_the_default_experiment_file_is_champion_vs_challenger_90_10() -> None:
    assert get_serving_settings().experiments_file == DEFAULT_EXPERIMENTS_FILE
    assert DEFAULT_EXPERIMENTS_FILE == REPO / "deploy" / "experiments.yaml"
    view = Router.from_file(DEFAULT_EXPERIMENTS_FILE).describe()
    assert view["experiment"] == "champion-vs-challenger"
    arms = {a["name"]: a for a in view["arms"]}
    assert list(arms) == ["control", "treatment"]
    assert arms["control"] | {"weight": 0} == {
        "name": "control",
        "weight": 0,
        "model": "champion",
        "lam": None,
        "cost_budget": None,
        "cold_start": "popular",
        "share": 0.9,
    }
    assert (arms["treatment"]["model"], arms["treatment"]["cold_start"]) == ("challenger", "self_description")
    assert arms["treatment"]["share"] == pytest.approx(0.1)
    assert view["reloads"] == 0 and len(view["sha256"]) == 64


# --- assignment -------------------------------------------------------------------------------


def test_bucket_is_a_fixed_function_of_salt_and_user() -> None:
    # Golden values: BLAKE2b-64 of "<salt>:<user>" / 2**64 (0xb1230a19fb1622d1, 0x0aa99a47b6a9cfcf).
    # Any change here moves real users between arms.
    assert bucket(42, "ccv-2026-01") == 0xB1230A19FB1622D1 / 2**64 == pytest.approx(0.69194091, abs=1e-8)
    assert bucket(0, "s1") == 0x0AA99A47B6A9CFCF / 2**64
    assert all(0.0 <= bucket(u, "x") < 1.0 for u in range(1000))


def test_assignment_is_the_same_in_another_process_with_another_hash_seed(tmp_path: Path) -> None:
    path = write(tmp_path / "e.yaml", experiment_yaml(weights=(50, 30, 20)))
    here = "".join(a[1] for a in arms_of(Router.from_file(path), range(2000)))
    code = (
        "import sys; from pathlib import Path; from serving.routing import Router;"
        "r = Router.from_file(Path(sys.argv[1]));"
        "print(''.join(r.assign(u).arm.name[1] for u in range(2000)))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    there = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True, env=env, cwd=REPO
    ).stdout.strip()
    assert there == here


def test_same_user_same_arm_across_routers_and_reloads(tmp_path: Path) -> None:
    path = write(tmp_path / "e.yaml", experiment_yaml())
    first, second = Router.from_file(path), Router.from_file(path)
    users = range(5000)
    before = arms_of(first, users)
    assert arms_of(second, users) == before
    # Same salt and weights, other names and models: nobody moves.
    write(path, experiment_yaml(name="renamed").replace("challenger", "v3"))
    summary = first.reload()
    assert summary.changed and not summary.salt_changed and summary.current == "renamed"
    assert summary.modified == {"a1": {"model": ["challenger", "v3"]}}
    assert arms_of(first, users) == before


def test_split_over_200k_users_matches_the_weights() -> None:
    for weights in ((90, 10), (5, 3, 2)):
        exp = Experiment(
            name="e", salt="split", arms=tuple(Arm(name=f"a{i}", weight=w) for i, w in enumerate(weights))
        )
        counts: dict[str, int] = {}
        for u in USERS:
            name = assign(u, exp).name
            counts[name] = counts.get(name, 0) + 1
        for i, w in enumerate(weights):
            assert counts[f"a{i}"] / len(USERS) == pytest.approx(w / sum(weights), abs=0.01)


def test_a_new_salt_reshuffles_users() -> None:
    arms = (Arm(name="a", weight=1), Arm(name="b", weight=1))
    old = Experiment(name="e", salt="one", arms=arms)
    new = Experiment(name="e", salt="two", arms=arms)
    moved = sum(assign(u, old).name != assign(u, new).name for u in range(20_000)) / 20_000
    assert moved == pytest.approx(0.5, abs=0.02)  # independent halves: half the users change arm


def test_raising_the_last_arms_weight_only_moves_users_into_it() -> None:
    def exp(control: float, treatment: float) -> Experiment:
        return Experiment(
            name="e", salt="ramp", arms=(Arm(name="c", weight=control), Arm(name="t", weight=treatment))
        )

    small, large = exp(90, 10), exp(80, 20)
    pairs = [(assign(u, small).name, assign(u, large).name) for u in range(50_000)]
    assert ("t", "c") not in pairs
    assert sum(p == ("c", "t") for p in pairs) / len(pairs) == pytest.approx(0.10, abs=0.01)


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (experiment_yaml(weights=(90, 0)), r"arms\.1\.weight: Input should be greater than 0"),
        (experiment_yaml(weights=(90, -5)), r"arms\.1\.weight: Input should be greater than 0"),
        (experiment_yaml().replace("a1", "a0"), "arm names must be unique; repeated: a0"),
        (experiment_yaml() + experiment_yaml().split("\n", 1)[1], "experiment names must be unique"),
        (experiment_yaml().replace("challenger", "champoin"), r"arms\.1\.model: String should match"),
        (experiment_yaml().replace("challenger", "v0"), r"arms\.1\.model: String should match"),
        (experiment_yaml().replace("model: champion", "model: champion, lam: -1"), r"lam: .*greater than"),
        (
            experiment_yaml().replace("model: champion", "model: champion, cost_budget: -0.01"),
            r"arms\.0\.cost_budget: Input should be greater than or equal to 0",
        ),
        (experiment_yaml().replace("model: champion", "model: champion, cost_budget: .nan"), "cost_budget"),
        (experiment_yaml().replace("model: champion", "model: champion, cost_budget: cheap"), "cost_budget"),
        (experiment_yaml().replace("model: champion", "model: champion, cold_start: x"), "cold_start"),
        (experiment_yaml().replace("model: champion", "model: champion, colour: red"), "colour: Extra"),
        (experiment_yaml().replace("name: exp", "name: Bad Name"), r"experiments\.0\.name"),
        ("experiments:\n  - {name: e, salt: s, arms: []}\n", "arms: Tuple should have at least 1 item"),
        ("experiments:\n  - {name: e, salt: '', arms: [{name: a, weight: 1}]}\n", "salt"),
        ("experiments: [\n", "not valid YAML"),
        ("- just a list\n", "must hold a mapping"),
        ("", "must hold a mapping"),
    ],
)
def test_invalid_files_are_refused_with_a_clear_reason(text: str, message: str) -> None:
    with pytest.raises(ExperimentFileError, match=message):
        parse_experiments(text, "bad.yaml")


def test_reloading_an_invalid_file_keeps_the_old_experiment(tmp_path: Path) -> None:
    path = write(tmp_path / "e.yaml", experiment_yaml(salt="keep"))
    router = Router.from_file(path)
    before, view = arms_of(router, range(1000)), router.describe()
    for bad in (experiment_yaml(weights=(1, 0)), "experiments: [", "salt: x\n"):
        write(path, bad)
        with pytest.raises(ExperimentFileError, match=str(path)):
            router.reload()
    with pytest.raises(ExperimentFileError, match="cannot read"):
        router.reload(tmp_path / "missing.yaml")
    assert router.describe() == view and arms_of(router, range(1000)) == before
    with pytest.raises(ExperimentFileError):
        Router.from_file(tmp_path / "missing.yaml")


def test_an_arm_may_cap_its_mean_list_cost() -> None:
    text = experiment_yaml().replace("model: challenger", "model: challenger, lam: 0.5, cost_budget: 0.12")
    control, treatment = parse_experiments(text).experiments[0].arms
    assert (control.cost_budget, treatment.cost_budget) == (None, 0.12)
    assert treatment.cost_rule(0.2) == CostRule(lam=0.5, max_mean_cost=0.12)
    assert control.cost_rule(0.2) == CostRule(lam=0.2)  # lam null: the model's default λ, no budget
    assert control.cost_rule(None) == CostRule() and NO_EXPERIMENT_ARM.cost_budget is None
    assert Arm(name="a", weight=1, cost_budget=0).cost_budget == 0.0  # zero: the cheapest list


def test_changing_only_a_cost_budget_moves_nobody_and_shows_in_the_summary(tmp_path: Path) -> None:
    path = write(tmp_path / "e.yaml", experiment_yaml())
    router = Router.from_file(path)
    before = arms_of(router, range(2000))
    text = experiment_yaml().replace("model: challenger", "model: challenger, cost_budget: 0.1")
    summary = router.reload(write(path, text))
    assert summary.modified == {"a1": {"cost_budget": [None, 0.1]}} and arms_of(router, range(2000)) == before
    assert [a["cost_budget"] for a in router.describe()["arms"]] == [None, 0.1]


def test_reload_summary_names_what_changed(tmp_path: Path) -> None:
    path = write(tmp_path / "e.yaml", experiment_yaml(salt="a", weights=(90, 10)))
    router = Router.from_file(path)
    summary = router.reload(write(tmp_path / "f.yaml", experiment_yaml(salt="b", weights=(80, 10, 10))))
    assert summary.to_dict() | {"sha256": ""} == {
        "source": str(tmp_path / "f.yaml"),
        "sha256": "",
        "changed": True,
        "previous": "exp",
        "current": "exp",
        "salt_changed": True,
        "added": ("a2",),
        "removed": (),
        "modified": {"a0": {"weight": [90.0, 80.0]}},
    }
    assert router.describe()["source"] == str(tmp_path / "f.yaml") and router.reloads == 1


def test_the_first_enabled_experiment_is_active_and_none_means_champion(tmp_path: Path) -> None:
    off = experiment_yaml(name="paused").replace("    salt:", "    enabled: false\n    salt:")
    on = experiment_yaml(name="live").split("\n", 1)[1]
    router = Router.from_file(write(tmp_path / "e.yaml", off + on))
    assert router.describe()["experiment"] == "live" and router.describe()["inactive"] == ["paused"]
    assert router.assign(7).experiment == "live"

    router.reload(write(tmp_path / "none.yaml", off))
    assert router.experiment is None
    assert router.assign(7).experiment is None and router.assign(7).arm == NO_EXPERIMENT_ARM
    assert NO_EXPERIMENT_ARM.model == "champion" and router.describe()["arms"][0]["share"] == 1.0
    assert Router().assign(1).arm == NO_EXPERIMENT_ARM
    with pytest.raises(ValueError, match="no experiment file"):
        Router().reload()


def test_load_experiments_returns_the_bytes_it_validated(tmp_path: Path) -> None:
    text = experiment_yaml()
    parsed, data = load_experiments(write(tmp_path / "e.yaml", text))
    assert data == text.encode() and parsed.active is not None and parsed.active.name == "exp"


# --- model fallback ----------------------------------------------------------------------------


def test_resolve_model_falls_back_to_the_champion() -> None:
    control, treatment = Arm(name="c", weight=1), Arm(name="t", weight=1, model="challenger")
    pinned = Arm(name="p", weight=1, model="v3")
    both = {"champion": 5, "challenger": 6}
    assert resolve_model(control, both).version == 5 and resolve_model(control, both).fallback is None
    assert resolve_model(treatment, both).ref == "challenger"

    choice = Router.resolve_model(treatment, {"champion": 5})
    assert (choice.requested, choice.ref, choice.version) == ("challenger", "champion", 5)
    assert choice.fallback == "challenger not available: served by champion"

    assert resolve_model(pinned, {"champion": 5, "v3": 3}).version == 3
    assert resolve_model(pinned, {"champion": 3}).ref == "v3"  # v3 is loaded as the champion
    assert resolve_model(pinned, {"champion": 5}).ref == "champion"

    none = resolve_model(treatment, {})
    assert (none.ref, none.version) == (None, None)
    assert none.fallback == "challenger and champion not available: no model"


def test_a_pinned_version_loaded_under_an_alias_is_served_before_the_poller_files_it_under_its_pin() -> None:
    @dataclass(frozen=True)
    class Bundle:
        version: int

    champion, challenger = Bundle(4), Bundle(5)
    loaded = {"champion": champion, "challenger": challenger}  # v5 not yet filed under "v5"
    pinned = Arm(name="b", weight=1, model="v5")
    choice = resolve_model(pinned, {ref: b.version for ref, b in loaded.items()})
    assert (choice.ref, choice.fallback) == ("v5", None)
    assert loaded_bundle(loaded, choice) is challenger, "it must not answer None (the champion alone)"
    assert loaded_bundle({**loaded, "v5": challenger}, choice) is challenger
    assert loaded_bundle(loaded, resolve_model(Arm(name="c", weight=1), {"champion": 4})) is champion
    assert loaded_bundle({}, resolve_model(pinned, {})) is None


# --- concurrency --------------------------------------------------------------------------------


def test_assigning_from_threads_while_reloading_never_fails(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", experiment_yaml(name="a", salt="x", weights=(1, 1)))
    b = write(tmp_path / "b.yaml", experiment_yaml(name="b", salt="y", weights=(1, 1, 1)))
    bad = write(tmp_path / "bad.yaml", experiment_yaml(weights=(1, 0)))
    router = Router.from_file(a)
    errors: list[BaseException] = []
    seen: set[tuple[str | None, str]] = set()
    stop = threading.Event()

    def reader() -> None:
        try:
            u = 0
            while not stop.is_set():
                got = router.assign(u)
                seen.add((got.experiment, got.arm.name))
                u += 1
        except BaseException as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(150):
        if i % 3 == 2:
            with pytest.raises(ExperimentFileError):
                router.reload(bad)
        else:
            router.reload(a if i % 2 else b)
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    # Every answer came from one whole experiment: arm a2 exists only in b.
    assert seen <= {("a", "a0"), ("a", "a1"), ("b", "a0"), ("b", "a1"), ("b", "a2")}
    assert {e for e, _ in seen} == {"a", "b"}


# --- settings ---------------------------------------------------------------------------------


def test_admin_token_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RECSYS_ADMIN_TOKEN", "RECSYS_SERVING_LOCAL_MODE"):
        monkeypatch.delenv(var, raising=False)
    local = ServingSettings()
    assert local.check_admin_token().get_secret_value() == DEV_ADMIN_TOKEN
    assert local.admin_token_matches(DEV_ADMIN_TOKEN) and not local.admin_token_matches("nope")
    assert not local.admin_token_matches(None)

    monkeypatch.setenv("RECSYS_SERVING_LOCAL_MODE", "false")
    for token, reason in (
        (None, "unset or empty"),
        ("   ", "unset or empty"),
        (DEV_ADMIN_TOKEN, "well-known development token"),
        ("short", "at least 16"),
    ):
        if token is None:
            monkeypatch.delenv("RECSYS_ADMIN_TOKEN", raising=False)
        else:
            monkeypatch.setenv("RECSYS_ADMIN_TOKEN", token)
        with pytest.raises(ValidationError, match=reason):
            ServingSettings()  # the model validator refuses it at start-up
        # Built without validation (or changed afterwards), the methods still refuse it.
        settings = ServingSettings.model_construct(
            local_mode=False, host="127.0.0.1", admin_token=SecretStr(token) if token is not None else None
        )
        with pytest.raises(AdminTokenError, match=reason):
            settings.check_admin_token()
        assert not settings.admin_token_matches(token or "")

    monkeypatch.setenv("RECSYS_ADMIN_TOKEN", "a-long-secret-token-0123")
    prod = ServingSettings()
    assert prod.check_admin_token().get_secret_value() == "a-long-secret-token-0123"
    assert prod.admin_token_matches("a-long-secret-token-0123")
    assert "a-long-secret" not in repr(prod)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_dev_token_is_accepted_on_loopback(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    monkeypatch.delenv("RECSYS_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("RECSYS_SERVING_LOCAL_MODE", raising=False)
    monkeypatch.setenv("RECSYS_SERVING_HOST", host)
    assert ServingSettings().admin_token_matches(DEV_ADMIN_TOKEN)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "api.example.org", ""])
def test_dev_token_is_refused_beyond_loopback_even_in_local_mode(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    monkeypatch.delenv("RECSYS_SERVING_LOCAL_MODE", raising=False)  # local mode (the default)
    monkeypatch.setenv("RECSYS_SERVING_HOST", host)
    for token, reason in (
        (None, "unset or empty"),
        (DEV_ADMIN_TOKEN, "well-known"),
        ("short-token", "at least 16"),
    ):
        if token is None:
            monkeypatch.delenv("RECSYS_ADMIN_TOKEN", raising=False)
        else:
            monkeypatch.setenv("RECSYS_ADMIN_TOKEN", token)
        with pytest.raises(ValidationError) as err:
            ServingSettings()
        assert reason in str(err.value) and "not loopback" in str(err.value)
    monkeypatch.setenv("RECSYS_ADMIN_TOKEN", "0123456789abcdef")
    s = ServingSettings()
    assert s.admin_token_matches("0123456789abcdef") and not s.admin_token_matches(DEV_ADMIN_TOKEN)


def test_recsys_serve_feeds_its_host_option_into_the_token_check(monkeypatch: pytest.MonkeyPatch) -> None:
    from recsys.cli import app

    monkeypatch.delenv("RECSYS_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("RECSYS_SERVING_LOCAL_MODE", raising=False)
    monkeypatch.setenv("RECSYS_SERVING_HOST", "127.0.0.1")  # the environment says loopback...
    monkeypatch.setenv("RECSYS_SERVING_PORT", "8082")  # restored afterwards: `serve` exports its options
    started: list[dict[str, object]] = []
    monkeypatch.setattr("uvicorn.run", lambda *a, **kw: started.append(kw))
    try:
        result = CliRunner().invoke(
            app, ["serve", "--host", "0.0.0.0", "--port", "18082"]
        )  # ...the option not
        assert result.exit_code == 2, result.output
        assert "refusing to serve" in result.output and "'0.0.0.0' (not loopback)" in result.output
        assert not started
        monkeypatch.setenv("RECSYS_ADMIN_TOKEN", "a-long-secret-token-0123")
        result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", "18082", "--workers", "1"])
        assert result.exit_code == 0, result.output
        assert (started[0]["host"], started[0]["port"]) == ("0.0.0.0", 18082)
    finally:
        get_serving_settings.cache_clear()


def test_serving_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RECSYS_SERVING_PORT", "9000")
    monkeypatch.setenv("RECSYS_SERVING_EXPERIMENTS_FILE", str(tmp_path / "x.yaml"))
    monkeypatch.setenv("RECSYS_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("RECSYS_REDIS_URL", "redis://example:1/2")
    monkeypatch.setenv("RECSYS_SERVING_UNKNOWN_KNOB", "ignored")  # by the class; entry points refuse it
    s = ServingSettings()
    assert (s.port, s.experiments_file, s.var_dir, s.redis_url) == (
        9000,
        tmp_path / "x.yaml",
        tmp_path,
        "redis://example:1/2",
    )
    assert s.request_budget_ms < 600 and s.provenance_buffer >= 1
    assert all(f.description for f in ServingSettings.model_fields.values())


def test_the_admin_token_can_come_from_a_file_and_the_file_is_checked_like_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("RECSYS_ADMIN_TOKEN", raising=False)
    monkeypatch.setenv("RECSYS_SERVING_LOCAL_MODE", "false")
    secret = tmp_path / "admin_token"
    secret.write_text("a-long-secret-from-a-file-42\n")  # mounted secrets often end with a newline
    monkeypatch.setenv("RECSYS_ADMIN_TOKEN_FILE", str(secret))
    settings = ServingSettings()
    assert settings.admin_token_matches("a-long-secret-from-a-file-42")
    assert "a-long-secret-from-a-file-42" not in repr(settings) + settings.model_dump_json()

    secret.write_text(DEV_ADMIN_TOKEN)
    with pytest.raises(ValidationError, match="well-known development token"):
        ServingSettings()
    monkeypatch.setenv("RECSYS_ADMIN_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValidationError, match="cannot be read: FileNotFoundError"):
        ServingSettings()
    secret.write_text("a-long-secret-from-a-file-42")
    monkeypatch.setenv("RECSYS_ADMIN_TOKEN_FILE", str(secret))
    monkeypatch.setenv("RECSYS_ADMIN_TOKEN", "another-long-secret-0123")
    with pytest.raises(ValidationError, match="not both"):
        ServingSettings()
