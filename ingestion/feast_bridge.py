"""Opens the Feast store for a var dir and Redis URL, applying the repo's definitions when the registry lacks them.

Data engineers run `feast apply` from `feature_repo/` (docs/features.md); workers and jobs
call `open_feature_store`, so a fresh machine works without that manual step. The check
compares each registered source path with this var dir's, so a registry that points at
another var dir's Parquet files is re-applied rather than silently read, and each view's field
names, so a field added to a definition reaches an existing registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _seed_empty_views(objects: list[Any], var: Path) -> None:
    """Give every view's folder at least an empty, typed Parquet file: DuckDB fails on a glob matching nothing."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from feast import FeatureView

    from feature_repo.config import arrow_schema, offline_dir

    for obj in objects:
        if isinstance(obj, FeatureView):
            folder = offline_dir(obj.name, var)
            if not any(folder.glob("*.parquet")):
                folder.mkdir(parents=True, exist_ok=True)
                pq.write_table(pa.Table.from_pylist([], schema=arrow_schema(obj)), folder / "empty.parquet")


def open_feature_store(var: Path, redis_url: str, apply: bool = True) -> Any:
    """A FeatureStore on `<var>/feast/registry.db` and Redis; (re)applies definitions when missing or stale."""
    from feast import FeatureView

    from feature_repo.config import arrow_schema, definitions, offline_dir, open_store
    from ingestion.movie_features import upgrade_files

    store = open_store(var, redis_url)
    objects = definitions(var)
    _seed_empty_views(objects, var)
    if apply:
        views = {o.name: o for o in objects if isinstance(o, FeatureView)}
        wanted = {name: _shape(v) for name, v in views.items()}
        try:
            have = {fv.name: _shape(fv) for fv in store.list_feature_views()}
        except Exception:  # no registry yet
            have = {}
        if have != wanted:
            # A view that gained a field: its older Parquet files get it as nulls first (DuckDB globs).
            for name in (n for n in wanted if n in have and have[n][1] != wanted[n][1]):
                upgrade_files(offline_dir(name, var), arrow_schema(views[name]))
            store.apply(objects)
    return store


def _shape(view: Any) -> tuple[Any, tuple[str, ...]]:
    """What a registered view must match: its source path and its field names (a new field re-applies)."""
    return getattr(view.batch_source, "path", None), tuple(sorted(f.name for f in view.features))
