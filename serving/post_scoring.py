"""After scoring, on every answer path: the ranking constraints, exploration slots and the unknown-cost count.

`constrain` applies `serving.constraints` (adult titles, genre cap) with back-fill from the
outcome's reserve and the popular list; `finalize` adds `serving.exploration`'s slots and the
per-answer counts. docs/constraints.md has the rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from serving import constraints, exploration
from serving import metrics as M  # noqa: N812
from serving.movie_table import ADULT, COST, MovieTable
from serving.recommender import AGE, Outcome, recent_movies


def constrain(
    outcome: Outcome,
    user: dict[str, Any] | None,
    table: MovieTable,
    popular: Sequence[str],
    max_genre_share: float,
) -> Outcome:
    """The answer under the ranking constraints (adult rule, genre cap), each counted when it fires; once per outcome.

    Back-fill comes from `outcome.reserve`, then `popular` (the cost-aware popular fallback list,
    less the user's recent watches). O(list): one row lookup of the pool (~160 ids), NumPy over
    it, a greedy walk only when the genre cap fires.
    """
    if outcome.constrained or not outcome.movies:
        return replace(outcome, constrained=True)
    recent = set(recent_movies(user))
    pool = list(dict.fromkeys([*outcome.movies, *outcome.reserve, *(m for m in popular if m not in recent)]))
    rows = table.rows(pool)
    applied = constraints.apply(
        table.gather(ADULT, rows), table.gather_genres(rows) > 0, len(outcome.movies),
        restrict_adult=constraints.restricted((user or {}).get(AGE)), max_genre_share=max_genre_share,
    )  # fmt: skip
    _count("adult", applied.adult_removed)
    _count("genre_cap", applied.genre_deferred)
    movies = [pool[i] for i in applied.order.tolist()]
    used = set(movies)
    reserve = [m for m in pool[len(outcome.movies) :] if m not in used]
    return replace(outcome, movies=movies, reserve=reserve, constrained=True)


def finalize(
    outcome: Outcome,
    user: dict[str, Any] | None,
    user_id: int,
    table: MovieTable,
    popular: Sequence[str],
    now_s: float,
    max_genre_share: float,
    exploration_share: float,
    explore: bool = True,
    head: int = 100,
) -> Outcome:
    """The answer as served: `constrain` (unless the ranking step did), exploration slots, the per-answer counts.

    Exploration never draws the first `head` movies of `popular` (the fallback list: the 100 most
    popular). `explore=False` (interleaved answers, whose slots each belong to a team): no
    exploration. See docs/constraints.md.
    """
    if not outcome.movies:
        return outcome
    out = constrain(outcome, user, table, popular, max_genre_share)
    restrict = constraints.restricted((user or {}).get(AGE))
    movies, sources = list(out.movies), out.candidate_sources
    if explore and exploration_share > 0:
        rows = table.rows(movies)
        explored, source = _explore(
            movies, table.gather_genres(rows) > 0, out.tail, user_id, table,
            {*popular[:head], *recent_movies(user)}, now_s, restrict, max_genre_share, exploration_share,
        )  # fmt: skip
        if explored:
            M.EXPLORED_SLOTS.labels(source).inc(explored)
            sources = {**sources, "exploration": explored}
    served = table.rows(movies)
    if restrict:
        _count("adult_unknown", int(np.count_nonzero(np.isnan(table.gather(ADULT, served)))))
    unknown = out.unknown_cost
    if unknown is None:
        unknown = int(np.count_nonzero(~np.isfinite(table.gather(COST, served))))
    _count("unknown_cost", unknown)
    if movies == outcome.movies and sources is outcome.candidate_sources:
        return outcome
    return replace(out, movies=movies, candidate_sources=sources)


def _count(constraint: str, movies: int) -> None:
    """One answer in which `constraint` fired, acting on `movies` movies (nothing when 0)."""
    if movies:
        M.CONSTRAINT_FIRED.labels(constraint).inc()
        M.CONSTRAINT_MOVIES.labels(constraint).inc(movies)


def _explore(
    movies: list[str],
    list_genres: npt.NDArray[np.bool_],
    tail: npt.NDArray[Any] | None,
    user_id: int,
    table: MovieTable,
    excluded: set[str],
    now_s: float,
    restrict: bool,
    max_genre_share: float,
    share: float,
) -> tuple[int, str]:
    """Fill the user's exploration slots of `movies` in place; (slots filled, source: candidates or catalogue)."""
    rng = exploration.generator(user_id, now_s)
    positions = exploration.slots(rng, len(movies), share)
    if not len(positions):
        return 0, ""
    source = "candidates" if tail is not None and len(tail) else "catalogue"
    pool = (
        exploration.tail_order(rng, tail)
        if tail is not None and len(tail)
        else exploration.catalogue_draws(rng, table.ids, len(positions))
    )
    cap = constraints.genre_cap(len(movies), max_genre_share)
    adult = table.columns.get(ADULT)
    row_of = table.row_of
    rows_genres = list_genres.copy()

    def admissible(movie: str, pos: int) -> bool:
        # Accepting also records the movie's genres at `pos`: `exploration.fill` puts it there next.
        row = row_of.get(movie, -1)
        if row < 0:
            return False  # no metadata: neither the adult rule nor the cap could be checked
        if restrict and (adult is None or not len(adult) or adult[row] != 0.0):  # NaN too
            return False  # a restricted user explores only titles known not to be adult
        g = table.genres[row] > 0
        if not constraints.fits_cap(rows_genres, pos, g, cap):
            return False
        rows_genres[pos] = g
        return True

    return len(exploration.fill(movies, positions, pool, excluded, admissible)), source
