"""Ranking constraints applied after scoring: adult titles kept from minors, a cap on one genre's share.

Pure functions over a ranked pool (the list as ranked, then lower-ranked back-fill), with NumPy
columns gathered once per request; the greedy genre walk touches at most the pool (~160 movies),
never the catalogue. `serving.post_scoring.finalize` applies them to every answer path and counts
each one that fires. The rules, and why unknown values fall where they do: docs/constraints.md.

- Adult: a user under `ADULT_AGE`, or of unknown age, never gets a title flagged adult. A title
  whose flag is unknown is not treated as adult (the metadata API always sends the flag; unknown
  means the record never arrived or predates the field), but serving it to such a user is counted.
- Genre cap: no genre on more than `max_share` of the list's slots (a movie counts for each of its
  genres). Greedy in rank order: a movie that would push a genre over the cap is passed over and
  the next one tried; the list keeps rank order otherwise. When the pool runs out the passed-over
  movies fill the remaining slots in rank order (the cap gives way, a list never gets shorter).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

ADULT_AGE: Final = 18
"""Users younger than this never get adult titles."""
I64 = npt.NDArray[np.int64]


def restricted(age: Any) -> bool:
    """Whether adult titles are kept from a user of this age: under ADULT_AGE, or unknown (None, NaN, unreadable)."""
    try:
        value = float(age)
    except (TypeError, ValueError):
        return True
    return not value >= ADULT_AGE  # NaN compares False: unknown counts as a minor


def genre_cap(count: int, max_share: float) -> int | None:
    """Most slots one genre may take in a list of `count` movies (at least 1); None when the cap is off (share >= 1)."""
    if max_share >= 1.0:
        return None
    return max(1, math.floor(max_share * count + 1e-9))


@dataclass(frozen=True)
class Applied:
    """The constrained list as positions into the pool, and what each constraint did to it."""

    order: I64
    """Pool positions of the served list, best first."""
    adult_removed: int = 0
    """Adult titles taken out of the list for a restricted user (0: the rule did not fire)."""
    genre_deferred: int = 0
    """Movies of the list the genre cap passed over (0: it did not fire)."""


def capped(genres: npt.NDArray[np.bool_], k: int, max_share: float) -> I64:
    """Positions of the first k rows under the genre cap (greedy, rank order kept); see the module doc."""
    m = len(genres)
    k = min(k, m)
    cap = genre_cap(k, max_share)
    if cap is None or k == 0 or int(genres[:k].sum(axis=0).max(initial=0)) <= cap:
        return np.arange(k, dtype=np.int64)
    # Python over at most the pool: per-row genre lists make each step a few int compares.
    per_row: list[list[int]] = [[] for _ in range(m)]
    rows, cols = np.nonzero(genres)
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        per_row[r].append(c)
    counts = [0] * genres.shape[1]
    picked: list[int] = []
    passed: list[int] = []
    for i, g in enumerate(per_row):
        if all(counts[j] < cap for j in g):
            picked.append(i)
            for j in g:
                counts[j] += 1
            if len(picked) == k:
                break
        else:
            passed.append(i)
    picked += passed[: k - len(picked)]  # pool exhausted: the cap gives way rather than shorten the list
    return np.asarray(sorted(picked), dtype=np.int64)


def apply(
    adult: npt.NDArray[np.float64],
    genres: npt.NDArray[np.bool_],
    length: int,
    *,
    restrict_adult: bool,
    max_genre_share: float,
) -> Applied:
    """The served list from a ranked pool: adult titles out (restricted users), then the genre cap, `length` long at most.

    `adult` (1.0 / 0.0 / NaN) and `genres` (multi-hot) are the pool's rows in rank order; the
    first `length` rows are the list as ranked, the rest back-fill.
    """
    keep = np.arange(len(adult), dtype=np.int64)
    removed = 0
    if restrict_adult:
        blocked = adult == 1.0  # NaN (unknown) compares False
        removed = int(np.count_nonzero(blocked[:length]))
        keep = keep[~blocked]
    pos = capped(genres[keep], length, max_genre_share)
    order = keep[pos]
    n = len(order)
    top = keep[:n]  # what the list would be without the cap
    deferred = int(np.count_nonzero(~np.isin(top, order))) if n and not np.array_equal(order, top) else 0
    return Applied(order, removed, deferred)


def fits_cap(
    list_genres: npt.NDArray[np.bool_], pos: int, candidate: npt.NDArray[np.bool_], cap: int | None
) -> bool:
    """Whether a movie with genres `candidate` may replace row `pos` of a list with genre rows `list_genres`.

    None of its genres may go over the cap, or over its count in the list already where the
    cap gave way (the replacement must not make the list worse).
    """
    if cap is None:
        return True
    counts = list_genres.sum(axis=0)
    after = counts - list_genres[pos] + candidate
    return bool((after <= np.maximum(counts, cap))[candidate].all())
