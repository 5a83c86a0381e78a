"""The service's front end on the recommendation page: what a browsing user is shown, and what it logs.

Open loop (backfills): there is no live recommender, so the front end shows and logs its own
non-personalised daily trending list (status 200, a simulated response time, server
`open_loop_server`), as a service did before the platform existed; users ignore it and choose
on their own taste and popularity. Closed loop: the front end calls the platform's
`/recommend/<userid>`, logs the outcome as the course's servers do, and the user may take an
item from the list (`Behaviour.accept`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from events import RecommendationEvent
from simulator.behaviour import Behaviour
from simulator.clock import SimClock
from simulator.recommend import MAX_ITEMS, RecommendClient
from simulator.settings import SimSettings
from simulator.timeline import REC_TS_DIGITS

I64 = NDArray[np.int64]
DAY_NS = 86_400 * 1_000_000_000


@dataclass(slots=True)
class Shown:
    """What browsing sessions got, one entry per session in the order given."""

    events: list[RecommendationEvent]
    taken: I64
    """Movie index taken from the list, or -1."""
    affinity: NDArray[np.float32]
    """True affinity for the movie taken (0 where none)."""
    response_ms: I64
    failed: int


class FrontEnd:
    """Answers browsing sessions in open or closed loop."""

    def __init__(
        self,
        mode: Literal["open", "closed"],
        settings: SimSettings,
        behaviour: Behaviour,
        slugs: list[str],
        popularity: NDArray[np.floating],
        *,
        seed: int,
        recommender: RecommendClient | None = None,
        clock: SimClock | None = None,
    ) -> None:
        if mode == "closed" and recommender is None:
            raise ValueError("closed loop needs a RecommendClient")
        self.mode, self.s, self.behaviour, self.slugs = mode, settings, behaviour, slugs
        self.recommender, self.clock, self.seed = recommender, clock, seed
        self._log_pop = np.log(popularity)
        self._slug_index = {slug: i for i, slug in enumerate(slugs)}
        self._trending: tuple[int, tuple[str, ...]] | None = None

    def trending(self, ts_ns: int) -> tuple[str, ...]:
        """The legacy daily trending list: popularity with a little day-to-day noise, surges and new-release
        hype included, movies not yet out at the first call of the day left out."""
        day = ts_ns // DAY_NS
        if self._trending is None or self._trending[0] != day:
            rng = np.random.default_rng([self.seed, 2, day])
            score = self._log_pop + rng.normal(0.0, 0.3, len(self._log_pop))
            boost = self.behaviour.schedule.choice_boost(ts_ns)
            if boost is not None:
                score += boost
            if self.behaviour.temporal is not None:
                score += self.behaviour.temporal.log_attractiveness(ts_ns)
                size = min(self.s.open_loop_list_size, int(np.isfinite(score).sum()))
            else:
                size = self.s.open_loop_list_size
            top = np.argsort(-score)[:size]
            self._trending = (day, tuple(self.slugs[i] for i in top.tolist()))
        return self._trending[1]

    def browse(self, rng: np.random.Generator, users: I64, start: I64, t0: int) -> Shown:
        """Serve the sessions of `users` (indices) starting at `start` (ns), within the step at `t0`."""
        n = len(users)
        uids, times = (users + 1).tolist(), start.tolist()
        if self.mode == "open":
            listing = self.trending(t0)
            ms = np.maximum(1, rng.lognormal(np.log(25.0), 0.5, n)).astype(np.int64)
            server = self.s.open_loop_server
            events = [
                RecommendationEvent(ts, u, server, 200, listing, m, None, REC_TS_DIGITS)
                for u, ts, m in zip(uids, times, ms.tolist(), strict=True)
            ]
            return Shown(events, np.full(n, -1, np.int64), np.zeros(n, np.float32), ms, 0)
        assert self.recommender is not None
        clock = self.clock
        delays = [clock.seconds_until(ts) for ts in times] if clock is not None else None
        outcomes = self.recommender.fetch(uids, delays)
        lists = np.full((n, MAX_ITEMS), -1, dtype=np.int64)
        events = []
        for row, (u, ts, o) in enumerate(zip(uids, times, outcomes, strict=True)):
            events.append(
                RecommendationEvent(
                    ts, u, self.recommender.server, o.status, o.items, o.response_ms, o.error, REC_TS_DIGITS
                )
            )
            known = [self._slug_index.get(item, -1) for item in o.items]
            lists[row, : len(known)] = known
        taken, aff = self.behaviour.accept(rng, users, lists, t0)
        ms = np.array([o.response_ms for o in outcomes], dtype=np.int64)
        return Shown(events, taken, aff, ms, sum(o.error is not None for o in outcomes))
