"""Fault: out-of-order, duplicated, late and future lines through the real ingestion path (Kafka -> worker).

The same small history is ingested twice, each into its own offline store: once as a clean
stream in event-time order, once damaged the ways real logs are damaged:

- out of order: a fifth of the lines delivered up to 90 s (event time) early or late;
- duplicated: a tenth of the lines written twice in a row (a producer retry);
- late within the allowed lateness: a twentieth delivered up to 10 minutes (event time, less
  than the 30-minute session gap) after their time, behind newer lines, and for a few users their
  next-to-last minute delivered after everything else (a straggler);
- from the future: lines dated a day ahead of their Kafka message, which must go to the DLQ.

Counted against the clean run: every future line is in the DLQ with reason `future_timestamp` and
nothing else is; the watch sessions (training labels and generator input), the plays per movie,
the training labels of a window and each user's latest feature values (offline, and what the
online store holds after the faulted run) are identical; a duplicated line counts once.
"""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
import redis

from events import format_line
from events.kafka import ensure_topics, make_producer
from events.types import RateEvent, WatchEvent
from ingestion.feast_bridge import open_feature_store
from ingestion.online import FeastOnlineWriter
from ingestion.settings import IngestSettings
from ingestion.worker import IngestWorker
from ranking.interactions import labels, load_ratings, load_sessions
from recsys.stack.redis_server import RedisServer
from tests.integration.conftest import StackInfo

pytestmark = pytest.mark.integration

S = 1_000_000_000
MIN = 60 * S
USERS = range(1, 31)
MOVIES = [f"movie+{i}+{1990 + i}" for i in range(12)]
JITTER_S, LATE_S = 90, 600
"""Out-of-order delivery (± event seconds) and the most a late line trails its time (< the 30-minute gap)."""
WATCH_VIEW, RATING_VIEW = "user_watch_stats", "user_rating_stats"
WATCH_FEATURES = ("watch_minutes_1d", "watch_minutes_7d", "watch_count_7d", "watch_count_total",
                  "last_active_ts", "recent_movie_ids")  # fmt: skip
RATING_FEATURES = ("rating_count", "rating_mean")

Line = tuple[int, int, str]
"""(event time ns, user id, log line)."""


def _history(t0: int) -> list[Line]:
    """Three sessions per user, hours apart over two days, a rating after most; in event-time order."""
    rng = random.Random(7)
    out: list[Line] = []
    for user in USERS:
        start = t0 + rng.randrange(3600) * S
        for _ in range(3):
            movie, length = MOVIES[rng.randrange(len(MOVIES))], rng.randint(4, 12)
            for minute in range(length):
                ts = start + minute * MIN
                out.append((ts, user, format_line(WatchEvent(ts, user, movie, minute))))
            if rng.random() < 0.7:
                ts = start + length * MIN + 20 * S
                out.append((ts, user, format_line(RateEvent(ts, user, movie, rng.randint(1, 5)))))
            start += length * MIN + rng.randint(2, 16) * 3600 * S
    return sorted(out)


