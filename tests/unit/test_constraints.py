"""Ranking constraints after scoring: adult titles and minors, the genre cap, the unknown-cost rule, each counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY

from events.metadata import GENRES
from serving import constraints
from serving.models import ModelBundle
from serving.movie_table import ADULT, COST, MovieTable
from serving.post_scoring import finalize
from serving.recommender import AGE, Outcome, rank

DRAMA, COMEDY, HORROR = GENRES.index("Drama"), GENRES.index("Comedy"), GENRES.index("Horror")


def onehot(rows: list[list[int]]) -> np.ndarray:
    out = np.zeros((len(rows), len(GENRES)), dtype=bool)
    for i, gs in enumerate(rows):
        out[i, gs] = True
    return out


def table(n: int, adult: dict[int, float] | None = None, genre: list[list[int]] | None = None,
          cost: list[float] | None = None) -> MovieTable:  # fmt: skip
    flags = np.zeros(n)
    for i, v in (adult or {}).items():
        flags[i] = v
    genres = onehot(genre or [[COMEDY]] * n).astype(np.float32)
    cols = {COST: np.asarray(cost or [1.0] * n, dtype=np.float64), ADULT: flags}
    return MovieTable(np.asarray([f"m{i}" for i in range(n)], dtype=object), cols, genres)


def sample(name: str, constraint: str) -> float:
    return REGISTRY.get_sample_value(name, {"constraint": constraint}) or 0.0


def counted(constraint: str) -> tuple[float, float]:
    return (
        sample("recsys_constraint_fired_total", constraint),
        sample("recsys_constraint_movies_total", constraint),
    )


def fin(outcome: Outcome, user: dict[str, object] | None, t: MovieTable, popular: list[str] | None = None,
        share: float = 1.0) -> Outcome:  # fmt: skip
    return finalize(outcome, user, 7, t, popular or [], 1.8e9, share, 0.0)


@pytest.mark.parametrize(("age", "kept"), [(17, True), (0, True), (18, False), (44, False), (None, True),
                                           (float("nan"), True), ("x", True), ("30", False)])  # fmt: skip
def test_users_under_18_or_of_unknown_age_are_restricted(age: object, kept: bool) -> None:
    assert constraints.restricted(age) is kept


def test_a_minor_never_gets_an_adult_title_and_the_list_is_back_filled_in_rank_order() -> None:
    t = table(30, adult={1: 1.0, 3: 1.0, 21: 1.0})
    ranked = Outcome([f"m{i}" for i in range(20)], "model", reserve=[f"m{i}" for i in range(20, 25)])
    before = counted("adult")
    out = fin(ranked, {AGE: 15}, t)
    assert out.movies == [f"m{i}" for i in range(20) if i not in (1, 3)] + ["m20", "m22"]
    after = counted("adult")
    assert (after[0] - before[0], after[1] - before[1]) == (1, 2)
    assert fin(ranked, {AGE: 30}, t).movies == ranked.movies  # adults: untouched, nothing counted
    assert counted("adult") == after
    assert fin(ranked, None, t).movies == out.movies  # unknown age (features unread): as a minor


def test_fallback_and_popular_lists_respect_the_adult_rule() -> None:
    t = table(40, adult={0: 1.0, 25: 1.0})
    popular = [f"m{i}" for i in range(40)]
    for path in ("fallback", "cold_start"):
        out = fin(Outcome(popular[:20], path), {AGE: 12}, t, popular)
        assert "m0" not in out.movies and "m25" not in out.movies and len(out.movies) == 20
        assert out.movies[-1] == "m20"  # back-filled from the popular list, its order kept


def test_an_unknown_flag_is_served_but_counted_for_restricted_users() -> None:
    t = table(22, adult={2: np.nan})
    before = counted("adult_unknown")
    out = fin(Outcome([f"m{i}" for i in range(20)], "model"), {AGE: 10}, t)
    assert "m2" in out.movies
    assert counted("adult_unknown")[1] - before[1] == 1
    fin(Outcome([f"m{i}" for i in range(20)], "model"), {AGE: 40}, t)
    assert counted("adult_unknown")[1] - before[1] == 1  # adults: not counted


def test_genre_cap_greedy_keeps_rank_order_and_back_fills() -> None:
    g = onehot([[DRAMA]] * 6 + [[COMEDY]] * 6)
    order = constraints.capped(g, 6, 0.5)  # cap 3 dramas of 6
    assert order.tolist() == [0, 1, 2, 6, 7, 8]
    assert constraints.capped(g, 6, 1.0).tolist() == list(range(6))  # 1.0: off
    assert constraints.capped(g[:6], 6, 0.5).tolist() == list(
        range(6)
    )  # nothing to back-fill with: cap gives way
    multi = onehot([[DRAMA, COMEDY], [DRAMA], [COMEDY], [HORROR], [HORROR]])
    assert constraints.capped(multi, 4, 0.5).tolist() == [0, 1, 2, 3]  # 2 dramas, 2 comedies of 4: at the cap
    assert constraints.genre_cap(20, 0.5) == 10 and constraints.genre_cap(3, 0.1) == 1
    assert constraints.genre_cap(20, 1.0) is None
    listed = onehot([[DRAMA]] * 3 + [[COMEDY]])
    assert not constraints.fits_cap(listed, 3, onehot([[DRAMA]])[0], 2)  # a 4th drama: over the cap
    assert constraints.fits_cap(listed, 0, onehot([[DRAMA]])[0], 2)  # drama for drama: no worse
    assert constraints.fits_cap(listed, 3, onehot([[HORROR]])[0], 2)
    assert constraints.fits_cap(listed, 3, onehot([[DRAMA]])[0], None)


def test_genre_cap_fires_on_answers_and_is_counted() -> None:
    genre = [[DRAMA]] * 15 + [[COMEDY]] * 15
    t = table(30, genre=genre)
    ranked = Outcome([f"m{i}" for i in range(20)], "model", reserve=[f"m{i}" for i in range(20, 30)])
    before = counted("genre_cap")
    out = fin(ranked, {AGE: 30}, t, share=0.5)
    assert out.movies == [f"m{i}" for i in range(10)] + [f"m{i}" for i in range(15, 25)]
    after = counted("genre_cap")
    assert (after[0] - before[0], after[1] - before[1]) == (1, 5)
    assert fin(ranked, {AGE: 30}, t, share=1.0).movies == ranked.movies


def test_unknown_cost_rule_is_counted_where_it_fires() -> None:
    t = table(22, cost=[1.0, np.nan] + [1.0] * 20)
    before = counted("unknown_cost")
    fin(Outcome([f"m{i}" for i in range(20)], "fallback"), {AGE: 30}, t)  # served list holds m1
    fin(Outcome([f"m{i}" for i in range(2, 22)], "fallback"), {AGE: 30}, t)  # does not
    fin(Outcome([f"m{i}" for i in range(2, 22)], "model", unknown_cost=3), {AGE: 30}, t)  # 3 scored at p90
    after = counted("unknown_cost")
    assert (after[0] - before[0], after[1] - before[1]) == (2, 4)


def test_untouched_answers_are_returned_as_they_are() -> None:
    t = table(25)
    ranked = Outcome([f"m{i}" for i in range(20)], "model", reserve=["m21"])
    assert fin(ranked, {AGE: 30}, t, share=0.5) is ranked
    assert fin(Outcome([], "fallback"), None, t).movies == []


def test_model_path_keeps_a_reserve_and_a_minor_gets_no_adult_title(bundle: ModelBundle) -> None:
    ids = [str(m) for m in bundle.index.items]
    user = int(bundle.index.als.user_ids[0])
    plain = MovieTable.from_rows({"movie_id": ids, COST: [1.0] * len(ids), ADULT: [False] * len(ids)})
    ranked = rank(user, {}, bundle, plain, None, 1.8e9)
    assert ranked.reserve and not set(ranked.reserve) & set(ranked.movies)
    assert ranked.tail is not None and not set(ranked.tail.tolist()) & set(ranked.movies)
    assert ranked.unknown_cost == 0
    adult = set(ranked.movies[::3])
    t = MovieTable.from_rows({"movie_id": ids, COST: [1.0] * len(ids), ADULT: [m in adult for m in ids]})
    out = finalize(rank(user, {AGE: 16}, bundle, t, None, 1.8e9), {AGE: 16}, user, t, [], 1.8e9, 1.0, 0.0)
    assert not adult & set(out.movies) and len(out.movies) == len(ranked.movies)
    assert out.movies[: len(ranked.movies) - len(adult)] == [m for m in ranked.movies if m not in adult]


def test_constraints_run_once_per_answer_so_an_interleaved_team_keeps_its_slots() -> None:
    from serving.post_scoring import constrain

    t = table(30, adult={1: 1.0})
    ranked = Outcome([f"m{i}" for i in range(20)], "model", reserve=[f"m{i}" for i in range(20, 30)])
    before = counted("adult")
    team = constrain(ranked, {AGE: 9}, t, [], 1.0)  # an arm's ranking step (serving.interleave_path.ranked)
    assert team.constrained and "m1" not in team.movies and "m20" in team.movies
    assert "m20" not in team.reserve and "m21" in team.reserve
    merged = Outcome(team.movies[::-1], "model", constrained=True)  # the merge keeps team A's flag
    assert finalize(merged, {AGE: 9}, 7, t, [], 1.8e9, 0.5, 0.2, explore=False) is merged
    assert counted("adult")[1] - before[1] == 1  # counted once


def test_through_the_api_a_user_of_unknown_age_gets_no_adult_title(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.models import ModelManager
    from serving.provenance import ProvenanceLog
    from serving.routing import Router
    from serving.runtime import Runtime, check_bundle
    from serving.settings import ServingSettings

    settings = ServingSettings(RECSYS_VAR_DIR=tmp_path, exploration_share=0.1)  # type: ignore[call-arg]
    runtime = Runtime(settings, Router(), ModelManager(lambda: None, check_bundle, 60.0), None,
                      ProvenanceLog(index_size=10))  # fmt: skip
    runtime.table = table(200, adult={0: 1.0, 5: 1.0, 30: 1.0})
    runtime.fallback = [f"m{i}" for i in range(100)]
    with TestClient(create_app(settings, runtime)) as client:
        before = counted("adult")  # after the start-up's warm-up requests
        # No feature store: the features cannot be read, the age is unknown, the answer is the fallback list.
        response = client.get("/recommend/42")
        again = client.get("/recommend/42")
    ids = response.text.split(",")
    assert response.headers["X-Recommendation-Path"] == "fallback" and len(ids) == 20
    assert not {"m0", "m5", "m30"} & set(ids)
    assert sum(int(m[1:]) >= 100 for m in ids) == 2  # two explored slots from outside the popular head
    assert again.text == response.text  # seeded per user and day
    assert counted("adult")[0] - before[0] == 2
