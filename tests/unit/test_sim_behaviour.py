"""The simulated users' acceptance of lists: what is listed must matter, or no online metric can rank models."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from numpy.typing import NDArray

from simulator.behaviour import Behaviour
from simulator.drift import DriftSchedule, GenreSurge
from simulator.temporal import Temporal
from simulator.vocab import GENRE_NAMES
from simulator.world import World, generate_world

DAY_NS = 86_400 * 10**9


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(2_000, 600, 11)


def _behaviour(world: World, drifts: list[GenreSurge] | None = None) -> Behaviour:
    c, p = world.catalog, world.population
    return Behaviour(
        world.affinity_model(), DriftSchedule.for_world(list(drifts or []), c, p), runtime=c.runtime,
        popularity=c.popularity, movie_genres=c.genres, activity=p.activity, temporal=Temporal.for_world(world),
    )  # fmt: skip


def _mid_period(world: World) -> int:
    start_s = Temporal.for_world(world).cfg.period_s()[0]
    return int((start_s + 20 * 86_400) * 1e9)


def _take_rate(b: Behaviour, users: NDArray[np.int64], lists: NDArray[np.int64], ts: int) -> float:
    taken, _ = b.accept(np.random.default_rng(1), users, lists, ts)
    return float((taken >= 0).mean())


def test_the_users_true_top_list_is_taken_far_more_often_than_popular_or_random_ones(world: World) -> None:
    b, ts = _behaviour(world), _mid_period(world)
    rng = np.random.default_rng(0)
    users = b.pick_users(rng, 4_000, len(world.population))
    out = np.isfinite(b.temporal.log_attractiveness(ts)) if b.temporal else np.ones(600, bool)
    aff = np.where(out[None, :], world.affinity_model().scores(users), -np.inf)
    oracle = np.argsort(-aff, axis=1)[:, :20]
    popular = np.tile(np.argsort(-np.where(out, world.catalog.popularity, -1.0))[:20], (len(users), 1))
    released = np.flatnonzero(out)
    random = released[rng.integers(0, len(released), (len(users), 20))]
    rates = {name: _take_rate(b, users, lists, ts) for name, lists in
             (("oracle", oracle), ("popular", popular), ("random", random))}  # fmt: skip
    assert rates["oracle"] > 0.55, rates
    assert rates["oracle"] > 2 * rates["popular"] > 4 * rates["random"], rates
    assert 0.1 < rates["popular"] < 0.45 and rates["random"] < 0.15, rates


def test_a_genre_surge_draws_users_to_that_genre_on_the_list(world: World) -> None:
    ts = _mid_period(world)
    genre = GENRE_NAMES.index("Horror")
    horror = np.flatnonzero(world.catalog.genres[:, genre])
    out = np.isfinite(Temporal.for_world(world).log_attractiveness(ts))
    listed = horror[out[horror]][:20]
    users = np.arange(2_000, dtype=np.int64)
    lists = np.tile(listed, (len(users), 1))
    surge = GenreSurge(start=datetime.fromtimestamp(ts / 1e9 - 3600, UTC), genre="Horror", factor=4.0)
    before = _take_rate(_behaviour(world), users, lists, ts)
    during = _take_rate(_behaviour(world, [surge]), users, lists, ts)
    assert during > 1.5 * before > 0, (before, during)
