"""Platform settings: unknown RECSYS_* variables are refused with a suggestion; one var dir function for all."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from core import settings as core_settings
from core.settings import PlatformSettings, UnknownSettingError, check_environment, unknown_variables
from feature_repo import config as feast_config
from recsys import knobs
from recsys.cli import app


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No RECSYS_* variable from the caller's shell leaks into the test."""
    import os

    for name in [n for n in os.environ if n.upper().startswith("RECSYS_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def test_a_typo_fails_at_start_up_with_the_closest_name(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RECSYS_SERVING_PROT", "9000")
    result = CliRunner().invoke(app, ["config"])
    assert result.exit_code == 2, result.output
    assert "RECSYS_SERVING_PROT: did you mean RECSYS_SERVING_PORT?" in result.output
    clean_env.delenv("RECSYS_SERVING_PROT")
    assert CliRunner().invoke(app, ["config"]).exit_code == 0


def test_every_knob_nested_and_internal_variables_pass_and_lowercase_typos_do_not() -> None:
    env = {k.env: "x" for k in knobs.knobs()}
    env |= {
        "RECSYS_INGEST_ENRICHMENT__TIMEOUT_S": "2",  # nested model field (env_nested_delimiter)
        "RECSYS_FEAST_REDIS": "127.0.0.1:6379,db=0",
        "RECSYS_SERVING_METRICS_DIR": "/tmp/x",
        "PATH": "/bin",  # not ours: never checked
    }
    check_environment(knobs.known_env_names(), env)
    unknown = unknown_variables(
        knobs.known_env_names(),
        {
            "recsys_kafka_bootstrap_server": "k",
            "RECSYS_INGEST_ENRICHMENT__TIMEOUT": "1",
            "RECSYS_ZZZZZZZZZZ": "1",
        },
    )
    assert unknown == {
        "recsys_kafka_bootstrap_server": "RECSYS_KAFKA_BOOTSTRAP_SERVERS",
        "RECSYS_INGEST_ENRICHMENT__TIMEOUT": "RECSYS_INGEST_ENRICHMENT__TIMEOUT_S",
        "RECSYS_ZZZZZZZZZZ": None,
    }
    with pytest.raises(UnknownSettingError, match="no similar knob"):
        check_environment(knobs.known_env_names(), {"RECSYS_ZZZZZZZZZZ": "1"})


def test_settings_classes_alone_still_ignore_other_variables(clean_env: pytest.MonkeyPatch) -> None:
    # A class is built by tests and libraries while variables of other classes are set: only
    # entry points check the whole environment.
    from serving.settings import ServingSettings

    clean_env.setenv("RECSYS_SIM_SEED", "7")
    assert ServingSettings().port == 8082


def _classes() -> list[type[PlatformSettings]]:
    out = []
    for path in knobs.SETTINGS_CLASSES:
        cls = knobs._load(path)
        assert issubclass(cls, PlatformSettings), f"{path} does not inherit core.settings.PlatformSettings"
        out.append(cls)
    return out


def test_every_settings_class_resolves_the_var_dir_through_one_function(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    classes = _classes()
    assert (
        len(classes) == len(knobs.SETTINGS_CLASSES) == 8
    )  # every package with settings (+ monitoring, textmodel)
    clean_env.chdir(tmp_path)
    # One default: `var` under the working directory, for every class and for the Feast repo.
    assert {cls().var_dir for cls in classes} | {feast_config.var_dir()} == {tmp_path / "var"}
    clean_env.setenv("RECSYS_VAR_DIR", "rel")
    assert {cls().var_dir for cls in classes} | {feast_config.var_dir()} == {tmp_path / "rel"}

    calls: list[object] = []

    def spy(value: str | Path | None = None) -> Path:
        calls.append(value)
        return Path("/resolved/by/the/one/function")

    clean_env.setattr(core_settings, "resolve_var_dir", spy)
    assert {cls().var_dir for cls in classes} | {feast_config.var_dir()} == {spy()}
    assert len(calls) == len(classes) + 2


def test_var_dir_given_in_code_is_resolved_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ranking.settings import RankSettings

    monkeypatch.chdir(tmp_path)
    assert RankSettings(var_dir=Path("here")).var_dir == tmp_path / "here"
    with pytest.raises(ValueError, match="extra"):
        RankSettings(var_dri=Path("here"))  # type: ignore[call-arg]
