"""whylogs profiles of ingested events, served features and scores: frames from Parquet, hourly profiles on disk.

A profile holds independent column sketches, so one profile takes several frames of different
lengths: the events profile is one row per watch session (minutes, the movie's cost and runtime,
the user's age, gender and occupation), one row per genre of each session's movie, one per
rating and one per recommendation request. Hourly profiles are written to
`profiles/<profile>/<YYYYmmddHH>.bin`; a window's profile is their merge.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final, Literal

import duckdb
import numpy as np
import pandas as pd

Kind = Literal["numeric", "categorical"]
"""How a column's drift is measured: binned distribution (numeric) or frequent items (categorical)."""
PROFILE_NAMES: Final = ("events", "features", "scores")
"""The profiles drift compares with their reference."""
SETTLE_S: Final = 1800
"""A session is over once this long has passed since its last minute (ingestion's session gap)."""
EVENT_COLUMNS: Final[dict[str, Kind]] = {
    "minutes_watched": "numeric",
    "movie_cost": "numeric",
    "movie_runtime": "numeric",
    "user_age": "numeric",
    "user_gender": "categorical",
    "user_occupation": "categorical",
    "genre": "categorical",
    "rating": "numeric",
    "response_ms": "numeric",
    "status": "categorical",
}
"""Columns of the events profile and their kind."""
FEATURE_LOG_IDS: Final = ("ts", "request_id", "user_id", "model_version", "arm", "movie_id", "score")
"""Feature log columns that are not model features (core.layout.FEATURE_LOG_DIR)."""
SCORE: Final = "score"
"""The ranker's score column, in the feature log and the reference sample."""
HOUR_FORMAT: Final = "%Y%m%d%H"
"""File stem of an hourly profile."""

log = logging.getLogger(__name__)


def whylogs_core() -> Any:
    """whylogs, imported on first use (seconds of import time) with its usage telemetry off."""
    os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "1")
    import whylogs.core

    return whylogs.core


def query(sql: str) -> pd.DataFrame:
    """The result of one DuckDB query over Parquet files, as a frame."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")  # timestamps come back in UTC whatever the host's zone
        df: pd.DataFrame = con.sql(sql).df()
        return df
    finally:
        con.close()


def table_glob(offline: Path, table: str) -> str | None:
    """DuckDB glob of a table's Parquet files, or None when it has none."""
    base = offline / table
    if any(base.glob("*.parquet")):
        return str(base / "*.parquet")
    if any(base.glob("date=*/*.parquet")):
        return str(base / "date=*" / "*.parquet")
    return None


def _latest(glob: str | None, key: str, columns: str) -> str:
    """A subquery of the newest row per key of a feature view (or an empty one when absent)."""
    if glob is None:
        return f"(SELECT NULL::VARCHAR AS {key} WHERE false)"
    return (
        f"(SELECT {key}, {columns} FROM read_parquet('{glob}', union_by_name=true) "
        f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY event_timestamp DESC, created DESC) = 1)"
    )


def latest_event(offline: Path) -> pd.Timestamp | None:
    """Log time of the newest landed watch, rating or recommendation line (the stream's clock), or None."""
    parts = [
        f"SELECT max(ts) AS ts FROM read_parquet('{g}')"
        for kind in ("watch", "rate", "recommendation")
        if (g := table_glob(offline, f"raw/{kind}")) is not None
    ]
    if not parts:
        return None
    value = query(f"SELECT max(ts) AS ts FROM ({' UNION ALL '.join(parts)})")["ts"].iloc[0]
    return None if pd.isna(value) else utc(value)


def utc(value: object) -> pd.Timestamp:
    """A timestamp in UTC (naive values are read as UTC, as the log's times are)."""
    ts = pd.Timestamp(value)  # type: ignore[arg-type]
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _between(col: str, start: pd.Timestamp, end: pd.Timestamp) -> str:
    return f"{col} >= TIMESTAMPTZ '{start.isoformat()}' AND {col} < TIMESTAMPTZ '{end.isoformat()}'"


