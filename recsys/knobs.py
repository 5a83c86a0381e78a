"""Every configuration knob of the platform: env name, default and one-line purpose, for docs, `recsys config`
and the start-up check that refuses unknown `RECSYS_*` variables (`check_environment`)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic_settings import BaseSettings

from core import settings as core_settings

SETTINGS_CLASSES = (
    "events.settings:KafkaSettings",
    "recsys.settings:StackSettings",
    "simulator.settings:SimSettings",
    "ingestion.settings:IngestSettings",
    "ranking.settings:RankSettings",
    "serving.settings:ServingSettings",
    "monitoring.settings:MonitorSettings",
    "textmodel.settings:TextSettings",
)
"""Each package's settings class, as `module:Class`."""
INTERNAL_ENV = {
    "RECSYS_FEAST_REDIS": "Feast's Redis string for feature_store.yaml, exported by shells (feature_repo.config).",
    "RECSYS_SERVING_METRICS_DIR": "Prometheus multiprocess folder `recsys serve` hands its workers (serving.metrics).",
}
"""Variables the platform sets or reads that are not settings fields, with why they exist."""


@dataclass(frozen=True)
class Knob:
    """One environment variable."""

    env: str
    default: str
    description: str
    owner: str


def _load(path: str) -> type[BaseSettings]:
    module, _, name = path.partition(":")
    cls: object = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, BaseSettings)):
        raise TypeError(f"{path} is not a pydantic-settings class")
    return cls


REPO_DIR = Path(__file__).resolve().parents[1]
"""The checkout: defaults inside it are shown relative to it, so the table does not depend on where it lives."""


def _show(value: object) -> str:
    if isinstance(value, Path) and value.is_absolute() and value.is_relative_to(REPO_DIR):
        return repr(Path(value.relative_to(REPO_DIR)))
    return repr(value)


def knobs() -> list[Knob]:
    """All knobs, in the order of SETTINGS_CLASSES then field order."""
    out: list[Knob] = []
    for path in SETTINGS_CLASSES:
        cls = _load(path)
        prefix = str(cls.model_config.get("env_prefix", ""))
        for name, info in cls.model_fields.items():
            alias = info.validation_alias
            env = alias if isinstance(alias, str) else f"{prefix}{name}".upper()
            default = "" if info.is_required() else _show(info.get_default(call_default_factory=True))
            if all(k.env != env for k in out):  # shared variables (RECSYS_VAR_DIR) appear once
                out.append(Knob(env, default, info.description or "", cls.__name__))
    return out


def markdown_table() -> str:
    """The README's table of knobs."""
    rows = ["| variable | default | purpose |", "|---|---|---|"]
    for k in knobs():
        default = k.default.replace("|", "\\|")
        rows.append(f"| `{k.env}` | `{default}` | {k.description} |")
    return "\n".join(rows)


def known_env_names() -> set[str]:
    """Every `RECSYS_*` variable the platform reads: each settings class's (nested ones too) and INTERNAL_ENV."""
    names = set(INTERNAL_ENV)
    for path in SETTINGS_CLASSES:
        names.update(core_settings.env_names(_load(path)))
    return names


def check_environment(environ: Mapping[str, str] | None = None) -> None:
    """UnknownSettingError (with the closest known names) when a `RECSYS_*` variable is not a knob."""
    core_settings.check_environment(known_env_names(), environ)
