"""Exploration slots: seeded per user and day, outside the popular head, under the constraints, each slot counted."""

from __future__ import annotations

import numpy as np
from prometheus_client import REGISTRY

from events.metadata import GENRES
from serving import exploration
from serving.movie_table import ADULT, COST, MovieTable
from serving.post_scoring import finalize
from serving.recommender import AGE, Outcome

DAY = 86_400.0
NOW = 1.8e9
DRAMA, COMEDY = GENRES.index("Drama"), GENRES.index("Comedy")


def table(n: int, adult: float = 0.0, drama_from: int | None = None) -> MovieTable:
    genres = np.zeros((n, len(GENRES)), dtype=np.float32)
    genres[:, COMEDY] = 1.0
    if drama_from is not None:
        genres[drama_from:, COMEDY] = 0.0
        genres[drama_from:, DRAMA] = 1.0
    cols = {COST: np.ones(n), ADULT: np.full(n, adult)}
    return MovieTable(np.asarray([f"m{i}" for i in range(n)], dtype=object), cols, genres)


def slots_served(source: str) -> float:
    return REGISTRY.get_sample_value("recsys_exploration_slots_total", {"source": source}) or 0.0


def explore(outcome: Outcome, t: MovieTable, user_id: int = 7, now: float = NOW, share: float = 0.1,
            popular: list[str] | None = None, age: int = 30, genre_share: float = 1.0) -> Outcome:  # fmt: skip
    return finalize(outcome, {AGE: age}, user_id, t, popular or [], now, genre_share, share)


def test_slot_positions_are_seeded_per_user_and_day_and_never_the_first() -> None:
    def at(user: int, now: float) -> list[int]:
        return [int(p) for p in exploration.slots(exploration.generator(user, now), 20, 0.2)]

    assert at(1, NOW) == at(1, NOW + 60) and len(at(1, NOW)) == 4
    assert 0 not in at(1, NOW) and all(0 < p < 20 for p in at(1, NOW))
    drawn = [p for u in range(200) for p in at(u, NOW)]
    assert min(drawn) == 1 and max(drawn) == 19  # every slot but the first
    days = {tuple(at(1, NOW + d * DAY)) for d in range(5)}
    users = {tuple(at(u, NOW)) for u in range(5)}
    assert len(days) > 1 and len(users) > 1
    assert exploration.slot_count(20, 0.0) == 0 and exploration.slot_count(1, 0.5) == 0
    assert exploration.slot_count(20, 0.05) == 1 and exploration.slot_count(3, 0.5) == 2


def test_off_by_default_and_explored_slots_come_from_the_candidate_tail_outside_the_popular_head() -> None:
    t = table(200)
    ranked = [f"m{i}" for i in range(20)]
    tail = np.asarray([f"m{i}" for i in range(20, 200)], dtype=object)
    popular = [f"m{i}" for i in range(100)]
    outcome = Outcome(ranked, "model", tail=tail)
    assert explore(outcome, t, share=0.0) is outcome
    before = slots_served("candidates")
    out = explore(outcome, t, share=0.2, popular=popular)
    changed = [i for i, (a, b) in enumerate(zip(ranked, out.movies, strict=True)) if a != b]
    assert len(changed) == 4 and 0 not in changed
    assert all(int(out.movies[i][1:]) >= 100 for i in changed)  # outside the top-100 popular
    assert slots_served("candidates") - before == 4
    assert out.candidate_sources["exploration"] == 4
    assert explore(outcome, t, share=0.2, popular=popular).movies == out.movies  # reproducible
    other_day = explore(outcome, t, share=0.2, popular=popular, now=NOW + DAY)
    assert other_day.movies != out.movies
    # A smaller head: the popular list's movies past it may be explored too.
    small = finalize(outcome, {AGE: 30}, 7, t, popular, NOW, 1.0, 0.2, head=10)
    picked = [m for a, m in zip(ranked, small.movies, strict=True) if a != m]
    assert len(picked) == 4 and any(10 <= int(m[1:]) < 100 for m in picked)


def test_without_a_candidate_tail_the_catalogue_is_sampled() -> None:
    t = table(5_000)
    popular = [f"m{i}" for i in range(100)]
    before = slots_served("catalogue")
    out = explore(Outcome(popular[:20], "fallback"), t, share=0.1, popular=popular)
    explored = [m for m in out.movies if m not in popular]
    assert len(explored) == 2 and slots_served("catalogue") - before == 2


def test_a_restricted_user_explores_only_titles_known_not_to_be_adult() -> None:
    adult = table(200, adult=1.0)
    unknown = table(200, adult=np.nan)
    ranked = Outcome(
        [f"m{i}" for i in range(20)], "model", tail=np.asarray([f"m{i}" for i in range(20, 200)])
    )
    for t in (adult, unknown):
        # m0..m19 are adult/unknown too: minors lose the adult ones, and nothing is explored in.
        out = explore(ranked, t, share=0.2, age=12)
        assert "exploration" not in out.candidate_sources
    assert explore(ranked, unknown, share=0.2, age=40).candidate_sources["exploration"] == 4


def test_explored_movies_respect_the_genre_cap() -> None:
    t = table(200, drama_from=30)  # the list: 10 comedies + 10 dramas; the tail beyond m30: dramas
    ranked = [f"m{i}" for i in range(10)] + [f"m{i}" for i in range(30, 40)]
    outcome = Outcome(ranked, "model", tail=np.asarray([f"m{i}" for i in range(40, 200)]))
    out = explore(outcome, t, share=0.2, genre_share=0.5)
    dramas = sum(int(m[1:]) >= 30 for m in out.movies)
    assert dramas <= 10  # a drama only replaces a drama
    free = explore(outcome, t, share=0.2, genre_share=1.0)
    assert free.candidate_sources["exploration"] == 4


def test_fill_skips_listed_excluded_and_inadmissible_movies() -> None:
    movies = ["a", "b", "c", "d"]
    filled = exploration.fill(
        movies, np.asarray([1, 3]), np.asarray(["a", "p", "x", "y", "z"], dtype=object), {"p"},
        lambda m, pos: m != "x",
    )  # fmt: skip
    assert filled == [1, 3] and movies == ["a", "y", "c", "z"]
    short = ["a", "b", "c"]
    assert exploration.fill(short, np.asarray([1, 2]), np.asarray(["q"]), set(), lambda m, p: True) == [1]
    assert short == ["a", "q", "c"]
