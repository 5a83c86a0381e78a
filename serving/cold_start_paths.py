"""The cold-start answers of one request: a user without history under an arm's policy, and the hand-over mix.

Separate from `serving.cold_start` (which builds and holds the policy) so the request path's
choices read in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from serving.cold_start import POLICY, Inline, SelfDescriptionColdStart
from serving.recommender import TOP_K, Outcome, recent_movies, without


def cold_start_outcome(
    cold: SelfDescriptionColdStart,
    fallback: Sequence[str],
    policy: str,
    user: dict[str, Any] | None,
    inline: Inline | None = None,
) -> Outcome:
    """A user without history under an arm's policy; the reason says which policy served and, for ours, the outcome.

    `popular` -> reason `popular`; `self_description` -> `self_description:<outcome>` when the
    policy answered (topped up from the fallback list when it has fewer than 20), else
    `popular:<outcome>` (no stored or inline description, policy not built yet). `inline`: the
    description read on the request path when none is stored (`SelfDescriptionColdStart.fetch_inline`).
    """
    recent = recent_movies(user)
    if policy != POLICY:
        return Outcome(without(fallback, set(recent)), "cold_start", reason=policy)
    movies, outcome = cold.recommend(user, recent, inline=inline)
    if movies is None:
        return Outcome(without(fallback, set(recent)), "cold_start", reason=f"popular:{outcome}")
    if len(movies) < TOP_K:
        movies = (movies + without(fallback, set(movies) | set(recent)))[:TOP_K]
    return Outcome(movies, "cold_start", reason=f"{POLICY}:{outcome}")


def handover_outcome(
    cold: SelfDescriptionColdStart, outcome: Outcome, user: dict[str, Any] | None
) -> Outcome:
    """A ranker answer to a user with a little history, mixed with the description's (unchanged at share 0)."""
    movies, share = cold.handover(user, outcome.movies, recent_movies(user), TOP_K)
    if share <= 0.0:
        return outcome
    sources = {**outcome.candidate_sources, POLICY: sum(1 for m in movies if m not in set(outcome.movies))}
    return replace(
        outcome, movies=movies, candidate_sources=sources, reason=f"handover:{POLICY} share={share:.2f}"
    )
