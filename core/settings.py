"""The platform settings base: where local state lives, how to reach Redis, and the environment check.

Every package's settings class inherits `PlatformSettings`, so `RECSYS_VAR_DIR` and
`RECSYS_REDIS_URL` are declared once and the var dir is resolved by one function,
`resolve_var_dir`: the variable when set, else `var`, relative paths taken from the current
working directory (containers set an absolute path; Feast's own CLI needs the variable exported,
see docs/features.md).

`check_environment` turns a typo such as `RECSYS_SERVING_PROT` into an error naming the closest
known variable. pydantic-settings only reads the variables a class declares and drops the rest,
so this check is what catches them; the `recsys` CLI runs it once at start-up for every
subcommand (recsys/knobs.py knows every class's variables). Settings classes themselves do not
check: a process (a test, a library user) may build one class while variables of others are set.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX: Final = "RECSYS_"
"""Prefix of every variable the platform reads."""
VAR_DIR_ENV: Final = "RECSYS_VAR_DIR"
"""The local-state root variable."""
REDIS_URL_ENV: Final = "RECSYS_REDIS_URL"
"""The online store (Redis) URL variable."""
DEFAULT_VAR_DIR: Final = Path("var")
"""Local state when `RECSYS_VAR_DIR` is unset: `var` under the current working directory."""
DEFAULT_REDIS_URL: Final = "redis://127.0.0.1:6379/0"
"""The embedded stack's Redis."""


def resolve_var_dir(value: str | Path | None = None) -> Path:
    """The absolute var dir: `value`, else `$RECSYS_VAR_DIR`, else `var`; relative means from the cwd."""
    raw = value if value not in (None, "") else os.environ.get(VAR_DIR_ENV) or DEFAULT_VAR_DIR
    return Path(raw).expanduser().resolve()


class PlatformSettings(BaseSettings):
    """What every package's settings share: the local-state root and the Redis URL."""

    # populate_by_name: code passes field names (var_dir=...), the environment uses the aliases.
    # extra="forbid": a misspelt keyword in code fails (environment typos: check_environment).
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", populate_by_name=True)

    var_dir: Path = Field(
        DEFAULT_VAR_DIR,
        validation_alias=VAR_DIR_ENV,
        validate_default=True,
        description="Root of all local state (git-ignored; relative: from the working directory); delete to reset.",
    )
    redis_url: str = Field(
        DEFAULT_REDIS_URL,
        validation_alias=REDIS_URL_ENV,
        description="Online store (Redis) URL; the stack starts redis-server when it does not answer.",
    )

    @field_validator("var_dir", mode="after")
    @classmethod
    def _absolute_var_dir(cls, value: Path) -> Path:
        return resolve_var_dir(value)


class UnknownSettingError(ValueError):
    """`RECSYS_*` variables that no settings class reads (a typo or a removed knob)."""

    def __init__(self, unknown: Mapping[str, str | None]) -> None:
        self.unknown = dict(unknown)
        lines = [
            f"  {name}" + (f": did you mean {hint}?" if hint else ": no similar knob")
            for name, hint in sorted(self.unknown.items())
        ]
        super().__init__(
            "unknown RECSYS_ environment variable(s); unset or rename them "
            "(`recsys config` lists every knob):\n" + "\n".join(lines)
        )


def unknown_variables(
    known: Iterable[str], environ: Mapping[str, str] | None = None
) -> dict[str, str | None]:
    """Each `RECSYS_*` variable of `environ` not in `known`, with the closest known name (or None)."""
    names = {k.upper() for k in known}
    env = os.environ if environ is None else environ
    out: dict[str, str | None] = {}
    for name in env:
        upper = name.upper()  # pydantic-settings matches variables case-insensitively
        if upper.startswith(ENV_PREFIX) and upper not in names:
            close = difflib.get_close_matches(upper, names, n=1, cutoff=0.6)
            out[name] = close[0] if close else None
    return out


def check_environment(known: Iterable[str], environ: Mapping[str, str] | None = None) -> None:
    """Raise UnknownSettingError when a `RECSYS_*` variable is not one of `known`."""
    unknown = unknown_variables(known, environ)
    if unknown:
        raise UnknownSettingError(unknown)


def env_names(cls: type[BaseSettings]) -> list[str]:
    """Every variable that sets a field of `cls`, nested models' `<FIELD><delimiter><SUBFIELD>` included."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    delimiter = cls.model_config.get("env_nested_delimiter")
    out: list[str] = []
    for name, info in cls.model_fields.items():
        alias = info.validation_alias
        env = alias if isinstance(alias, str) else f"{prefix}{name}".upper()
        out.append(env)
        sub: Any = info.annotation
        if delimiter and isinstance(sub, type) and hasattr(sub, "model_fields"):
            out += [f"{env}{delimiter}{field}".upper() for field in sub.model_fields]
    return out
