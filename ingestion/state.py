"""Per-user aggregates kept by an ingestion worker for its partitions, updated event by event.

Users are keyed to partitions (Kafka key = user id), so one worker sees all of a user's
events in order and can keep exact incremental aggregates. Updates are deterministic in the
input, which is what lets a restarted worker restore a snapshot and replay to the same state.
Windows are bucketed: 1 day in hours, 7 days in days (documented approximation: a window
ends at the user's latest event and starts on a bucket boundary).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from events.metadata import GENRES

NS_PER_S = 1_000_000_000
_OPEN_MAX = 16
"""Movies per user whose session may still be running (bounds state per user)."""
HOUR_NS = 3600 * NS_PER_S
DAY_NS = 24 * HOUR_NS
N_GENRES = len(GENRES)

GenreLookup = Callable[[str], tuple[int, ...] | None]
"""Genre indices of a movie (None when unknown yet)."""


@dataclass(slots=True)
class UserAgg:
    """Everything the user features are derived from."""

    minutes_total: int = 0
    sessions_total: int = 0
    hour_minutes: dict[int, int] = field(default_factory=dict)
    day_minutes: dict[int, int] = field(default_factory=dict)
    day_sessions: dict[int, int] = field(default_factory=dict)
    last_ts_ns: int = 0
    last_watch_ts_ns: int = 0
    open_movies: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per movie watched lately: (time, minute) of its last line; sessions are per (user, movie)."""
    recent: list[str] = field(default_factory=list)
    genre_minutes: list[float] = field(default_factory=lambda: [0.0] * N_GENRES)
    rating_count: int = 0
    rating_sum: int = 0
    account_ts_ns: int = 0
    rated: dict[str, int] = field(default_factory=dict)
    """Per movie rated lately: the time of its last rating line (the same line again is a duplicate)."""

    events: int = 0
    """Events that changed the state (duplicates excluded): part of the row stamp (`stamp_ns`)."""

    @property
    def stamp_ns(self) -> int:
        """Event time of the state's feature row: the latest event time plus 1 us per event after the first.

        It grows with every event that changes the state, late ones included (Feast's Redis store keeps a
        row only if strictly newer), and it depends only on which events were applied, not on their order,
        so batch boundaries and restarts give the same stamp. It errs late (1 us per event: 1 s after a
        million), so a point-in-time join can only miss a row, never see it early."""
        return self.last_ts_ns + max(self.events - 1, 0) * 1_000

    def touch(self, ts_ns: int) -> None:
        """Advance the user's latest event time (events may arrive out of order) and count the event."""
        self.last_ts_ns = max(self.last_ts_ns, ts_ns)
        self.events += 1


