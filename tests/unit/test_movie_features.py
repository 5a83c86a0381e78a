"""Movie feature rows: popularity windows and a completion rate that never sees a later session."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from events.metadata import MovieMeta
from ingestion.layout import OfflineLayout
from ingestion.movie_features import movie_rows

T0 = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
MOVIE = "a+movie+2001"
RUNTIME = 100


def _at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def _layout(tmp_path: Path, sessions: list[tuple[float, float, int]]) -> OfflineLayout:
    """One play per session (at its start) and the sessions table: (start hour, end hour, minutes watched)."""
    layout = OfflineLayout(tmp_path / "offline")
    play = pa.table(
        {
            "ts": pa.array([_at(s) for s, _, _ in sessions], pa.timestamp("ns", tz="UTC")),
            "user_id": pa.array(range(1, len(sessions) + 1), pa.int64()),
            "movie_id": pa.array([MOVIE] * len(sessions)),
        }
    )
    folder = layout.raw_dir("play", T0.date().isoformat())
    folder.mkdir(parents=True)
    pq.write_table(play, folder / "movielog-p0-000000000000-000000000009.parquet")
    table = pa.table(
        {
            "user_id": pa.array(range(1, len(sessions) + 1), pa.int64()),
            "movie_id": pa.array([MOVIE] * len(sessions)),
            "minutes_watched": pa.array([m for _, _, m in sessions], pa.int32()),
            "start_ts": pa.array([_at(s) for s, _, _ in sessions], pa.timestamp("ns", tz="UTC")),
            "end_ts": pa.array([_at(e) for _, e, _ in sessions], pa.timestamp("ns", tz="UTC")),
        }
    )
    folder = layout.root / "sessions" / f"date={T0.date().isoformat()}"
    folder.mkdir(parents=True)
    pq.write_table(table, folder / "sessions.parquet")
    return layout


def _completion_by_stamp(layout: OfflineLayout) -> dict[float, float | None]:
    """completion_rate per row, keyed by the row's event time in hours since T0."""
    meta = {MOVIE: MovieMeta(id=MOVIE, runtime=RUNTIME)}
    pop = movie_rows(layout, meta, created_ns=1)["movie_popularity"]
    stamps = [round((t - T0).total_seconds() / 3600, 3) for t in pop["event_timestamp"].to_pylist()]
    assert len(set(stamps)) == len(stamps)
    return dict(zip(stamps, pop["completion_rate"].to_pylist(), strict=True))


def test_completion_rate_uses_only_sessions_ended_by_the_row_time(tmp_path: Path) -> None:
    layout = _layout(
        tmp_path,
        [
            (0.1, 0.6, 25),  # ends in hour 0: a quarter of the runtime
            (2.1, 3.7, 100),  # starts in hour 2, ends in hour 3: fully watched
            (5.2, 5.3, 10),  # the newest play (the row in progress); ends after it
        ],
    )
    by_stamp = _completion_by_stamp(layout)
    # Full hours' rows are stamped at the end of the hour.
    assert by_stamp[1] == pytest.approx(0.25)
    # Hour 2 has the second play but its session has not ended: still only the first session.
    assert by_stamp[3] == pytest.approx(0.25)
    # Once it has ended, it counts: (0.25 + 1.0) / 2.
    assert by_stamp[4] == pytest.approx(0.625)
    assert by_stamp[5] == pytest.approx(0.625)
    # The row in progress is stamped at the newest play (5.2 h); the session ending at 5.3 h is not in it.
    assert by_stamp[5.2] == pytest.approx(0.625)


def test_completion_rate_is_a_trailing_seven_day_window(tmp_path: Path) -> None:
    layout = _layout(tmp_path, [(0.1, 0.5, 100), (100.1, 100.5, 20), (180.5, 180.6, 30)])
    by_stamp = _completion_by_stamp(layout)
    assert by_stamp[101] == pytest.approx((1.0 + 0.2) / 2)
    # 168 hours after hour 0 the first session has left the window.
    assert by_stamp[168] == pytest.approx((1.0 + 0.2) / 2)
    assert by_stamp[169] == pytest.approx(0.2)


def test_completion_rate_caps_each_session_and_needs_a_runtime(tmp_path: Path) -> None:
    layout = _layout(tmp_path, [(0.1, 0.5, 250), (0.2, 0.4, 50), (2.5, 2.6, 10)])
    assert _completion_by_stamp(layout)[1] == pytest.approx((1.0 + 0.5) / 2)
    unknown = _layout(tmp_path / "other", [(0.1, 0.5, 50), (2.5, 2.6, 10)])
    pop = movie_rows(unknown, {}, created_ns=1)["movie_popularity"]
    assert pop.num_rows == 3 and set(pop["completion_rate"].to_pylist()) == {None}


def test_first_play_is_the_movies_first_play_and_never_after_the_row(tmp_path: Path) -> None:
    """`first_play_ts` (days in stream) is point in time: every row's value is at or before its stamp."""
    layout = _layout(tmp_path, [(0.5, 1.0, 30), (30.2, 31.0, 40), (50.0, 50.5, 20)])
    pop = movie_rows(layout, {}, created_ns=1)["movie_popularity"]
    first = pop["first_play_ts"].to_pylist()
    stamps = [t.timestamp() for t in pop["event_timestamp"].to_pylist()]
    assert set(first) == {int(_at(0.5).timestamp())}
    assert all(f <= s for f, s in zip(first, stamps, strict=True))
