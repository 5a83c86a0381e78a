"""Ground truth export, for evaluation only: every movie's true affinity for a user or a batch of users.

Offline metrics can be compared with the oracle ranking (movies by true affinity); the
metadata API never exposes any of this. Taste-shift drifts in force at `at` are included, and
rankings at a time `at` leave out movies not yet released then (`simulator.temporal`): the
best list at a cut-off is made of movies one could have watched at that cut-off.

    from simulator.truth import Truth
    truth = Truth.load()
    truth.top_movies(42, k=20)            # [(movie_id, affinity), ...]
    truth.affinity([1, 2, 3])             # (3, movies) float32, columns in truth.movie_ids order
    truth.oracle_scores([1, 2, 3], at)    # the same, -inf where a movie is not out at `at`
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray

from simulator.affinity import AffinityModel, expected_rating
from simulator.drift import DriftSchedule
from simulator.settings import SimSettings, get_sim_settings
from simulator.store import load_world
from simulator.temporal import Temporal
from simulator.world import World


def _ns(at: datetime) -> int:
    """Nanoseconds since the epoch; a naive time is UTC, as everywhere in the simulator."""
    return int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp() * 1e9)


class Truth:
    """The hidden affinities of a world, by public user id and movie id."""

    def __init__(self, world: World, settings: SimSettings | None = None) -> None:
        s = settings or get_sim_settings()
        p, c = world.population, world.catalog
        self.world = world
        self.movie_ids: list[str] = c.slug
        """Column order of every matrix returned."""
        self._model: AffinityModel = world.affinity_model()
        self._schedule = DriftSchedule.for_world(list(s.drifts), c, p)
        self.temporal = Temporal.for_world(world)
        """Release times and the temporal model the world was made with."""

    @classmethod
    def load(cls, settings: SimSettings | None = None) -> Truth:
        """The ground truth of the world stored under the settings' var dir."""
        s = settings or get_sim_settings()
        return cls(load_world(s.sim_dir, texts=False), s)

    def _indices(self, user_ids: Sequence[int] | NDArray[np.integer]) -> NDArray[np.int64]:
        ids = np.asarray(user_ids, dtype=np.int64).reshape(-1)
        bad = ids[(ids < 1) | (ids > len(self.world.population))]
        if len(bad):
            raise ValueError(
                f"unknown user ids: {bad[:5].tolist()} (ids run 1..{len(self.world.population)})"
            )
        return ids - 1

    def affinity(
        self, user_ids: Sequence[int] | NDArray[np.integer], at: datetime | None = None
    ) -> NDArray[np.float32]:
        """(len(user_ids), movies) true affinity, columns in `movie_ids` order; `at` applies taste drifts."""
        users = self._indices(user_ids)
        shift = None if at is None else self._schedule.genre_shift(users, _ns(at))
        return self._model.scores(users, genre_shift=shift)

    def released(self, at: datetime) -> NDArray[np.bool_]:
        """Per movie (`movie_ids` order): released at or before `at`."""
        return self.temporal.released(_ns(at))

    def oracle_scores(
        self, user_ids: Sequence[int] | NDArray[np.integer], at: datetime | None = None
    ) -> NDArray[np.float32]:
        """`affinity` at `at` with -inf for movies not released then (None: every movie, no drifts)."""
        aff = self.affinity(user_ids, at)
        if at is not None:
            aff[:, ~self.released(at)] = -np.inf
        return aff

    def expected_rating(
        self, user_ids: Sequence[int] | NDArray[np.integer], at: datetime | None = None
    ) -> NDArray[np.float32]:
        """(len(user_ids), movies) mean star rating each user would give each movie."""
        return expected_rating(self.affinity(user_ids, at))

    def oracle_ranking(
        self, user_ids: Sequence[int] | NDArray[np.integer], k: int = 20, at: datetime | None = None
    ) -> dict[int, list[str]]:
        """The k movies of highest true affinity for each user, best first (released by `at`, when given)."""
        aff = self.oracle_scores(user_ids, at)
        k = min(k, aff.shape[1] if at is None else int(self.released(at).sum()))
        ids = np.asarray(user_ids, dtype=np.int64).reshape(-1).tolist()
        if k <= 0:
            return {u: [] for u in ids}
        top = np.argpartition(-aff, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(top, np.argsort(-np.take_along_axis(aff, top, axis=1), axis=1), axis=1)
        return {u: [self.movie_ids[m] for m in row] for u, row in zip(ids, order.tolist(), strict=True)}

    def top_movies(self, user_id: int, k: int = 20, at: datetime | None = None) -> list[tuple[str, float]]:
        """The k best movies for one user with their affinity, best first (released by `at`, when given)."""
        aff = self.oracle_scores([user_id], at)[0]
        best = np.argsort(-aff, kind="stable")[:k].tolist()
        return [(self.movie_ids[m], float(aff[m])) for m in best if np.isfinite(aff[m])]
