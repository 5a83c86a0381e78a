"""Opens the Feast store for a var dir and Redis URL, applying the repo's definitions when the registry lacks them.

Data engineers run `feast apply` from `feature_repo/` (docs/features.md); workers and jobs
call `open_feature_store`, so a fresh machine works without that manual step.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

DEFINITION_MODULES = (
    "feature_repo.entities",
    "feature_repo.data_sources",
    "feature_repo.user_features",
    "feature_repo.movie_features",
    "feature_repo.feature_services",
)
"""The repo's definition modules, in dependency order."""


def definitions() -> list[Any]:
    """Every Feast object the repo defines (entities, sources, views, services)."""
    from feast import Entity, FeatureService, FeatureView
    from feast.data_source import DataSource

    objects: list[Any] = []
    seen: set[int] = set()
    for name in DEFINITION_MODULES:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (
                isinstance(value, Entity | FeatureView | FeatureService | DataSource)
                and id(value) not in seen
            ):
                seen.add(id(value))
                objects.append(value)
    return objects


def _seed_empty_views(var: Path) -> None:
    """Give every view's folder at least an empty, typed Parquet file: DuckDB fails on a glob matching nothing."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from feast import FeatureView

    from feature_repo.config import arrow_schema, offline_dir

    for obj in definitions():
        if isinstance(obj, FeatureView):
            folder = offline_dir(obj.name, var)
            if not any(folder.glob("*.parquet")):
                folder.mkdir(parents=True, exist_ok=True)
                pq.write_table(pa.Table.from_pylist([], schema=arrow_schema(obj)), folder / "empty.parquet")


def open_feature_store(var: Path, redis_url: str, apply: bool = True) -> Any:
    """A FeatureStore on `<var>/feast/registry.db` and Redis; applies the definitions if any view is missing."""
    # data_sources.py builds absolute Parquet paths from RECSYS_VAR_DIR when imported.
    os.environ["RECSYS_VAR_DIR"] = str(var.expanduser().resolve())
    from feature_repo.config import open_store

    store = open_store(var, redis_url)
    _seed_empty_views(var)
    if apply:
        objects = definitions()
        wanted = {o.name for o in objects if type(o).__name__ == "FeatureView"}
        try:
            have = {fv.name for fv in store.list_feature_views()}
        except Exception:  # no registry yet
            have = set()
        if not wanted <= have:
            store.apply(objects)
    return store
