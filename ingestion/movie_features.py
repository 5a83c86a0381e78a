"""Movie feature rows (`movie_popularity`, `movie_rating_stats`, `movie_metadata`) computed from the offline store.

Rows are written on an hourly grid of *event* time: the row stamped at the end of hour h
holds plays (sessions started) in the hour, the 24 hours and the 7 days up to it, the
completion rate of the sessions that *ended* in those 7 days, and ratings up to it. So a
training example cut at time t joins (through Feast, point in time) the movie's state at
the last full hour before t, whether the stream was live or replayed from history. Each
refresh adds the hours completed since the last one, plus one row for the hour in
progress stamped at the newest play (the freshest online value). Windows are counted in
whole hours; plays arriving after their hour was written are not folded back (documented
approximation).

A view that gains a column (`movie_metadata.adult`) would leave older files without it, and
DuckDB reads a glob with the first file's columns and fails on a file missing one of them, so
`write_rows` first gives older files the new columns as nulls (once per schema: `_schema.json`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from events.metadata import MovieMeta
from ingestion.layout import OfflineLayout
from ingestion.progress import atomic_write

TS = pa.timestamp("us", tz="UTC")
POPULARITY_VIEW = "movie_popularity"
RATING_VIEW = "movie_rating_stats"
METADATA_VIEW = "movie_metadata"
HOUR_NS = 3_600 * 10**9
_STATE = "_movie_job.json"
_SCHEMA = "_schema.json"
"""In a view's folder: the column names every Parquet file there is known to have."""


def _glob(layout: OfflineLayout, kind: str) -> str | None:
    base = layout.root / "raw" / kind
    return str(base / "date=*" / "*.parquet") if any(base.glob("date=*/*.parquet")) else None


def _last_hour(layout: OfflineLayout) -> int | None:
    path = layout.root / "features" / _STATE
    return int(json.loads(path.read_text())["last_complete_hour"]) if path.exists() else None


def movie_rows(
    layout: OfflineLayout, meta: Mapping[str, MovieMeta], created_ns: int | None = None
) -> dict[str, pa.Table]:
    """New rows of the three movie views since the last refresh (empty when nothing was played yet)."""
    plays = _glob(layout, "play")
    if plays is None:
        return {}
    created = created_ns or time.time_ns()
    con = duckdb.connect()
    try:
        con.sql(
            f"CREATE TEMP TABLE c AS SELECT movie_id, epoch_ns(ts) // {HOUR_NS} AS h, count(*)::BIGINT AS n, "
            f"min(epoch_ns(ts)) AS first_ns, max(epoch_ns(ts)) AS last_ns FROM read_parquet('{plays}') GROUP BY ALL"
        )
        [(h_min, now_ns)] = con.sql("SELECT min(h), max(last_ns) FROM c").fetchall()
        now_h = int(now_ns) // HOUR_NS
        last = _last_hour(layout)
        h_from = int(h_min) if last is None else last + 1
        out: dict[str, pa.Table] = {}
        pop = _popularity(con, layout, meta, h_from, now_h, int(now_ns))
        if pop.num_rows:
            out[POPULARITY_VIEW] = _stamp(pop, created)
        rates = _glob(layout, "rate")
        if rates is not None:
            rating = _ratings(con, rates, h_from, now_h, int(now_ns))
            if rating.num_rows:
                out[RATING_VIEW] = _stamp(rating, created)
        if meta:
            first = dict(con.sql("SELECT movie_id, min(first_ns) FROM c GROUP BY ALL").fetchall())
            out[METADATA_VIEW] = _stamp(_metadata(meta, first, int(now_ns)), created)
    finally:
        con.close()
    atomic_write(layout.root / "features" / _STATE, json.dumps({"last_complete_hour": now_h - 1}).encode())
    return out


