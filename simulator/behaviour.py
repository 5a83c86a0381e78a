"""How users behave, decided for a whole batch of sessions at once.

- Who: existing users, drawn in proportion to their `activity`.
- What, on their own: a consideration set of 192 movies (half drawn by popularity, a quarter
  from the user's favourite genre, a quarter uniformly), then a softmax choice on 0.7 x true
  affinity (users only half know what they will like); a genre surge adds its log-factor to
  both the draw and the choice. Time (`simulator.temporal`): movies not out yet at the step's
  time are never drawn nor chosen; a new release's attractiveness m (rise and decay) multiplies
  its popularity weight in the draw and adds log m to its choice score.
- What, from a recommendation list: the user scans it top-down and takes item k with
  probability 0.3 * sigmoid(2 (affinity - 3) + log m + surge) * 0.8^k (0 for a movie not out
  yet; `surge` is an active genre surge's log-factor: a trend draws users to the genre on the
  list too); if nothing is taken, their own choice.
- How long: the share of the runtime watched is sigmoid(1.5 (affinity - 1.2) + N(0, 1)).
- Rating: given for `rating_share * (0.5 + share watched)` of watches; stars are the expected
  rating (2.3 + 0.65 affinity, clipped to 1..5) plus N(0, 0.7) noise, rounded; the
  constants put the mean rating near 3.8 and the median share watched near 0.8.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from simulator.affinity import AffinityModel, expected_rating
from simulator.drift import DriftSchedule
from simulator.temporal import Temporal

F32 = NDArray[np.float32]
I64 = NDArray[np.int64]

N_POPULAR, N_GENRE, N_RANDOM = 96, 48, 48
CHOICE_TEMPERATURE = 0.7
ACCEPT_BASE, ACCEPT_SLOPE, ACCEPT_MIDPOINT, POSITION_DECAY = 0.3, 2.0, 3.0, 0.8
# Calibrated so that what is listed matters (3,000 users x 1,000 movies, `tests/unit/test_sim_behaviour.py`):
# a list of 20 is taken ~71% of the time when it is the user's true top 20, ~49% for a noisy version
# of it, ~24% for the global top 20 and ~9% for 20 random movies. (The earlier 0.5 / 2.0 / 0.5 / 0.88
# took 85% of *random* lists: every list "worked", and no online metric could tell rankers apart.)


def _sigmoid(x: NDArray[np.floating]) -> NDArray[np.float64]:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


def take_probability(
    aff: NDArray[np.floating], extra_logit: NDArray[np.floating], usable: NDArray[np.bool_]
) -> NDArray[np.float64]:
    """(lists, width) chance that a user scanning the list takes position j if they reach it: the users' rule.

    `extra_logit` holds per listed movie what moves it besides affinity (log release attractiveness,
    a surge's log-factor); unusable positions (unknown or not out yet) are never taken.
    """
    logit = ACCEPT_SLOPE * (aff - ACCEPT_MIDPOINT) + extra_logit
    p = ACCEPT_BASE * _sigmoid(logit) * POSITION_DECAY ** np.arange(aff.shape[1])[None, :]
    return np.where(usable, p, 0.0)


class Behaviour:
    """Vectorised user decisions over a fixed world."""

    def __init__(
        self,
        model: AffinityModel,
        schedule: DriftSchedule,
        *,
        runtime: NDArray[np.integer],
        popularity: NDArray[np.floating],
        movie_genres: NDArray[np.bool_],
        activity: F32,
        temporal: Temporal | None = None,
    ) -> None:
        self.model = model
        self.temporal = temporal
        """Release gating and new-release attractiveness; None: every movie out, no hype."""
        self.runtime = runtime.astype(np.int64)
        self._pop_weight = np.power(popularity, 0.8).astype(np.float64)
        self._activity_cum = np.cumsum(activity, dtype=np.float64)
        self.schedule = schedule
        counts = movie_genres.sum(axis=0)
        self._genre_flat = np.concatenate(
            [np.nonzero(movie_genres[:, g])[0] for g in range(movie_genres.shape[1])]
        )
        self._genre_start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self._genre_count = np.maximum(counts, 1).astype(np.int64)

    def pick_users(self, rng: np.random.Generator, n: int, n_existing: int) -> I64:
        """`n` session users among the first `n_existing`, in proportion to their activity."""
        if n_existing <= 0 or n <= 0:
            return np.zeros(0, dtype=np.int64)
        top = self._activity_cum[n_existing - 1]
        picks = np.searchsorted(self._activity_cum, rng.random(n) * top, side="right")
        return np.asarray(picks.clip(0, n_existing - 1), dtype=np.int64)

    def _popular(
        self, rng: np.random.Generator, shape: tuple[int, int], boost: F32 | None, ts_ns: int
    ) -> I64:
        weight = self._pop_weight if boost is None else self._pop_weight * np.exp(boost)
        if self.temporal is not None:
            weight = weight * self.temporal.attractiveness(ts_ns)
        cum = np.cumsum(weight)
        if not cum[-1] > 0:
            raise ValueError(f"no movie of the catalogue is out at {ts_ns} ns: nothing to watch")
        picks = np.searchsorted(cum, rng.random(shape) * cum[-1], side="right")
        return np.asarray(picks.clip(0, len(cum) - 1), dtype=np.int64)

    def own_choice(self, rng: np.random.Generator, users: I64, ts_ns: int) -> tuple[I64, F32]:
        """Each user's own pick (movie index) and their true affinity for it."""
        b = len(users)
        if b == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        boost = self.schedule.choice_boost(ts_ns)
        shift = self.schedule.genre_shift(users, ts_ns)
        taste = self.model.user_genre[users] if shift is None else self.model.user_genre[users] + shift
        fav = np.argmax(taste, axis=1)
        in_genre = self._genre_start[fav][:, None] + np.floor(
            rng.random((b, N_GENRE)) * self._genre_count[fav][:, None]
        ).astype(np.int64)
        cands = np.concatenate(
            [
                self._popular(rng, (b, N_POPULAR), boost, ts_ns),
                self._genre_flat[in_genre],
                rng.integers(0, self.model.n_movies, (b, N_RANDOM)),
            ],
            axis=1,
        )
        aff = self.model.candidates(users, cands, shift)
        score = CHOICE_TEMPERATURE * aff + rng.gumbel(size=aff.shape)
        if boost is not None:
            score += boost[cands]
        if self.temporal is not None:
            # -inf for movies not out: the popularity draws are all out, so every row has a finite best.
            score += self.temporal.log_attractiveness(ts_ns)[cands]
        best = np.argmax(score, axis=1)
        rows = np.arange(b)
        return cands[rows, best], aff[rows, best]

    def accept(self, rng: np.random.Generator, users: I64, lists: I64, ts_ns: int) -> tuple[I64, F32]:
        """Movie taken from each user's list (row of movie indices, -1 = unknown/padding), or -1, with affinity."""
        b, width = lists.shape
        if b == 0 or width == 0:
            return np.full(b, -1, dtype=np.int64), np.zeros(b, dtype=np.float32)
        shift = self.schedule.genre_shift(users, ts_ns)
        safe = np.maximum(lists, 0)
        aff = self.model.candidates(users, safe, shift)
        usable = lists >= 0
        extra = np.zeros(lists.shape, dtype=np.float64)
        if self.temporal is not None:
            log_m = self.temporal.log_attractiveness(ts_ns)[safe]
            usable &= np.isfinite(log_m)
            extra += np.where(usable, log_m, 0.0)
        boost = self.schedule.choice_boost(ts_ns)
        if boost is not None:
            extra += boost[safe]
        p = take_probability(aff, extra, usable)
        hits = (rng.random((b, width)) < p) & usable
        first = np.argmax(hits, axis=1)
        rows = np.arange(b)
        taken = hits[rows, first]
        return np.where(taken, lists[rows, first], -1), np.where(taken, aff[rows, first], 0.0).astype(
            np.float32
        )

    def affinity(self, users: I64, movies: I64, ts_ns: int) -> F32:
        """True affinity of users[i] for movies[i] at `ts_ns` (taste shifts included)."""
        return self.model.pairs(users, movies, self.schedule.genre_shift(users, ts_ns))

    def watch(self, rng: np.random.Generator, movies: I64, aff: F32) -> tuple[I64, I64, F32]:
        """(first minute, minutes watched >= 1, share of the runtime watched) per session."""
        runtime = self.runtime[movies]
        share = _sigmoid(1.5 * (aff - 1.2) + rng.normal(0.0, 1.0, len(movies)))
        minutes = np.clip(np.ceil(share * runtime), 1, runtime).astype(np.int64)
        resume = rng.random(len(movies)) < 0.08
        first = np.where(resume, np.floor(rng.random(len(movies)) * (runtime - minutes + 1)), 0).astype(
            np.int64
        )
        return first, minutes, (minutes / runtime).astype(np.float32)

    def rate(
        self, rng: np.random.Generator, aff: F32, share: F32, rating_share: float
    ) -> tuple[NDArray[np.bool_], I64]:
        """(rates?, stars 1..5) per watch."""
        rates = rng.random(len(aff)) < rating_share * (0.5 + share)
        stars = np.clip(np.rint(expected_rating(aff) + rng.normal(0.0, 0.7, len(aff))), 1, 5).astype(np.int64)
        return rates, stars
