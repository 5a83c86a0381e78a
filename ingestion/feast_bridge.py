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


def open_feature_store(var: Path, redis_url: str, apply: bool = True) -> Any:
    """A FeatureStore on `<var>/feast/registry.db` and Redis; applies the definitions if any view is missing."""
    # data_sources.py builds absolute Parquet paths from RECSYS_VAR_DIR when imported.
    os.environ["RECSYS_VAR_DIR"] = str(var.expanduser().resolve())
    from feature_repo.config import open_store

    store = open_store(var, redis_url)
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