def _popularity(
    con: duckdb.DuckDBPyConnection,
    layout: OfflineLayout,
    meta: Mapping[str, MovieMeta],
    h_from: int,
    now_h: int,
    now_ns: int,
) -> pa.Table:
    # Grid hours g in [h_from, now_h]; the row for g is stamped at the end of g, except the
    # hour in progress (now_h), stamped at the newest play. Plays count in the hour they
    # started; a session's completion counts in the hour it *ended* (its minutes are known
    # only then), and only sessions ended by the row's stamp: no row sees a later minute.
    _completion_parts(con, layout, meta, h_from, now_ns)
    rows = con.sql(
        f"""
        WITH g AS (SELECT unnest(range({h_from}, {now_h} + 1)) AS g),
        u AS (SELECT movie_id, h, n, 0::BIGINT AS sn, 0.0::DOUBLE AS share FROM c
              UNION ALL SELECT movie_id, h, 0::BIGINT, sn, share FROM done)
        SELECT u.movie_id, g.g AS hour,
               coalesce(sum(u.n) FILTER (WHERE u.h = g.g), 0)::BIGINT AS plays_1h,
               coalesce(sum(u.n) FILTER (WHERE u.h > g.g - 24), 0)::BIGINT AS plays_24h,
               sum(u.n)::BIGINT AS plays_7d,
               (CASE WHEN sum(u.sn) > 0 THEN least(sum(u.share) / sum(u.sn), 1.0) END)::FLOAT AS completion_rate
        FROM g JOIN u ON u.h <= g.g AND u.h > g.g - 168
        GROUP BY ALL HAVING sum(u.n) > 0 ORDER BY hour, u.movie_id
        """
    ).to_arrow_table()
    hours = rows["hour"].to_numpy().astype(np.int64)
    ts_ns = np.where(hours == now_h, now_ns, (hours + 1) * HOUR_NS)
    # The movie's first play ever (every play so far is in `c`): at or before any row's stamp,
    # since a row exists only once the movie was played, so the value is point-in-time safe.
    first = con.sql("SELECT movie_id, min(first_ns) // 1000000000 AS s FROM c GROUP BY ALL").to_arrow_table()
    first_at = pc.index_in(rows["movie_id"], first["movie_id"])
    return pa.table(
        {
            "movie_id": rows["movie_id"],
            "event_timestamp": pa.array(ts_ns // 1000, pa.int64()).cast(TS),
            "plays_1h": rows["plays_1h"],
            "plays_24h": rows["plays_24h"],
            "plays_7d": rows["plays_7d"],
            "completion_rate": rows["completion_rate"],
            "first_play_ts": pc.take(first["s"], first_at).cast(pa.int64()),
        }
    )


def _ratings(con: duckdb.DuckDBPyConnection, rates: str, h_from: int, now_h: int, now_ns: int) -> pa.Table:
    # Cumulative count and mean up to each hour in which the movie got a rating.
    rows = con.sql(
        f"""
        WITH r AS (SELECT movie_id, epoch_ns(ts) // {HOUR_NS} AS h, count(*) AS n, sum(rating) AS s
                   FROM read_parquet('{rates}') GROUP BY ALL),
        cum AS (SELECT movie_id, h, sum(n) OVER w AS cnt, sum(s) OVER w AS total FROM r
                WINDOW w AS (PARTITION BY movie_id ORDER BY h ROWS UNBOUNDED PRECEDING))
        SELECT movie_id, h AS hour, cnt::BIGINT AS rating_count, (total / cnt)::FLOAT AS rating_mean
        FROM cum WHERE h >= {h_from} AND h <= {now_h} ORDER BY hour, movie_id
        """
    ).to_arrow_table()
    hours = rows["hour"].to_numpy()
    ts_us = [(now_ns if h == now_h else (int(h) + 1) * HOUR_NS) // 1000 for h in hours]
    return pa.table(
        {
            "movie_id": rows["movie_id"],
            "event_timestamp": pa.array(ts_us, pa.int64()).cast(TS),
            "rating_count": rows["rating_count"],
            "rating_mean": rows["rating_mean"],
        }
    )


def _metadata(meta: Mapping[str, MovieMeta], first_play_ns: Mapping[str, int], now_ns: int) -> pa.Table:
    # Catalogue facts hold from when the platform first saw the movie played (before that it
    # could not be a training example anyway).
    known = sorted(meta)
    return pa.table(
        {
            "movie_id": pa.array(known, pa.string()),
            "event_timestamp": pa.array(
                [first_play_ns.get(m, now_ns) // 1000 for m in known], pa.int64()
            ).cast(TS),
            "cost": pa.array([meta[m].cost for m in known], pa.float32()),
            "genres": pa.array([meta[m].genres for m in known], pa.list_(pa.string())),
            "year": pa.array([meta[m].year for m in known], pa.int64()),
            "runtime": pa.array([meta[m].runtime for m in known], pa.int64()),
            "vote_average": pa.array([meta[m].vote_average for m in known], pa.float32()),
            "tmdb_popularity": pa.array([meta[m].popularity for m in known], pa.float32()),
            "adult": pa.array([meta[m].adult for m in known], pa.bool_()),
        }
    )


def _stamp(table: pa.Table, created_ns: int) -> pa.Table:
    return table.append_column(
        "created", pa.array([created_ns // 1000] * table.num_rows, pa.int64()).cast(TS)
    )


def _completion_parts(
    con: duckdb.DuckDBPyConnection,
    layout: OfflineLayout,
    meta: Mapping[str, MovieMeta],
    h_from: int,
    now_ns: int,
) -> None:
    """Temp table `done(movie_id, h, sn, share)`: sessions ended in hour h (by `now_ns`) and their summed shares.

    A session's share is minutes watched / runtime, capped at 1; movies without a known
    runtime get no rows (their completion_rate stays null). Only hours a grid row from
    `h_from` on can reach (its trailing 168 hours) are read.
    """
    runtimes = pa.table(
        {
            "movie_id": pa.array([m for m, v in meta.items() if v.runtime], pa.string()),
            "runtime": pa.array([float(v.runtime or 0) for v in meta.values() if v.runtime], pa.float64()),
        }
    )
    con.register("runtimes", runtimes)
    base = layout.root / "sessions"
    if any(base.glob("date=*/*.parquet")):
        source = (
            f"SELECT movie_id, minutes_watched, epoch_ns(end_ts) AS end_ns "
            f"FROM read_parquet('{base}/date=*/*.parquet')"
        )
    else:
        source = "SELECT NULL::VARCHAR AS movie_id, NULL::INTEGER AS minutes_watched, NULL::BIGINT AS end_ns WHERE false"
    con.sql(
        f"""CREATE OR REPLACE TEMP TABLE done AS
            SELECT s.movie_id, s.end_ns // {HOUR_NS} AS h, count(*)::BIGINT AS sn,
                   sum(least(s.minutes_watched / r.runtime, 1.0))::DOUBLE AS share
            FROM ({source}) s JOIN runtimes r USING (movie_id)
            WHERE s.end_ns // {HOUR_NS} > {h_from} - 168 AND s.end_ns <= {now_ns}
            GROUP BY ALL"""
    )
    con.unregister("runtimes")


def latest_per_movie(table: pa.Table) -> pa.Table:
    """The newest row of each movie: what the online store should hold."""
    order = pc.sort_indices(table, [("movie_id", "ascending"), ("event_timestamp", "descending")])
    t = table.take(order)
    ids = t["movie_id"].to_pylist()
    keep = [i for i in range(len(ids)) if i == 0 or ids[i] != ids[i - 1]]
    return t.take(pa.array(keep, pa.int64()))


def write_rows(layout: OfflineLayout, rows: Mapping[str, pa.Table], stamp_ns: int) -> None:
    """Append each view's rows as one file named by the refresh time (older files first get any new column)."""
    for view, table in rows.items():
        upgrade_files(layout.feature_dir(view), table.schema)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        atomic_write(
            layout.feature_dir(view) / f"refresh-{stamp_ns:020d}.parquet", sink.getvalue().to_pybytes()
        )


def upgrade_files(folder: Path, schema: pa.Schema) -> list[Path]:
    """Rewrite the folder's Parquet files that lack a column of `schema`, with that column null; the paths rewritten.

    Once per set of column names (recorded in `_schema.json`), so the steady state costs one small
    file read per write. Each file is replaced atomically: a concurrent reader sees it whole.
    """
    marker = folder / _SCHEMA
    names = sorted(schema.names)
    if marker.is_file() and json.loads(marker.read_text()) == names:
        return []
    rewritten = []
    for path in sorted(folder.glob("*.parquet")):
        missing = [f for f in schema if f.name not in pq.read_schema(path).names]
        if not missing:
            continue
        table = pq.read_table(path)
        for f in missing:
            table = table.append_column(f, pa.nulls(table.num_rows, f.type))
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        atomic_write(path, sink.getvalue().to_pybytes())
        rewritten.append(path)
    if folder.is_dir():
        atomic_write(marker, json.dumps(names).encode())
    return rewritten
