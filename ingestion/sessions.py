"""Watch sessions folded from raw watch minutes with DuckDB: one row per (user, movie) viewing.

A session is a run of a user's minutes of one movie with no gap longer than the session gap
(keyed by user and movie, so interleaved movies of one user stay whole sessions).
It belongs to the UTC date it started on. Each date is recomputed from the raw minutes of
that date and the day before (sessions cross midnight) and replaces its file atomically, so
the job is idempotent and can run as often as wanted.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from ingestion.layout import OfflineLayout
from ingestion.progress import atomic_write

SESSION_COLUMNS = (
    "user_id", "movie_id", "first_minute", "last_minute", "minutes_watched", "start_ts", "end_ts",
)  # fmt: skip


def stale_dates(layout: OfflineLayout) -> list[str]:
    """Dates whose raw minutes changed after their sessions file was written (or that have none)."""
    raw = layout.root / "raw" / "watch"
    if not raw.exists():
        return []
    out = []
    for d in sorted(raw.glob("date=*")):
        date = d.name.removeprefix("date=")
        target = layout.sessions_dir(date) / "sessions.parquet"
        newest = max((f.stat().st_mtime for f in d.glob("*.parquet")), default=0.0)
        if not target.exists() or target.stat().st_mtime < newest:
            out.append(date)
    # A change on date d can extend sessions that started on d-1... and d's sessions depend on d-1.
    extra = set()
    for date in out:
        nxt = (dt.date.fromisoformat(date) + dt.timedelta(days=1)).isoformat()
        if (raw / f"date={nxt}").exists():
            extra.add(nxt)
    return sorted(set(out) | extra)


def sessionize(layout: OfflineLayout, dates: list[str], gap_s: int = 1800) -> dict[str, int]:
    """Recompute the sessions of each date; return rows written per date."""
    written: dict[str, int] = {}
    con = duckdb.connect()
    try:
        for date in dates:
            day = dt.date.fromisoformat(date)
            sources = [
                str(layout.raw_dir("watch", d.isoformat()) / "*.parquet")
                for d in (day - dt.timedelta(days=1), day)
                if layout.raw_dir("watch", d.isoformat()).exists()
            ]
            if not sources:
                continue
            files = ", ".join(f"'{s}'" for s in sources)
            start_ns = int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp()) * 1_000_000_000
            query = f"""
                WITH w AS (
                    SELECT DISTINCT user_id, movie_id, minute, ts, epoch_ns(ts) AS t FROM read_parquet([{files}])
                ), flagged AS (
                    SELECT *, CASE WHEN lag(t) OVER u IS NULL
                                     OR t - lag(t) OVER u > {int(gap_s) * 1_000_000_000}
                                   THEN 1 ELSE 0 END AS new_session
                    FROM w WINDOW u AS (PARTITION BY user_id, movie_id ORDER BY ts, minute)
                ), numbered AS (
                    SELECT *, sum(new_session) OVER (PARTITION BY user_id, movie_id ORDER BY ts, minute
                                                     ROWS UNBOUNDED PRECEDING) AS sid
                    FROM flagged
                )
                SELECT user_id, movie_id, min(minute)::INTEGER AS first_minute,
                       max(minute)::INTEGER AS last_minute, count(DISTINCT minute)::INTEGER AS minutes_watched,
                       min(ts) AS start_ts, max(ts) AS end_ts
                FROM numbered GROUP BY user_id, movie_id, sid
                HAVING min(t) >= {start_ns} AND min(t) < {start_ns + 86_400_000_000_000}
                ORDER BY user_id, start_ts
            """
            table = con.sql(query).to_arrow_table()
            target = layout.sessions_dir(date) / "sessions.parquet"
            _write(target, table)
            written[date] = table.num_rows
    finally:
        con.close()
    return written


def _write(path: Path, table: object) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    atomic_write(path, sink.getvalue().to_pybytes())
