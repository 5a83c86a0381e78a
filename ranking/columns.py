"""Column names shared by candidate generation, training sets, the ranker and offline evaluation.

One place for every name (the Microsoft Recommenders habit), so a frame built by one stage
is read by the next without string literals drifting apart. Entity keys match the Feast
entities (`user_id`, `movie_id`) and the offline store's session and rating files.
"""

from __future__ import annotations

from typing import Final

USER: Final = "user_id"
"""User key (int64), the Feast `user` entity's join key."""
ITEM: Final = "movie_id"
"""Movie key (string slug), the Feast `movie` entity's join key."""
TIMESTAMP: Final = "event_timestamp"
"""When an interaction happened or a feature row became true (UTC); Feast's event time column."""
MINUTES: Final = "minutes_watched"
"""Distinct minutes a user watched of a movie in one session (int); the implicit-feedback strength."""
RATING: Final = "rating"
"""Explicit star rating (1 to 5 from the simulator, up to 10 in the course stream)."""
START_TS: Final = "start_ts"
"""First watched minute of a session in the offline store's sessions files (UTC)."""
END_TS: Final = "end_ts"
"""Last watched minute of a session: the moment the whole session is known (UTC)."""

SCORE: Final = "score"
"""A model's or generator's score for a (user, movie) pair: higher is better."""
RANK: Final = "rank"
"""1-based position of a movie in a user's list (1 is best)."""
LABEL: Final = "label"
"""Training target of the ranker for a (user, movie) pair (graded, non-negative integer)."""
GAIN: Final = "gain"
"""Graded relevance of a (user, movie) pair in held-out truth; NDCG uses 2**gain - 1."""
COST: Final = "cost"
"""License cost in USD paid per play of a movie (movie metadata)."""
SOURCE: Final = "candidate_source"
"""Which generators proposed a candidate, joined by '|' (e.g. "als|pop")."""

RANK_PREFIX: Final = "rank_"
"""Prefix of a generator's own rank kept as a ranker feature (`rank_als`, `rank_pop`)."""
SCORE_PREFIX: Final = "score_"
"""Prefix of a generator's own score kept as a ranker feature (`score_als`, `score_pop`)."""


def rank_column(source: str) -> str:
    """Name of the per-source rank feature column for `source` (e.g. "als" -> "rank_als")."""
    return f"{RANK_PREFIX}{source}"


def score_column(source: str) -> str:
    """Name of the per-source score feature column for `source` (e.g. "als" -> "score_als")."""
    return f"{SCORE_PREFIX}{source}"
