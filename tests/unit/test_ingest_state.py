"""User aggregates of the ingestion worker: sessions per (user, movie), duplicates, windows, snapshots."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingestion import snapshots
from ingestion.state import DAY_NS, HOUR_NS, UserState, genre_affinity, window_features

MIN = 60 * 10**9
T0 = 1_795_600_000 * 10**9


def _state() -> UserState:
    return UserState(lambda m: (0,) if m.startswith("a") else (1, 2), recent_max=3, session_gap_s=1800)


def test_interleaved_movies_are_two_sessions_not_many() -> None:
    s = _state()
    for i in range(10):
        s.watch(T0 + i * MIN, 1, "a+2000", i)
        s.watch(T0 + i * MIN + 1, 1, "b+2001", i)
    agg = s.users[1]
    assert agg.sessions_total == 2 and agg.minutes_total == 20
    assert agg.recent == ["b+2001", "a+2000"]


def test_gap_starts_a_new_session_and_duplicates_count_once() -> None:
    s = _state()
    s.watch(T0, 1, "a+2000", 0)
    s.watch(T0, 1, "a+2000", 0)  # duplicated line
    s.watch(T0 + 31 * MIN, 1, "a+2000", 1)
    agg = s.users[1]
    assert agg.minutes_total == 2 and agg.sessions_total == 2
    _, plays = s.drain()
    assert [p[2] for p in plays] == ["a+2000", "a+2000"]


def test_windows_and_genre_shares() -> None:
    s = _state()
    s.watch(T0 - 3 * DAY_NS, 1, "b+2001", 0)
    s.watch(T0 - 2 * HOUR_NS, 1, "a+2000", 0)
    s.watch(T0, 1, "a+2000", 1)
    m1, m7, c7 = window_features(s.users[1])
    assert (m1, m7, c7) == (2.0, 3.0, 3)  # the 2 h gap splits "a" into two sessions
    shares = genre_affinity(s.users[1])
    assert shares[0] == pytest.approx(2 / 3) and shares[1] == pytest.approx(1 / 6)


def test_snapshot_round_trip_restores_identical_state(tmp_path: Path) -> None:
    s = _state()
    for i in range(5):
        s.watch(T0 + i * MIN, 7, "a+2000", i)
    s.rate(T0, 7, 4)
    s.account(T0 - DAY_NS, 7)
    snapshots.save(tmp_path, "movielog", 0, 42, s)
    again = _state()
    snapshots.load(snapshots.latest(tmp_path, "movielog", 0, 42)[1], again)  # type: ignore[index]
    assert again.users == s.users
    assert snapshots.latest(tmp_path, "movielog", 0, 41) is None


def test_a_batch_spanning_days_keeps_each_days_end_state_for_the_offline_store() -> None:
    """A replayed log lands days of events in one batch: each closed day leaves its own point-in-time row."""
    from ingestion.state import DAY_NS, UserState
    from ingestion.user_features import WATCH_VIEW, user_rows, with_day_rows

    state = UserState(lambda _: (0,))
    day0 = 10 * DAY_NS
    for m in range(3):
        state.watch(day0 + m * 60 * 10**9, 7, "a", m)
    for m in range(5):
        state.watch(day0 + 2 * DAY_NS + m * 60 * 10**9, 7, "b", m)
    touched, _ = state.drain()
    rows = with_day_rows(user_rows(state, touched, 0), state.drain_days(), 0)[WATCH_VIEW].to_pylist()
    assert [r["watch_count_total"] for r in rows] == [1, 2]
    assert rows[0]["recent_movie_ids"] == ["a"] and rows[1]["recent_movie_ids"] == ["b", "a"]
    assert rows[0]["last_active_ts"] == (day0 + 2 * 60 * 10**9) // 10**9
    assert rows[0]["watch_minutes_1d"] == 3.0 and rows[1]["watch_minutes_1d"] == 5.0
    assert state.drain_days() == []  # taken once


def test_row_stamp_grows_with_late_events_and_ignores_the_order_they_came_in() -> None:
    # A batch applies watches, then ratings, then accounts, so a restart that moves batch boundaries
    # changes the order: the stamp must not (the kill -9 test compares final rows, stamps included).
    events = [("w", T0 + 5 * MIN, 0), ("r", T0 + 2 * MIN, 4), ("w", T0 + MIN, 1), ("a", T0, 0)]
    stamps = []
    for order in (events, events[::-1], sorted(events, key=lambda e: e[0])):
        s = _state()
        for kind, ts, x in order:
            if kind == "w":
                s.watch(ts, 1, "a+2000", x)
            elif kind == "r":
                s.rate(ts, 1, x, "b+2001")
            else:
                s.account(ts, 1)
        stamps.append(s.users[1].stamp_ns)
    assert stamps == [T0 + 5 * MIN + 3_000] * 3
    s = _state()
    s.watch(T0 + 5 * MIN, 1, "a+2000", 0)
    first = s.users[1].stamp_ns
    s.rate(T0, 1, 3, "b+2001")  # late: the latest event stays, the row must still be newer for Redis
    assert first == T0 + 5 * MIN and s.users[1].stamp_ns > first
    s.rate(T0, 1, 3, "b+2001")  # the same line again changes nothing, nor the stamp
    assert s.users[1].stamp_ns == first + 1_000


def test_snapshot_without_an_event_count_derives_it(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    s = _state()
    for i in range(3):
        s.watch(T0 + i * MIN, 7, "a+2000", i)
    s.rate(T0, 7, 4, "a+2000")
    path = snapshots.save(tmp_path, "movielog", 0, 5, s)
    pq.write_table(pq.read_table(path).drop_columns(["events"]), path)
    again = _state()
    snapshots.load(path, again)
    assert again.users[7].events == 4 and again.users[7].stamp_ns == s.users[7].stamp_ns
