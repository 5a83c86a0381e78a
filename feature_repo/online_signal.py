"""Signals beside Feast's online store: a movie change counter, and the stream clock (latest event time written).

Serving holds all movie features in memory (`serving.movie_table`); re-reading 20,000 movies
costs seconds of CPU, so it must not poll the features themselves. Every writer of movie
views through this project (`ingestion.online.FeastOnlineWriter`: pushes and catch-up
materialisations) increments one Redis counter after the write; each serving worker reads
that one key every few seconds and re-reads the table when it moved. A `feast materialize`
run from the command line does not bump it: the periodic refresh picks that up.

The stream clock lets a service replaying a historical log compute its time features ("days
since active", "days in stream") as of the log's own time instead of today's
(`RECSYS_SERVING_CLOCK=stream`).
"""

from __future__ import annotations

from typing import Any, Final

MOVIE_VIEWS: Final = ("movie_popularity", "movie_rating_stats", "movie_metadata")
"""The movie feature views (the movie side of the `ranker_v1` service)."""
MOVIES_CHANGED_KEY: Final = "recsys:online:movies:changes"
"""Redis key (same db as the Feast online store) counting writes of movie views."""


STREAM_CLOCK_KEY: Final = "recsys:stream:latest_event_s"
"""Redis key: unix seconds of the latest event time written to the online store (the stream clock)."""
_ADVANCE: Final = (
    "local c = tonumber(redis.call('GET', KEYS[1]) or '-1e300') "
    "if tonumber(ARGV[1]) > c then redis.call('SET', KEYS[1], ARGV[1]) end return 1"
)


def advance_clock(client: Any, event_s: float, key: str = STREAM_CLOCK_KEY) -> None:
    """Move the stream clock forward to `event_s` (never back: several writers may race)."""
    client.eval(_ADVANCE, 1, key, repr(float(event_s)))


def read_clock(client: Any, key: str = STREAM_CLOCK_KEY) -> float | None:
    """The stream clock (latest event time ingested, unix seconds); None before the first write."""
    value = client.get(key)
    return float(value) if value is not None else None


def bump(client: Any, key: str = MOVIES_CHANGED_KEY) -> int:
    """Count one write of movie features; returns the new count."""
    return int(client.incr(key))


def read(client: Any, key: str = MOVIES_CHANGED_KEY) -> int:
    """The current count (0 before the first write)."""
    value = client.get(key)
    return int(value) if value is not None else 0


def peek(client: Any, key: str = MOVIES_CHANGED_KEY) -> int | None:
    """The current count, or None when Redis cannot say (down, timed out): readers fall back to periodic refreshes."""
    import redis

    try:
        return read(client, key)
    except redis.RedisError:
        return None
