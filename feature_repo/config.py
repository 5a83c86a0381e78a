"""Environment and `FeatureStore` factory for this repo: one place that turns settings into Feast config.

`feature_store.yaml` takes its paths and hosts from `${VAR}`s, expanded by Feast with
`os.path.expandvars`, which leaves an unset variable as literal text. Code calls
`open_store(var_dir, redis_url)` (it expands the YAML itself and never touches `os.environ`);
shells export `feast_env(...)`'s variables first (see docs/features.md). Import-safe: no I/O,
and Feast itself is imported only when a store is built. Listed in `.feastignore`.
"""

from __future__ import annotations

import os
import string
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from core import settings as core_settings
from core.settings import VAR_DIR_ENV

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

REPO_DIR = Path(__file__).resolve().parent
"""The Feast repo folder (holds feature_store.yaml)."""
REDIS_ENV = "RECSYS_FEAST_REDIS"
"""Feast's Redis connection string, `host:port,db=N[,password=...]`."""
DEFINITION_MODULES = (
    "feature_repo.entities",
    "feature_repo.data_sources",
    "feature_repo.user_features",
    "feature_repo.movie_features",
    "feature_repo.feature_services",
)
"""The definition modules, in dependency order (what `feast apply` finds, as package modules)."""
EVENT_TIMESTAMP = "event_timestamp"
"""Column holding when a feature row became true (UTC, microseconds)."""
CREATED = "created"
"""Column holding when a feature row was written; breaks ties between rows with one event time."""


def var_dir() -> Path:
    """The absolute var dir as every settings class reads it (`core.settings.resolve_var_dir`)."""
    return core_settings.resolve_var_dir()


def offline_dir(view: str, root: Path | None = None) -> Path:
    """The folder ingestion appends one view's Parquet files to: `<var>/offline/features/<view>`."""
    return (root if root is not None else var_dir()).resolve() / "offline" / "features" / view


def registry_path(root: Path) -> Path:
    """Where the file registry lives under a var dir."""
    return root.resolve() / "feast" / "registry.db"


def redis_connection_string(redis_url: str) -> str:
    """Feast's `host:port,db=N,...` form of a `redis://` or `rediss://` URL; other text passes through unchanged."""
    if "://" not in redis_url:
        return redis_url
    url = urlsplit(redis_url)
    if url.scheme not in ("redis", "rediss"):
        raise ValueError(f"unsupported Redis URL scheme {url.scheme!r} (want redis:// or rediss://)")
    params: dict[str, str] = {"db": url.path.strip("/") or "0"}
    if url.username:
        params["username"] = unquote(url.username)
    if url.password:
        params["password"] = unquote(url.password)
    if url.scheme == "rediss":
        params["ssl"] = "true"
    # Query parameters (socket_timeout=0.25, ...) become redis-py keyword arguments.
    params.update(parse_qsl(url.query))
    if any("," in v or "=" in v for v in params.values()):
        raise ValueError("Redis URL parameters must not hold ',' or '=' (Feast splits on them)")
    host = url.hostname or "127.0.0.1"
    return ",".join([f"{host}:{url.port or 6379}", *(f"{k}={v}" for k, v in params.items())])


def feast_env(root: Path, redis_url: str) -> dict[str, str]:
    """The variables feature_store.yaml and data_sources.py read, for a var dir and a Redis URL."""
    return {VAR_DIR_ENV: str(root.expanduser().resolve()), REDIS_ENV: redis_connection_string(redis_url)}


def load_config(root: Path, redis_url: str) -> Any:
    """feature_store.yaml as a Feast `RepoConfig`, its `${VAR}`s filled from `feast_env` over `os.environ`."""
    import yaml
    from feast.repo_config import RepoConfig

    env = {**os.environ, **feast_env(root, redis_url)}
    text = string.Template((REPO_DIR / "feature_store.yaml").read_text()).safe_substitute(env)
    config = RepoConfig(**yaml.safe_load(text))
    config.repo_path = REPO_DIR
    return config


def open_store(root: Path, redis_url: str) -> FeatureStore:
    """A `FeatureStore` on the registry under `root` and the given Redis; creates the registry's folder."""
    from feast import FeatureStore

    registry_path(root).parent.mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(REPO_DIR), config=load_config(root, redis_url))


def definitions(root: Path) -> list[Any]:
    """Every Feast object of the repo with offline paths under `root`, for `FeatureStore.apply` from code.

    data_sources.py fixes its paths when first imported; a process that imported it for another
    var dir (a test session, a CLI that opened the demo first) would otherwise register those
    paths. So the modules are (re)loaded with `RECSYS_VAR_DIR` set to `root` for the duration.
    """
    import importlib
    import sys

    from feast import Entity, FeatureService, FeatureView
    from feast.data_source import DataSource

    before = os.environ.get(VAR_DIR_ENV)
    os.environ[VAR_DIR_ENV] = str(root.expanduser().resolve())
    try:
        modules = [
            importlib.reload(sys.modules[name]) if name in sys.modules else importlib.import_module(name)
            for name in DEFINITION_MODULES
        ]
    finally:
        if before is None:
            del os.environ[VAR_DIR_ENV]
        else:
            os.environ[VAR_DIR_ENV] = before
    objects: list[Any] = []
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, Entity | DataSource | FeatureView | FeatureService) and not any(
                value is o for o in objects
            ):
                objects.append(value)
    return objects


def arrow_schema(view: FeatureView) -> Any:
    """The pyarrow schema of a view's offline Parquet files: join key, features, then the two timestamps."""
    import pyarrow as pa
    from feast.types import from_feast_to_pyarrow_type

    # Not `view.schema`: Feast builds it through a set, so its order changes between runs.
    columns = [*view.entity_columns, *view.features]
    fields = [pa.field(f.name, from_feast_to_pyarrow_type(f.dtype)) for f in columns]
    fields += [
        pa.field(EVENT_TIMESTAMP, pa.timestamp("us", tz="UTC")),
        pa.field(CREATED, pa.timestamp("us", tz="UTC")),
    ]
    return pa.schema(fields)
