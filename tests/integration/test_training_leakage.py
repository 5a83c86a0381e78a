"""Leakage safety of the training sets, on a real Feast store (DuckDB offline, Redis online).

1. A feature value stamped one microsecond after a cut-off is never joined at that cut-off.
2. Nothing from the test period (a movie watched only then) reaches any training example:
   not the candidates, not the features, not the labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from events.metadata import GENRES
from feature_repo.config import arrow_schema
from ingestion.feast_bridge import open_feature_store
from ranking import columns as C  # noqa: N812
from ranking.dataset import build_split, plan_splits
from ranking.interactions import history, load_ratings, load_sessions
from tests.integration.conftest import StackInfo

pytestmark = pytest.mark.integration
DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2026-10-01", tz="UTC")
LEAK_MOVIE = "only+in+the+test+period+2026"


def _write(path: Path, rows: list[dict[str, object]], view: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema(view)), path)


def _world(var: Path) -> None:
    rng = np.random.default_rng(3)
    movies = [f"movie+{i}+{2000 + i}" for i in range(40)]
    sessions = []
    for user in range(1, 81):
        liked = rng.choice(40, 8, replace=False)
        for _ in range(25):
            start = T0 + pd.Timedelta(seconds=int(rng.integers(0, 10 * 86_400)))
            minutes = int(rng.integers(5, 90))
            sessions.append({"user_id": user, "movie_id": movies[int(rng.choice(liked))], "first_minute": 0,
                             "last_minute": minutes - 1, "minutes_watched": minutes, "start_ts": start,
                             "end_ts": start + pd.Timedelta(minutes=minutes)})  # fmt: skip
    df = pd.DataFrame(sessions)
    test_cut = plan_splits(df)[-1].cutoff
    # The planted leak: a movie watched by everyone, but only after the test cut-off.
    for user in range(1, 81):
        start = test_cut + pd.Timedelta(minutes=30 + user)
        df.loc[len(df)] = [user, LEAK_MOVIE, 0, 59, 60, start, start + pd.Timedelta(minutes=60)]
    df["start_ts"] = pd.to_datetime(df["start_ts"], utc=True).astype("datetime64[ns, UTC]")
    df["end_ts"] = pd.to_datetime(df["end_ts"], utc=True).astype("datetime64[ns, UTC]")
    out = var / "offline" / "sessions" / "date=2026-10-01" / "sessions.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    df.astype({"first_minute": "int32", "last_minute": "int32", "minutes_watched": "int32"}).to_parquet(out)


def _features(var: Path, store: object, cutoff: pd.Timestamp) -> None:
    view = store.get_feature_view("user_watch_stats")  # type: ignore[attr-defined]
    rows = []
    for user in range(1, 81):
        for ts, minutes in (
            (cutoff - pd.Timedelta(hours=1), 111.0),
            (cutoff + pd.Timedelta(microseconds=1), 999.0),
        ):
            rows.append({"user_id": user, "watch_minutes_1d": minutes, "watch_minutes_7d": minutes,
                         "watch_count_7d": 1, "watch_count_total": 1, "last_active_ts": int(ts.timestamp()),
                         "recent_movie_ids": [LEAK_MOVIE] if minutes == 999.0 else [],
                         "genre_affinity": [0.0] * len(GENRES), "event_timestamp": ts.to_pydatetime(),
                         "created": ts.to_pydatetime()})  # fmt: skip
    _write(var / "offline" / "features" / "user_watch_stats" / "planted.parquet", rows, view)


def test_no_future_value_and_no_test_period_event_reaches_training(stack: StackInfo, tmp_path: Path) -> None:
    var = tmp_path / "var"
    _world(var)
    sessions, ratings = load_sessions(var / "offline"), load_ratings(var / "offline")
    splits = plan_splits(sessions)
    train_split, test_split = splits[0], splits[-1]
    store = open_feature_store(var, stack.redis_url.rsplit("/", 1)[0] + "/6")
    _features(var, store, train_split.cutoff)

    ex, index, truth = build_split(train_split, sessions, ratings, {}, store)
    assert len(ex.frame) > 0

    # 1. The value planted 1 µs after the cut-off is not joined; the one before it is.
    minutes = ex.frame["user_watch_stats__watch_minutes_1d"]
    assert (minutes == 111.0).all(), minutes.value_counts()

    # 2. Nothing of the test period: no candidate, no label, no generator input.
    for split in splits[:-1]:
        ex, index, truth = build_split(split, sessions, ratings, {}, store)
        assert LEAK_MOVIE not in set(ex.frame[C.ITEM])
        assert LEAK_MOVIE not in set(truth[C.ITEM])
        assert LEAK_MOVIE not in set(index.items)  # no generator (popularity, ALS, item-item) knows it
        assert LEAK_MOVIE not in index.popularity.top(10_000)
        assert history(sessions, split.cutoff)[C.TIMESTAMP].max() < split.cutoff
        assert split.end <= test_split.cutoff
    # ...while the test split does see it in its labels (the plant is real).
    _, _, truth = build_split(test_split, sessions, ratings, {}, store)
    assert LEAK_MOVIE in set(truth[C.ITEM])


def test_train_windows_end_before_validation_and_test() -> None:
    df = pd.DataFrame(
        {
            "start_ts": pd.date_range(T0, periods=100, freq="3h"),
            "end_ts": pd.date_range(T0, periods=100, freq="3h"),
        }
    )
    splits = plan_splits(df)
    names = [s.name for s in splits]
    assert names[-2:] == ["valid", "test"]
    valid, test = splits[-2], splits[-1]
    assert all(s.end <= valid.cutoff for s in splits if s.name.startswith("train"))
    assert valid.end <= test.cutoff
    assert [s.cutoff for s in splits] == sorted(s.cutoff for s in splits)