def _damaged(clean: list[Line], now_ns: int) -> tuple[list[str], int, int]:
    """The clean lines reordered, duplicated, delayed; plus future lines. Returns (lines, duplicates, future)."""
    rng = random.Random(11)
    keyed: list[tuple[int, int, Line]] = []
    for i, line in enumerate(clean):
        delivery = line[0]
        if rng.random() < 0.2:
            delivery += rng.randint(-JITTER_S, JITTER_S) * S
        elif rng.random() < 0.05:
            delivery += rng.randint(60, LATE_S) * S
        keyed.append((delivery, i, line))
    keyed.sort()
    # Stragglers: a few users' next-to-last line arrives after everything else (still within the lateness).
    stragglers = []
    for user in (3, 9, 21):
        mine = [k for k in keyed if k[2][1] == user and "/data/m/" in k[2][2]]
        stragglers.append(mine[-2])
        keyed.remove(mine[-2])
    lines: list[str] = []
    duplicates = 0
    for _, _, (_, _, text) in keyed + stragglers:
        lines.append(text)
        if rng.random() < 0.1:
            lines.append(text)
            duplicates += 1
    future = [
        format_line(WatchEvent(now_ns + 86_400 * S + k * MIN, u, MOVIES[0], k))
        for k, u in enumerate((2, 5, 5, 17))
    ]
    future.append(format_line(RateEvent(now_ns + 2 * 86_400 * S, 8, MOVIES[1], 5)))
    for k, text in enumerate(future):
        lines.insert(len(lines) * (k + 1) // (len(future) + 1), text)
    return lines, duplicates, len(future)


def _ingest(stack: StackInfo, var: Path, lines: list[str], online: FeastOnlineWriter | None) -> Any:
    topic = f"faults-events-{uuid.uuid4().hex[:8]}"
    ensure_topics({topic: 1})
    producer = make_producer()
    for text in lines:
        producer.produce(topic, text.encode(), key=text.split(",", 2)[1].encode())
    assert producer.flush(30) == 0
    settings = IngestSettings(
        RECSYS_VAR_DIR=var, topic=topic, group_id=f"g-{uuid.uuid4().hex[:6]}", batch_max_messages=120,
        batch_max_seconds=0.2, metrics_port=0, movie_refresh_s=3600.0, push_online=online is not None,
    )  # type: ignore[call-arg]  # fmt: skip
    # Small batches: reordered lines and their duplicates fall on both sides of batch boundaries.
    return IngestWorker(settings, online=online).run(idle_exit_s=2, max_seconds=90)


def _latest(var: Path, view: str, features: tuple[str, ...]) -> dict[int, tuple[Any, ...]]:
    """Each user's newest offline row of a view (newest event time, then newest write): what online must hold."""
    glob = var / "offline" / "features" / view / "*.parquet"
    con = duckdb.connect()
    try:
        rows = con.sql(
            f"SELECT user_id, {', '.join(features)} FROM read_parquet('{glob}') "
            "QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY event_timestamp DESC, created DESC) = 1"
        ).fetchall()
    finally:
        con.close()
    return {int(r[0]): _plain(r[1:]) for r in rows}


def _plain(values: Any) -> tuple[Any, ...]:
    """Values comparable across Parquet and Feast reads (lists as tuples, floats rounded to float32 noise)."""
    return tuple(
        tuple(v) if isinstance(v, list | tuple) else round(float(v), 4) if isinstance(v, float) else v
        for v in values
    )


def _online(store: Any, view: str, features: tuple[str, ...], users: list[int]) -> dict[int, tuple[Any, ...]]:
    got = store.get_online_features(
        features=[f"{view}:{f}" for f in features], entity_rows=[{"user_id": u} for u in users]
    ).to_dict()
    return {
        u: _plain([got[f][i] for f in features])
        for i, u in enumerate(users)
        if got[features[0]][i] is not None
    }


def _plays(var: Path) -> dict[str, int]:
    con = duckdb.connect()
    try:
        glob = var / "offline" / "raw" / "play" / "date=*" / "*.parquet"
        return dict(con.sql(f"SELECT movie_id, count(*) FROM read_parquet('{glob}') GROUP BY ALL").fetchall())
    finally:
        con.close()


def _dlq_reasons(var: Path) -> list[str]:
    con = duckdb.connect()
    try:
        glob = var / "offline" / "raw" / "dlq" / "date=*" / "*.parquet"
        return [r[0] for r in con.sql(f"SELECT reason FROM read_parquet('{glob}')").fetchall()]
    finally:
        con.close()


def _sorted_frame(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(list(df.columns)).reset_index(drop=True)


def test_reordered_duplicated_late_and_future_lines_leave_features_and_labels_as_the_clean_stream(
    stack: StackInfo, own_redis: RedisServer, tmp_path: Path
) -> None:
    now = time.time_ns()
    clean = _history((now - 3 * 86_400 * S) // (3600 * S) * 3600 * S)
    damaged, duplicates, future = _damaged(clean, now)
    assert duplicates > 20 and len(damaged) == len(clean) + duplicates + future

    clean_var, faulted_var = tmp_path / "clean", tmp_path / "faulted"
    clean_stats = _ingest(stack, clean_var, [c[2] for c in clean], None)
    store = open_feature_store(faulted_var, own_redis.url)
    writer = FeastOnlineWriter(store, redis.Redis.from_url(own_redis.url))
    stats = _ingest(stack, faulted_var, damaged, writer)

    # Every line landed; exactly the future ones were refused, for that reason.
    assert (clean_stats.landed, clean_stats.dlq) == (len(clean), 0)
    assert (stats.landed, stats.dlq) == (len(clean) + duplicates, future), stats
    assert _dlq_reasons(faulted_var) == ["future_timestamp"] * future

    # Sessions (labels and generator input) and plays per movie: as the clean stream's.
    sessions, clean_sessions = load_sessions(faulted_var / "offline"), load_sessions(clean_var / "offline")
    assert len(clean_sessions) == len(USERS) * 3  # sessions hours apart never merge
    pd.testing.assert_frame_equal(_sorted_frame(sessions), _sorted_frame(clean_sessions))
    assert _plays(faulted_var) == _plays(clean_var)
    start = pd.Timestamp(clean[len(clean) // 2][0], unit="ns", tz="UTC")
    end = pd.Timestamp(now, unit="ns", tz="UTC")
    ratings, clean_ratings = load_ratings(faulted_var / "offline"), load_ratings(clean_var / "offline")
    got = labels(sessions, ratings, {}, start, end)
    want = labels(clean_sessions, clean_ratings, {}, start, end)
    assert len(want) > 20
    pd.testing.assert_frame_equal(_sorted_frame(got), _sorted_frame(want))

    # Each user's latest features, offline and online: a duplicate counted once, late lines counted.
    for view, features in ((WATCH_VIEW, WATCH_FEATURES), (RATING_VIEW, RATING_FEATURES)):
        want_rows = _latest(clean_var, view, features)
        assert len(want_rows) >= (len(USERS) if view == WATCH_VIEW else 10)
        offline = _latest(faulted_var, view, features)
        diff = {u: (offline.get(u), w) for u, w in want_rows.items() if offline.get(u) != w}
        assert not diff, f"{view} offline differs for {len(diff)} users: {list(diff.items())[:3]}"
        online = _online(store, view, features, sorted(want_rows))
        diff = {u: (online.get(u), w) for u, w in want_rows.items() if online.get(u) != w}
        assert not diff, f"{view} online differs for {len(diff)} users: {list(diff.items())[:3]}"
