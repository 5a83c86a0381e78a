"""Batch (Parquet, DuckDB-read) and push sources of every feature view, at absolute paths under the var dir.

Offline feature rows live in `<var>/offline/features/<view>/*.parquet`: ingestion appends one
file per write and never rewrites one. DuckDB resolves relative paths from the working
directory, so the paths are made absolute here, from `RECSYS_VAR_DIR` (default: `var` under the
working directory, `core.settings.resolve_var_dir`) as read when this module is imported; `feast apply` stores them in the registry.
"""

from __future__ import annotations

from feast import FileSource, PushSource
from feast.data_format import ParquetFormat

from feature_repo.config import CREATED, EVENT_TIMESTAMP, offline_dir


def _parquet_source(view: str) -> FileSource:
    # A glob rather than the folder: DuckDB before 2.0 reads no folders, and the pattern skips
    # the temporary files a writer renames into place. Both need at least one file to exist.
    return FileSource(
        name=f"{view}_source",
        path=str(offline_dir(view) / "*.parquet"),
        file_format=ParquetFormat(),
        timestamp_field=EVENT_TIMESTAMP,
        created_timestamp_column=CREATED,
        description=f"Offline rows of {view}: Parquet files appended by ingestion.",
        owner="data-eng@recsys",
    )


def _push_source(batch: FileSource) -> PushSource:
    view = batch.name.removesuffix("_source")
    return PushSource(
        name=f"{view}_push_source",
        batch_source=batch,
        description=f"Online pushes of {view} from the stream aggregator.",
        owner="data-eng@recsys",
    )


user_watch_stats_source = _parquet_source("user_watch_stats")
user_watch_stats_push_source = _push_source(user_watch_stats_source)
user_rating_stats_source = _parquet_source("user_rating_stats")
user_rating_stats_push_source = _push_source(user_rating_stats_source)
user_profile_source = _parquet_source("user_profile")
user_profile_push_source = _push_source(user_profile_source)
user_description_source = _parquet_source("user_description")
user_description_push_source = _push_source(user_description_source)
movie_popularity_source = _parquet_source("movie_popularity")
movie_popularity_push_source = _push_source(movie_popularity_source)
movie_rating_stats_source = _parquet_source("movie_rating_stats")
movie_rating_stats_push_source = _push_source(movie_rating_stats_source)
movie_metadata_source = _parquet_source("movie_metadata")
movie_metadata_push_source = _push_source(movie_metadata_source)