class UserState:
    """All users of the partitions one worker owns."""

    def __init__(self, genres: GenreLookup, recent_max: int = 50, session_gap_s: int = 1800) -> None:
        self.users: dict[int, UserAgg] = {}
        self.touched: set[int] = set()
        self.new_plays: list[tuple[int, int, str]] = []
        """(ts_ns, user_id, movie_id) of sessions started since the last drain."""
        self.closed_days: list[DayRow] = []
        """Each user's state at their last event of a day, taken when a later day's event arrives (drained)."""
        self._genres = genres
        self._recent_max = recent_max
        self._gap_ns = session_gap_s * NS_PER_S

    def _get(self, user_id: int, ts_ns: int | None = None) -> UserAgg:
        agg = self.users.get(user_id)
        if agg is None:
            agg = self.users[user_id] = UserAgg()
        elif ts_ns is not None and agg.last_ts_ns and ts_ns // DAY_NS > agg.last_ts_ns // DAY_NS:
            # A new day: keep the state of the day that ended, so a batch spanning days (a replayed
            # log, a backlog) still leaves one point-in-time row per user and active day offline.
            self.closed_days.append(DayRow.of(user_id, agg))
        self.touched.add(user_id)
        return agg

    def watch(self, ts_ns: int, user_id: int, movie_id: str, minute: int) -> None:
        """One minute watched; a movie not watched within the session gap starts a session.

        Sessions are keyed by (user, movie), not by the user's last movie, so a stream that
        interleaves two movies of one user (two screens, or zapping) does not split both into
        one-minute sessions.
        """
        agg = self._get(user_id, ts_ns)
        last = agg.open_movies.get(movie_id)
        if last is not None and last[1] == minute and abs(ts_ns - last[0]) <= self._gap_ns:
            return  # a duplicated line: count the minute once (a restart at that minute later is a new watch)
        new_session = last is None or abs(ts_ns - last[0]) > self._gap_ns
        hour, day = ts_ns // HOUR_NS, ts_ns // DAY_NS
        agg.minutes_total += 1
        agg.hour_minutes[hour] = agg.hour_minutes.get(hour, 0) + 1
        agg.day_minutes[day] = agg.day_minutes.get(day, 0) + 1
        if new_session:
            agg.sessions_total += 1
            agg.day_sessions[day] = agg.day_sessions.get(day, 0) + 1
            self.new_plays.append((ts_ns, user_id, movie_id))
            recent = agg.recent
            if movie_id in recent:
                recent.remove(movie_id)
            recent.insert(0, movie_id)
            del recent[self._recent_max :]
        genres = self._genres(movie_id)
        if genres:
            share = 1.0 / len(genres)
            for g in genres:
                agg.genre_minutes[g] += share
        agg.open_movies[movie_id] = (max(ts_ns, last[0]) if last else ts_ns, minute)
        if len(agg.open_movies) > _OPEN_MAX:
            # Forget the movie watched longest ago: its session is long over.
            oldest = min(agg.open_movies, key=lambda m: agg.open_movies[m][0])
            del agg.open_movies[oldest]
        agg.last_watch_ts_ns = max(agg.last_watch_ts_ns, ts_ns)
        agg.touch(ts_ns)

    def rate(self, ts_ns: int, user_id: int, rating: int, movie_id: str | None = None) -> None:
        """A rating; a line of the same movie at the same time as its last rating is a duplicate, counted once."""
        agg = self._get(user_id, ts_ns)
        if movie_id is not None:
            if agg.rated.get(movie_id) == ts_ns:
                return  # a duplicated line (a producer retry), wherever it arrives
            agg.rated[movie_id] = ts_ns
            if len(agg.rated) > _OPEN_MAX:
                del agg.rated[min(agg.rated, key=agg.rated.__getitem__)]  # the oldest rating
        agg.rating_count += 1
        agg.rating_sum += rating
        agg.touch(ts_ns)

    def account(self, ts_ns: int, user_id: int) -> None:
        """An account creation (the earliest one wins if repeated)."""
        agg = self._get(user_id, ts_ns)
        if agg.account_ts_ns == 0 or ts_ns < agg.account_ts_ns:
            agg.account_ts_ns = ts_ns
        agg.touch(ts_ns)

    def drain(self) -> tuple[set[int], list[tuple[int, int, str]]]:
        """Users touched and plays started since the last drain; resets both (`drain_days` takes the day rows)."""
        touched, plays = self.touched, self.new_plays
        self.touched, self.new_plays = set(), []
        return touched, plays

    def drain_days(self) -> list[DayRow]:
        """The day-end rows taken since the last call."""
        rows, self.closed_days = self.closed_days, []
        return rows


@dataclass(frozen=True, slots=True)
class DayRow:
    """A user's feature values as of their last event of a day (`user_features.user_rows` writes them)."""

    user_id: int
    ts_ns: int
    windows: tuple[float, float, int]
    sessions_total: int
    recent: tuple[str, ...]
    affinity: tuple[float, ...]
    rating_count: int
    rating_sum: int

    @classmethod
    def of(cls, user_id: int, agg: UserAgg) -> DayRow:
        """Snapshot `agg` as it stands (its last event is the stamp)."""
        return cls(user_id, agg.last_ts_ns, window_features(agg), agg.sessions_total, tuple(agg.recent),
                   tuple(genre_affinity(agg)), agg.rating_count, agg.rating_sum)  # fmt: skip


def window_features(agg: UserAgg) -> tuple[float, float, int]:
    """(minutes in the last 24 h, minutes in the last 7 d, sessions in the last 7 d) as of the last event.

    Also prunes buckets that can no longer fall inside a window.
    """
    hour_now, day_now = agg.last_ts_ns // HOUR_NS, agg.last_ts_ns // DAY_NS
    for buckets, keep_from in (
        (agg.hour_minutes, hour_now - 23),
        (agg.day_minutes, day_now - 6),
        (agg.day_sessions, day_now - 6),
    ):
        for key in [k for k in buckets if k < keep_from]:
            del buckets[key]
    m1 = float(sum(agg.hour_minutes.values()))
    m7 = float(sum(agg.day_minutes.values()))
    return m1, m7, sum(agg.day_sessions.values())


def genre_affinity(agg: UserAgg) -> list[float]:
    """Share of watched minutes per genre (GENRES order); zeros when nothing is known."""
    total = sum(agg.genre_minutes)
    if total <= 0:
        return [0.0] * N_GENRES
    return [m / total for m in agg.genre_minutes]
