"""Snapshots of a partition's user state, named by the offset they are complete up to.

A restarted worker loads the newest snapshot at or before the partition's progress marker
and replays the messages in between without landing them again, reaching the exact state
it had before the crash (aggregation is deterministic in the input).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ingestion.progress import atomic_write
from ingestion.state import UserAgg, UserState

_KEEP = 2
_I64 = pa.int64()


def _dict_cols(d: dict[int, int]) -> tuple[list[int], list[int]]:
    return list(d.keys()), list(d.values())


def snapshot_path(root: Path, topic: str, partition: int, next_offset: int) -> Path:
    """Where the snapshot complete up to `next_offset` lives."""
    return root / "_state" / f"{topic}-p{partition}-{next_offset:012d}.parquet"


def save(root: Path, topic: str, partition: int, next_offset: int, state: UserState) -> Path:
    """Write the snapshot atomically and keep only the newest few."""
    users = state.users
    ids = list(users)
    aggs = [users[u] for u in ids]
    hours = [_dict_cols(a.hour_minutes) for a in aggs]
    days = [_dict_cols(a.day_minutes) for a in aggs]
    sdays = [_dict_cols(a.day_sessions) for a in aggs]
    table = pa.table(
        {
            "user_id": pa.array(ids, _I64),
            "minutes_total": pa.array([a.minutes_total for a in aggs], _I64),
            "sessions_total": pa.array([a.sessions_total for a in aggs], _I64),
            "hour_keys": pa.array([h[0] for h in hours], pa.list_(_I64)),
            "hour_vals": pa.array([h[1] for h in hours], pa.list_(_I64)),
            "day_keys": pa.array([d[0] for d in days], pa.list_(_I64)),
            "day_vals": pa.array([d[1] for d in days], pa.list_(_I64)),
            "sday_keys": pa.array([d[0] for d in sdays], pa.list_(_I64)),
            "sday_vals": pa.array([d[1] for d in sdays], pa.list_(_I64)),
            "last_ts_ns": pa.array([a.last_ts_ns for a in aggs], _I64),
            "last_watch_ts_ns": pa.array([a.last_watch_ts_ns for a in aggs], _I64),
            "open_movies": pa.array([list(a.open_movies) for a in aggs], pa.list_(pa.string())),
            "open_ts": pa.array([[v[0] for v in a.open_movies.values()] for a in aggs], pa.list_(_I64)),
            "open_minute": pa.array([[v[1] for v in a.open_movies.values()] for a in aggs], pa.list_(_I64)),
            "recent": pa.array([a.recent for a in aggs], pa.list_(pa.string())),
            "genre_minutes": pa.array([a.genre_minutes for a in aggs], pa.list_(pa.float64())),
            "rating_count": pa.array([a.rating_count for a in aggs], _I64),
            "rating_sum": pa.array([a.rating_sum for a in aggs], _I64),
            "account_ts_ns": pa.array([a.account_ts_ns for a in aggs], _I64),
            "events": pa.array([a.events for a in aggs], _I64),
            "rated_movies": pa.array([list(a.rated) for a in aggs], pa.list_(pa.string())),
            "rated_ts": pa.array([list(a.rated.values()) for a in aggs], pa.list_(_I64)),
        }
    )
    path = snapshot_path(root, topic, partition, next_offset)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    atomic_write(path, sink.getvalue().to_pybytes())
    older = sorted(path.parent.glob(f"{topic}-p{partition}-*.parquet"))
    for old in older[:-_KEEP]:
        old.unlink(missing_ok=True)
    return path


def latest(root: Path, topic: str, partition: int, at_most: int | None) -> tuple[int, Path] | None:
    """(offset, path) of the newest snapshot complete up to at most `at_most` (None: none allowed)."""
    if at_most is None:
        return None
    best: tuple[int, Path] | None = None
    for path in (root / "_state").glob(f"{topic}-p{partition}-*.parquet"):
        offset = int(path.stem.rsplit("-", 1)[1])
        if offset <= at_most and (best is None or offset > best[0]):
            best = (offset, path)
    return best


def load(path: Path, state: UserState) -> None:
    """Fill an empty UserState from a snapshot."""
    cols = pq.read_table(path).to_pydict()
    n = len(cols["user_id"])
    # Snapshots written before ratings were deduplicated have no rated columns: start those empty.
    rated_movies, rated_ts = cols.get("rated_movies", [[]] * n), cols.get("rated_ts", [[]] * n)
    # Snapshots written before rows were stamped by event count: every counted minute, rating and account.
    events = cols.get("events") or [
        m + r + (1 if a else 0)
        for m, r, a in zip(cols["minutes_total"], cols["rating_count"], cols["account_ts_ns"], strict=True)
    ]
    for i, user_id in enumerate(cols["user_id"]):
        state.users[user_id] = UserAgg(
            minutes_total=cols["minutes_total"][i],
            sessions_total=cols["sessions_total"][i],
            hour_minutes=dict(zip(cols["hour_keys"][i], cols["hour_vals"][i], strict=True)),
            day_minutes=dict(zip(cols["day_keys"][i], cols["day_vals"][i], strict=True)),
            day_sessions=dict(zip(cols["sday_keys"][i], cols["sday_vals"][i], strict=True)),
            last_ts_ns=cols["last_ts_ns"][i],
            last_watch_ts_ns=cols["last_watch_ts_ns"][i],
            open_movies={
                m: (t, mi)
                for m, t, mi in zip(
                    cols["open_movies"][i], cols["open_ts"][i], cols["open_minute"][i], strict=True
                )
            },
            recent=list(cols["recent"][i]),
            genre_minutes=list(cols["genre_minutes"][i]),
            rating_count=cols["rating_count"][i],
            rating_sum=cols["rating_sum"][i],
            account_ts_ns=cols["account_ts_ns"][i],
            rated=dict(zip(rated_movies[i], rated_ts[i], strict=True)),
            events=events[i],
        )