def event_frames(
    offline: Path, start: pd.Timestamp, end: pd.Timestamp, settled: pd.Timestamp | None = None
) -> dict[str, pd.DataFrame]:
    """Frames of the events profile in [start, end), each with a UTC `ts` column; absent tables give none.

    Plays count at their start (genre, cost, the user); minutes watched at the session's end, and
    only for sessions over before `settled` (ones still running at the stream's edge would read
    short, and keeping only the short ones that ended would too: a false drift either way).
    """
    frames: dict[str, pd.DataFrame] = {}
    if (sessions := table_glob(offline, "sessions")) is not None:
        movies = _latest(table_glob(offline, "features/movie_metadata"), "movie_id", "cost, runtime, genres")
        users = _latest(table_glob(offline, "features/user_profile"), "user_id", "age, gender, occupation")
        df = query(
            f"SELECT s.start_ts AS ts, m.cost::DOUBLE AS movie_cost, "
            f"m.runtime::DOUBLE AS movie_runtime, m.genres, u.age::DOUBLE AS user_age, "
            f"u.gender AS user_gender, u.occupation AS user_occupation "
            f"FROM read_parquet('{sessions}', union_by_name=true) s "
            f"LEFT JOIN {movies} m USING (movie_id) LEFT JOIN {users} u USING (user_id) "
            f"WHERE {_between('s.start_ts', start, end)}"
        )
        genres = df[["ts", "genres"]].explode("genres").dropna(subset=["genres"])
        frames["genre"] = genres.rename(columns={"genres": "genre"}).astype({"genre": str})
        frames["sessions"] = df.drop(columns=["genres"])
        until = end if settled is None else min(end, settled)
        frames["watched"] = query(
            f"SELECT end_ts AS ts, minutes_watched::DOUBLE AS minutes_watched "
            f"FROM read_parquet('{sessions}', union_by_name=true) WHERE {_between('end_ts', start, until)}"
        )
    if (rate := table_glob(offline, "raw/rate")) is not None:
        frames["rate"] = query(
            f"SELECT ts, rating::DOUBLE AS rating FROM read_parquet('{rate}') WHERE {_between('ts', start, end)}"
        )
    if (rec := table_glob(offline, "raw/recommendation")) is not None:
        frames["recommendation"] = query(
            f"SELECT ts, response_ms::DOUBLE AS response_ms, status::VARCHAR AS status "
            f"FROM read_parquet('{rec}') WHERE {_between('ts', start, end)}"
        )
    for df in frames.values():
        df["ts"] = pd.to_datetime(df["ts"], utc=True)
    return frames


def read_feature_log(folder: Path, model_version: int | None = None) -> pd.DataFrame:
    """Serving's sampled feature log (all parts), optionally one model version's rows; empty when absent."""
    files = sorted(folder.glob("date=*/*.parquet"))
    if not files:
        return pd.DataFrame({"ts": pd.Series(dtype="datetime64[us, UTC]")})
    where = "" if model_version is None else f" WHERE model_version = {int(model_version)}"
    df = query(f"SELECT * FROM read_parquet('{folder / 'date=*' / '*.parquet'}', union_by_name=true){where}")
    df["ts"] = pd.to_datetime(df["ts"], utc=True)
    return df


def feature_columns(df: pd.DataFrame) -> list[str]:
    """The model feature columns of a feature log or reference sample (numeric, not ids, score or label)."""
    skip = {*FEATURE_LOG_IDS, "label"}
    return [c for c in df.columns if c not in skip and pd.api.types.is_numeric_dtype(df[c])]


def profile_frames(frames: Iterable[pd.DataFrame]) -> Any:
    """One whylogs DatasetProfileView of several frames (their `ts` columns left out); None when all are empty."""
    why = whylogs_core()
    profile = why.DatasetProfile()
    tracked = False
    for df in frames:
        body = df.drop(columns=["ts"], errors="ignore")
        if len(body) and len(body.columns):
            profile.track(pandas=body.replace([np.inf, -np.inf], np.nan))
            tracked = True
    return profile.view() if tracked else None


def hourly_profiles(frames: Mapping[str, pd.DataFrame], folder: Path) -> Any:
    """Profile each hour of `frames` by their `ts`, write `<folder>/<YYYYmmddHH>.bin`, return the merge (or None)."""
    hours = sorted({h for df in frames.values() if len(df) for h in df["ts"].dt.floor("h").unique()})
    merged: Any = None
    folder.mkdir(parents=True, exist_ok=True)
    for hour in hours:
        view = profile_frames(df[df["ts"].dt.floor("h") == hour] for df in frames.values() if len(df))
        if view is None:
            continue
        write_profile(view, folder / f"{pd.Timestamp(hour).strftime(HOUR_FORMAT)}.bin")
        merged = view if merged is None else merged.merge(view)
    return merged


def write_profile(view: Any, path: Path) -> None:
    """Serialize a profile view atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(view.serialize())
    tmp.replace(path)


def read_profile(path: Path) -> Any:
    """A profile view written by `write_profile`."""
    return whylogs_core().DatasetProfileView.deserialize(path.read_bytes())


def merge_profiles(paths: Iterable[Path]) -> Any:
    """The merge of stored profiles (None when there are none): e.g. a day from its hours."""
    merged: Any = None
    for path in sorted(paths):
        view = read_profile(path)
        merged = view if merged is None else merged.merge(view)
    return merged


def column_rows(view: Any, column: str) -> int:
    """Non-null values a profile saw in a column (0 when the column is absent)."""
    if view is None or column not in view.get_columns():
        return 0
    counts = view.get_column(column).get_metric("counts")
    if counts is None:
        return 0
    return max(0, int(counts.n.value) - int(counts.null.value))  # whylogs counts a NaN as null too


def window_ids(offline: Path, start: pd.Timestamp, end: pd.Timestamp, n: int) -> tuple[list[str], list[int]]:
    """Up to `n` movie ids and user ids of the watch sessions started in [start, end) (for schema checks)."""
    glob = table_glob(offline, "sessions")
    if glob is None or n <= 0:
        return [], []
    df = query(
        f"SELECT movie_id, user_id FROM read_parquet('{glob}') WHERE {_between('start_ts', start, end)}"
    )
    movies = sorted(df["movie_id"].dropna().astype(str).unique())[:n]
    users = sorted(int(u) for u in df["user_id"].dropna().unique())[:n]
    return movies, users
