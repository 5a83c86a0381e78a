"""The online metrics join, as plain logic: recommendation lines + provenance records + watches + ratings -> window rows.

Availability and latency come from the recommendation lines the front end wrote (its view, as
the course measures it), not from the service. A provenance record names the arm, model version
and path of an answer; a line and a record are matched by user and the exact list answered (the
front-end line carries no request id), in whichever order the two topics deliver them.

An answered list is *final* once the log watermark passed its time plus the hit window: by then
every watch that can make it a hit has been seen (lines later than `lateness` are still counted,
as extra rows of their window). A window is emitted when all its lists are final. Rows are sums,
so a late row for an emitted window adds to it rather than replacing it.

Each final list also gives one impression row (`monitoring.impressions`): the per-user data of
the experiment analysis, with the provenance record's experiment name and interleaving teams.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from monitoring.impressions import (
    ERROR,
    UNATTRIBUTED,
    UNKNOWN,
    Attribution,
    Impression,
    Origin,
    Shown,
    attribution,
    fill_defaults,
    impression,
    origin,
)

__all__ = ["SEC", "UNKNOWN", "Attribution", "OnlineJoin", "Shown", "attribution"]
"""The names moved to `monitoring.impressions` stay importable from here (and old checkpoints unpickle)."""

SEC: Final = 1_000_000_000
PROVENANCE_BUFFER: Final = 200_000
ORIGINS_MAX: Final = 10_000
"""Distinct provenance origins shared by identity (interleaved team strings could otherwise be many)."""
"""Unmatched provenance records kept (oldest dropped): a front-end line arrives within seconds of its record."""


@dataclass(slots=True)
class Acc:
    """Sums of one (window, arm, model, path)."""

    requests: int = 0
    ok: int = 0
    available: int = 0
    latencies: list[int] = field(default_factory=list)
    hits: int = 0
    hit_rank_sum: int = 0
    hit_minutes_sum: int = 0
    hit_completion_sum: float = 0.0
    hit_completion_n: int = 0
    list_cost_sum: float = 0.0
    list_cost_n: int = 0
    hit_cost_sum: float = 0.0


Catalog = Callable[[str], tuple[float | None, float | None]]
"""movie id -> (licence cost per play, runtime in minutes), None when unknown."""


class OnlineJoin:
    """The join's state; feed it events in any order, `advance` it, `take` the rows it finished."""

    def __init__(
        self,
        window_s: int,
        hit_window_s: int,
        rating_window_s: int,
        sla_ms: int,
        lateness_s: float,
        catalog: Catalog | None = None,
    ) -> None:
        self.window_ns, self.hit_ns = window_s * SEC, hit_window_s * SEC
        self.rating_ns, self.sla_ms, self.lateness_ns = rating_window_s * SEC, sla_ms, int(lateness_s * SEC)
        self.catalog: Catalog = catalog or (lambda _m: (None, None))
        self.watermark_ns = 0
        self.pending: deque[Shown] = deque()
        self.open: dict[int, list[Shown]] = {}
        self.waiting: dict[tuple[int, tuple[str, ...]], deque[Shown]] = {}
        self.records: OrderedDict[tuple[int, tuple[str, ...]], list[Origin]] = OrderedDict()
        self.accs: dict[tuple[int, Attribution], Acc] = {}
        self.rated: dict[int, list[tuple[str, int, int, Attribution]]] = {}
        """user -> (movie, expiry ns, window start, who) of final hits whose ratings still count."""
        self.rows: list[dict[str, Any]] = []
        self.rating_rows: list[dict[str, Any]] = []
        self.impression_rows: list[Impression] = []
        self.unattributed = 0
        self._ids: dict[str, str] = {}
        """Canonical instance of each movie id seen in a list (bounded by the catalogue)."""
        self._origins: dict[Origin, Origin] = {}

    # --- input -----------------------------------------------------------------------------

    def recommendation(self, ts_ns: int, user: int, status: int, movies: Iterable[str], ms: int) -> None:
        """A recommendation line of the front end."""
        ids = self._ids
        # One string object per movie id: a list lives for the whole hit window (200 req/s x 30 min is
        # 360K lists of 20 ids), and 20 fresh copies per list made this job the soak's memory growth.
        shown = Shown(ts_ns, user, tuple(ids.setdefault(m, m) for m in movies), status, ms)
        self.watermark_ns = max(self.watermark_ns, ts_ns)
        self.pending.append(shown)
        if status != 200:
            shown.who = ERROR
            return
        self.open.setdefault(user, []).append(shown)
        key = (user, shown.movies)
        found = self.records.get(key)
        if found:
            shown.attribute(found.pop(0))
            if not found:
                del self.records[key]
        else:
            self.waiting.setdefault(key, deque()).append(shown)

    def provenance(self, record: dict[str, Any]) -> None:
        """A provenance record of the service (JSON-decoded)."""
        try:
            key = (int(record["user_id"]), tuple(str(m) for m in record.get("result") or ()))
        except (KeyError, TypeError, ValueError):
            return
        found = Origin(attribution(record), *origin(record))
        if len(self._origins) < ORIGINS_MAX:  # few distinct ones (arms x models x paths): share them too
            found = self._origins.setdefault(found, found)
        queue = self.waiting.get(key)
        if queue:
            queue.popleft().attribute(found)
            if not queue:
                del self.waiting[key]
            return
        self.records.setdefault(key, []).append(found)
        self.records.move_to_end(key)
        while len(self.records) > PROVENANCE_BUFFER:
            self.records.popitem(last=False)

    def watch(self, ts_ns: int, user: int, movie: str) -> None:
        """A watch-minute line: may make an open list a hit, or add minutes to its hit."""
        self.watermark_ns = max(self.watermark_ns, ts_ns)
        lists = self.open.get(user)
        if not lists:
            return
        for shown in lists:
            if not shown.ts_ns <= ts_ns <= shown.ts_ns + self.hit_ns:
                continue
            if shown.hit_movie == movie:
                shown.hit_minutes += 1
                continue
            if movie not in shown.movies:
                continue
            if shown.hit_rank == 0:
                shown.hit_movie, shown.hit_rank = movie, shown.movies.index(movie) + 1
                shown.hit_minutes += 1
            if shown.watched is None:
                shown.watched = set()
            shown.watched.add(movie)

    def rating(self, ts_ns: int, user: int, movie: str, stars: int) -> None:
        """A rating line: credited to a hit of that movie within the rating window."""
        self.watermark_ns = max(self.watermark_ns, ts_ns)
        for shown in self.open.get(user, ()):
            if shown.hit_movie == movie and shown.ts_ns <= ts_ns <= shown.ts_ns + self.rating_ns:
                shown.ratings.append((ts_ns, stars))
                return
        for hit_movie, expiry, window, who in self.rated.get(user, ()):
            if hit_movie == movie and ts_ns <= expiry:
                self._rating_row(ts_ns, window, who, user, movie, stars)
                return

    def note_time(self, ts_ns: int) -> None:
        """Any other line's time moves the watermark too."""
        self.watermark_ns = max(self.watermark_ns, ts_ns)

    # --- persistence ---------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything but the catalogue, for the job's checkpoint (picklable)."""
        return {k: v for k, v in vars(self).items() if k != "catalog"}

    def restore(self, state: dict[str, Any]) -> None:
        """Take the state of a `snapshot` (the knobs given to __init__ win over the stored ones)."""
        knobs = ("window_ns", "hit_ns", "rating_ns", "sla_ms", "lateness_ns")
        for key, value in state.items():
            if key not in knobs and key != "catalog":
                setattr(self, key, value)
        # A snapshot of an older version: its lists lack the newer fields and its buffered records
        # are bare attributions (no experiment or teams). `open` and `waiting` hold the same
        # objects as `pending` (pickle keeps identity), so fixing `pending` fixes them all.
        for shown in self.pending:
            fill_defaults(shown)
        for queue in self.records.values():
            queue[:] = [r if isinstance(r, Origin) else Origin(r, "", "") for r in queue]

    # --- progress --------------------------------------------------------------------------

    def advance(self, drain: bool = False, hold: bool = False) -> int:
        """Finalise lists and emit windows the watermark passed (`drain`: all of them); rows emitted.

        `hold`: the provenance topic is behind (a replay): a list still without its record waits
        rather than being closed as unattributed, and so do the windows from its time on.
        """
        horizon = self.watermark_ns - self.lateness_ns
        pending = self.pending
        while pending and (drain or pending[0].ts_ns + self.hit_ns <= horizon):
            if hold and not drain and pending[0].status == 200 and pending[0].who == UNATTRIBUTED:
                break
            self._finalise(pending.popleft())
        before = len(self.rows)
        oldest = pending[0].ts_ns if pending and not drain else horizon
        ready = [
            k
            for k in self.accs
            if drain or (k[0] + self.window_ns + self.hit_ns <= horizon and k[0] + self.window_ns <= oldest)
        ]
        for key in sorted(ready):
            self._emit(key, self.accs.pop(key))
        for user in [u for u, hits in self.rated.items() if drain or hits[-1][1] < horizon]:
            kept = [] if drain else [h for h in self.rated[user] if h[1] >= horizon]
            if kept:
                self.rated[user] = kept
            else:
                del self.rated[user]
        return len(self.rows) - before

    def take(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The window rows and rating rows emitted since the last call."""
        rows, ratings = self.rows, self.rating_rows
        self.rows, self.rating_rows = [], []
        return rows, ratings

    def take_impressions(self) -> list[Impression]:
        """The impression rows (`IMPRESSION_COLUMNS` order) of the lists finalised since the last call."""
        rows, self.impression_rows = self.impression_rows, []
        return rows

    def _finalise(self, shown: Shown) -> None:
        lists = self.open.get(shown.user)
        if lists is not None and shown in lists:
            lists.remove(shown)
            if not lists:
                del self.open[shown.user]
        if shown.status == 200 and shown.who == UNATTRIBUTED:
            self.unattributed += 1
            key = (shown.user, shown.movies)
            queue = self.waiting.get(key)
            if queue is not None and shown in queue:
                queue.remove(shown)
                if not queue:
                    del self.waiting[key]
        self.impression_rows.append(impression(shown, self.catalog))
        window = shown.ts_ns - shown.ts_ns % self.window_ns
        acc = self.accs.setdefault((window, shown.who), Acc())
        acc.requests += 1
        if shown.status != 200:
            return
        acc.ok += 1
        acc.available += shown.ms <= self.sla_ms
        acc.latencies.append(shown.ms)
        costs = [self.catalog(m)[0] for m in shown.movies]
        if shown.movies:
            acc.list_cost_sum += sum(c for c in costs if c is not None)
            acc.list_cost_n += 1
        if not shown.hit_rank:
            return
        acc.hits += 1
        acc.hit_rank_sum += shown.hit_rank
        acc.hit_minutes_sum += shown.hit_minutes
        cost, runtime = self.catalog(shown.hit_movie)
        acc.hit_cost_sum += cost or 0.0
        if runtime:
            acc.hit_completion_sum += min(1.0, shown.hit_minutes / runtime)
            acc.hit_completion_n += 1
        for ts_ns, stars in shown.ratings:
            self._rating_row(ts_ns, window, shown.who, shown.user, shown.hit_movie, stars)
        self.rated.setdefault(shown.user, []).append(
            (shown.hit_movie, shown.ts_ns + self.rating_ns, window, shown.who)
        )

    def _emit(self, key: tuple[int, Attribution], acc: Acc) -> None:
        window, who = key
        lat = np.asarray(acc.latencies, dtype=np.float64)
        p50, p95, p99 = (float(v) for v in np.percentile(lat, [50, 95, 99])) if len(lat) else (np.nan,) * 3
        self.rows.append(
            {
                "window_start": window // 1000, "window_s": self.window_ns // SEC,
                "arm": who.arm, "model": who.model, "path": who.path,
                "requests": acc.requests, "ok": acc.ok, "available": acc.available,
                "latency_p50_ms": p50, "latency_p95_ms": p95, "latency_p99_ms": p99,
                "hits": acc.hits, "hit_rank_sum": acc.hit_rank_sum, "hit_minutes_sum": acc.hit_minutes_sum,
                "hit_completion_sum": acc.hit_completion_sum, "hit_completion_n": acc.hit_completion_n,
                "list_cost_sum": acc.list_cost_sum, "list_cost_n": acc.list_cost_n,
                "hit_cost_sum": acc.hit_cost_sum,
            }
        )  # fmt: skip

    def _rating_row(
        self, ts_ns: int, window: int, who: Attribution, user: int, movie: str, stars: int
    ) -> None:
        self.rating_rows.append(
            {"ts": ts_ns // 1000, "window_start": window // 1000, "arm": who.arm, "model": who.model,
             "path": who.path, "user_id": user, "movie_id": movie, "rating": stars}
        )  # fmt: skip
