"""Exploration slots: a seeded share of a list's positions given to movies from outside the top-N popular.

A feedback loop (users watch what they are shown, the ranker learns what they watched)
concentrates lists on what is already popular; a few slots of long-tail movies keep collecting
evidence about the rest of the catalogue. With `RECSYS_SERVING_EXPLORATION_SHARE` = s, a list of
n movies gives round(s * n) slots (never the first) to movies drawn from the user's candidates
outside the top-N popular (the model path), else from the catalogue outside them. Positions and
draws come from a generator seeded by (user, day), so the same user gets the same slots all day
and a replayed run gets the same answers. The adult rule and the genre cap hold for explored
movies too (`serving.constraints`); a slot with no admissible movie keeps its ranked movie.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Final

import numpy as np
import numpy.typing as npt

SALT: Final = 0x5EED_E8A1
"""Separates this generator's stream from any other seeded by the same (user, day)."""
DAY_S: Final = 86_400
"""Seconds per day: the seed changes at 00:00 UTC (of the serving clock: stream time under `clock: stream`)."""
DRAWS_PER_SLOT: Final = 8
"""Catalogue draws per slot when sampling the whole table (most land outside the popular few)."""


def generator(user_id: int, now_s: float) -> np.random.Generator:
    """The user's exploration generator for the day holding `now_s`."""
    return np.random.default_rng([SALT, int(user_id), int(now_s // DAY_S)])


def slot_count(length: int, share: float) -> int:
    """Explored slots in a list of `length` movies: round(share * length), never the first slot."""
    if share <= 0 or length < 2:
        return 0
    return min(int(np.floor(share * length + 0.5)), length - 1)


def slots(rng: np.random.Generator, length: int, share: float) -> npt.NDArray[np.int64]:
    """The explored positions (ascending) of a list of `length` movies; drawn first, so they depend on (user, day) only."""
    n = slot_count(length, share)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    return np.sort(1 + rng.choice(length - 1, size=n, replace=False)).astype(np.int64)


def tail_order(rng: np.random.Generator, tail: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The candidate tail (movie ids outside the top-N popular) in a seeded random order."""
    return tail[rng.permutation(len(tail))] if len(tail) else tail


def catalogue_draws(rng: np.random.Generator, ids: npt.NDArray[Any], n_slots: int) -> npt.NDArray[Any]:
    """A seeded sample of the catalogue's movie ids (with repeats removed), DRAWS_PER_SLOT per slot: no pass over it."""
    if not len(ids) or n_slots <= 0:
        return ids[:0]
    draws = rng.integers(0, len(ids), size=DRAWS_PER_SLOT * n_slots)
    _, first = np.unique(draws, return_index=True)
    return ids[draws[np.sort(first)]]


def fill(
    movies: list[str],
    positions: npt.NDArray[np.int64],
    candidates: npt.NDArray[Any],
    excluded: Collection[str],
    admissible: Callable[[str, int], bool],
) -> list[int]:
    """Put candidates into `movies` at `positions` (in place), in candidate order; the positions filled.

    A candidate is skipped when it is already listed, in `excluded` (the popular head, what the
    user recently watched) or not `admissible(movie, position)` (adult rule, genre cap).
    """
    listed = set(movies)
    filled: list[int] = []
    it = iter(candidates.tolist())
    for pos in positions.tolist():
        for movie in it:
            m = str(movie)
            if m in listed or m in excluded or not admissible(m, pos):
                continue
            movies[pos] = m  # the ranked movie it replaces stays in `listed`: never explored back in
            listed.add(m)
            filled.append(pos)
            break
        else:
            break  # candidates exhausted: the remaining slots keep their ranked movies
    return filled
