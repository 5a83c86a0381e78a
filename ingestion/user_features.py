"""User feature rows (Feast views `user_watch_stats`, `user_rating_stats`) from the aggregates of touched users."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from ingestion.state import NS_PER_S, DayRow, UserState, genre_affinity, window_features

TS = pa.timestamp("us", tz="UTC")
WATCH_VIEW = "user_watch_stats"
RATING_VIEW = "user_rating_stats"


def _ts_us(ns: list[int]) -> pa.Array:
    # Feast wants microseconds: floor nanoseconds.
    return pa.array([n // 1000 for n in ns], pa.int64()).cast(TS)


def user_rows(state: UserState, users: Iterable[int], created_ns: int) -> dict[str, pa.Table]:
    """One row per touched user and view, stamped at the user's latest event plus 1 us per earlier event
    (`UserAgg.stamp_ns`: point-in-time safe, newer after every change, the same whatever the batch order)."""
    ids = sorted(users)
    if not ids:
        return {}
    aggs = [state.users[u] for u in ids]
    windows = [window_features(a) for a in aggs]
    ts = [a.stamp_ns for a in aggs]
    created = _ts_us([created_ns] * len(ids))
    watch = pa.table(
        {
            "user_id": pa.array(ids, pa.int64()),
            "event_timestamp": _ts_us(ts),
            "created": created,
            "watch_minutes_1d": pa.array([w[0] for w in windows], pa.float32()),
            "watch_minutes_7d": pa.array([w[1] for w in windows], pa.float32()),
            "watch_count_7d": pa.array([w[2] for w in windows], pa.int64()),
            "watch_count_total": pa.array([a.sessions_total for a in aggs], pa.int64()),
            "last_active_ts": pa.array([a.last_ts_ns // NS_PER_S for a in aggs], pa.int64()),
            "recent_movie_ids": pa.array([list(a.recent) for a in aggs], pa.list_(pa.string())),
            "genre_affinity": pa.array([genre_affinity(a) for a in aggs], pa.list_(pa.float32())),
        }
    )
    rated = [i for i, a in enumerate(aggs) if a.rating_count]
    out = {WATCH_VIEW: watch}
    if rated:
        out[RATING_VIEW] = pa.table(
            {
                "user_id": pa.array([ids[i] for i in rated], pa.int64()),
                "event_timestamp": _ts_us([ts[i] for i in rated]),
                "created": _ts_us([created_ns] * len(rated)),
                "rating_count": pa.array([aggs[i].rating_count for i in rated], pa.int64()),
                "rating_mean": pa.array(
                    [aggs[i].rating_sum / aggs[i].rating_count for i in rated], pa.float32()
                ),
            }
        )
    return out


def with_day_rows(features: dict[str, pa.Table], days: list[DayRow], created_ns: int) -> dict[str, pa.Table]:
    """`features` with the day-end rows of `UserState.drain_days` added to the watch and rating views."""
    if not days:
        return features
    out = dict(features)
    created = _ts_us([created_ns] * len(days))
    watch = pa.table(
        {
            "user_id": pa.array([d.user_id for d in days], pa.int64()),
            "event_timestamp": _ts_us([d.ts_ns for d in days]),
            "created": created,
            "watch_minutes_1d": pa.array([d.windows[0] for d in days], pa.float32()),
            "watch_minutes_7d": pa.array([d.windows[1] for d in days], pa.float32()),
            "watch_count_7d": pa.array([d.windows[2] for d in days], pa.int64()),
            "watch_count_total": pa.array([d.sessions_total for d in days], pa.int64()),
            "last_active_ts": pa.array([d.ts_ns // NS_PER_S for d in days], pa.int64()),
            "recent_movie_ids": pa.array([list(d.recent) for d in days], pa.list_(pa.string())),
            "genre_affinity": pa.array([list(d.affinity) for d in days], pa.list_(pa.float32())),
        }
    )
    out[WATCH_VIEW] = pa.concat_tables([watch, features[WATCH_VIEW]]) if WATCH_VIEW in features else watch
    rated = [d for d in days if d.rating_count]
    if rated:
        rating = pa.table(
            {
                "user_id": pa.array([d.user_id for d in rated], pa.int64()),
                "event_timestamp": _ts_us([d.ts_ns for d in rated]),
                "created": _ts_us([created_ns] * len(rated)),
                "rating_count": pa.array([d.rating_count for d in rated], pa.int64()),
                "rating_mean": pa.array([d.rating_sum / d.rating_count for d in rated], pa.float32()),
            }
        )
        out[RATING_VIEW] = (
            pa.concat_tables([rating, features[RATING_VIEW]]) if RATING_VIEW in features else rating
        )
    return out
