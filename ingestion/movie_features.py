"""Movie feature rows (`movie_popularity`, `movie_rating_stats`, `movie_metadata`) computed from the offline store.

Popularity counts plays (session starts) in windows ending at the stream's latest play, so
a replayed or simulated stream gets the same figures as a live one. Every movie ever
played or rated gets a row each refresh, so a movie that stops being watched sees its
counts fall to zero online rather than keep stale ones.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from events.metadata import MovieMeta
from ingestion.layout import OfflineLayout
from ingestion.progress import atomic_write

TS = pa.timestamp("us", tz="UTC")
POPULARITY_VIEW = "movie_popularity"
RATING_VIEW = "movie_rating_stats"
METADATA_VIEW = "movie_metadata"
HOUR_NS = 3_600 * 10**9


def _glob(layout: OfflineLayout, kind: str) -> str | None:
    base = layout.root / "raw" / kind
    return str(base / "date=*" / "*.parquet") if any(base.glob("date=*/*.parquet")) else None


def movie_rows(
    layout: OfflineLayout, meta: Mapping[str, MovieMeta], created_ns: int | None = None
) -> dict[str, pa.Table]:
    """The three movie views' rows as of the latest play (empty when nothing was played yet)."""
    plays = _glob(layout, "play")
    if plays is None:
        return {}
    created = created_ns or time.time_ns()
    con = duckdb.connect()
    try:
        [(now_ns,)] = con.sql(f"SELECT max(epoch_ns(ts)) FROM read_parquet('{plays}')").fetchall()
        now = int(now_ns)
        pop = con.sql(
            f"""
            SELECT movie_id,
                   count(*) FILTER (WHERE epoch_ns(ts) > {now - HOUR_NS}) AS plays_1h,
                   count(*) FILTER (WHERE epoch_ns(ts) > {now - 24 * HOUR_NS}) AS plays_24h,
                   count(*) FILTER (WHERE epoch_ns(ts) > {now - 168 * HOUR_NS}) AS plays_7d
            FROM read_parquet('{plays}') GROUP BY movie_id ORDER BY movie_id
            """
        ).to_arrow_table()
        completion = _completion(con, layout, meta, now)
        rates = _glob(layout, "rate")
        rating = (
            con.sql(
                f"""SELECT movie_id, count(*) AS rating_count, avg(rating)::FLOAT AS rating_mean
                    FROM read_parquet('{rates}') GROUP BY movie_id ORDER BY movie_id"""
            ).to_arrow_table()
            if rates
            else None
        )
    finally:
        con.close()
    ts_us = now // 1000

    def stamp(table: pa.Table) -> pa.Table:
        n = table.num_rows
        return table.append_column(
            "event_timestamp", pa.array([ts_us] * n, pa.int64()).cast(TS)
        ).append_column("created", pa.array([created // 1000] * n, pa.int64()).cast(TS))

    ids = pop["movie_id"].to_pylist()
    out = {
        POPULARITY_VIEW: stamp(
            pa.table(
                {
                    "movie_id": pop["movie_id"],
                    "plays_1h": pop["plays_1h"].cast(pa.int64()),
                    "plays_24h": pop["plays_24h"].cast(pa.int64()),
                    "plays_7d": pop["plays_7d"].cast(pa.int64()),
                    "completion_rate": pa.array([completion.get(m) for m in ids], pa.float32()),
                }
            )
        )
    }
    if rating is not None and rating.num_rows:
        out[RATING_VIEW] = stamp(
            pa.table(
                {
                    "movie_id": rating["movie_id"],
                    "rating_count": rating["rating_count"].cast(pa.int64()),
                    "rating_mean": rating["rating_mean"].cast(pa.float32()),
                }
            )
        )
    if meta:
        known = sorted(meta)
        out[METADATA_VIEW] = stamp(
            pa.table(
                {
                    "movie_id": pa.array(known, pa.string()),
                    "cost": pa.array([meta[m].cost for m in known], pa.float32()),
                    "genres": pa.array([meta[m].genres for m in known], pa.list_(pa.string())),
                    "year": pa.array([meta[m].year for m in known], pa.int64()),
                    "runtime": pa.array([meta[m].runtime for m in known], pa.int64()),
                    "vote_average": pa.array([meta[m].vote_average for m in known], pa.float32()),
                    "tmdb_popularity": pa.array([meta[m].popularity for m in known], pa.float32()),
                }
            )
        )
    return out


def _completion(
    con: duckdb.DuckDBPyConnection, layout: OfflineLayout, meta: Mapping[str, MovieMeta], now: int
) -> dict[str, float]:
    """Mean share of the runtime watched per session over the last 7 days (movies with a known runtime)."""
    base = layout.root / "sessions"
    if not any(base.glob("date=*/*.parquet")):
        return {}
    rows = con.sql(
        f"""SELECT movie_id, avg(minutes_watched)::DOUBLE AS mean_minutes FROM read_parquet('{base}/date=*/*.parquet')
            WHERE epoch_ns(start_ts) > {now - 168 * HOUR_NS} GROUP BY movie_id"""
    ).fetchall()
    out = {}
    for movie_id, mean_minutes in rows:
        m = meta.get(movie_id)
        if m is not None and m.runtime:
            out[str(movie_id)] = min(1.0, float(mean_minutes) / float(m.runtime))
    return out


def write_rows(layout: OfflineLayout, rows: Mapping[str, pa.Table], stamp_ns: int) -> None:
    """Append each view's rows as one file named by the refresh time."""
    for view, table in rows.items():
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        atomic_write(
            layout.feature_dir(view) / f"refresh-{stamp_ns:020d}.parquet", sink.getvalue().to_pybytes()
        )
