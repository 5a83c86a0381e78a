"""What the self-description policy is built from and fed with, read from serving's own data.

The catalogue frame and popularity prior come from the in-memory movie table; the description
from the user's online read (`user_description__*`, written by ingestion). Pure functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from events.metadata import GENRES
from ranking.transforms import MOVIE_YEAR
from serving.movie_table import MovieTable
from textmodel.describe import ParsedDescription

PREFIX: Final = "user_description__"
"""Full-name prefix of the stored description features in the online read."""
PLAYS: Final = "movie_popularity__plays_7d"
"""Movie-table column of the popularity prior."""


def catalogue_frame(table: MovieTable) -> pd.DataFrame:
    """The movie table as `textmodel.movies.movie_documents` reads it: movie_id, year, genres (names)."""
    years = table.columns.get(MOVIE_YEAR, np.full(len(table), np.nan))
    names = np.asarray(GENRES, dtype=object)
    return pd.DataFrame(
        {
            "movie_id": [str(m) for m in table.ids],
            "year": years,
            "genres": [list(names[row > 0]) for row in table.genres] if len(table) else [],
        }
    )


def popularity_prior(table: MovieTable, popular: Sequence[str]) -> npt.NDArray[np.float64]:
    """Per table row: 7-day plays; before any play is counted, 1 / (1 + rank) of the champion's popular order."""
    plays = np.nan_to_num(table.columns.get(PLAYS, np.zeros(len(table))), nan=0.0)
    if float(plays.sum()) > 0:
        return plays.astype(np.float64)
    prior = np.zeros(len(table), dtype=np.float64)
    rows = table.rows(popular)
    for rank, row in enumerate(rows.tolist()):
        if row >= 0:
            prior[row] = 1.0 / (1.0 + rank)
    return prior


def stored_description(user: dict[str, Any] | None) -> ParsedDescription | None:
    """The user's stored description from the online read (None when ingestion has written no row)."""
    if not user or user.get(f"{PREFIX}description_kind") is None:
        return None
    raw = user.get(f"{PREFIX}text_vector")
    vector = np.asarray(raw, dtype=np.float32) if raw is not None and len(raw) else None

    def names(feature: str) -> tuple[str, ...]:
        return tuple(str(v) for v in (user.get(f"{PREFIX}{feature}") or ()))

    return ParsedDescription(
        vector=vector,
        model_id=user.get(f"{PREFIX}text_model_id") if vector is not None else None,
        liked=names("liked_movie_ids"),
        disliked=names("disliked_movie_ids"),
        liked_genres=names("liked_genres"),
        disliked_genres=names("disliked_genres"),
        kind=str(user[f"{PREFIX}description_kind"]),
    )


def rank_scores(movies: Sequence[str], union: Sequence[str]) -> npt.NDArray[np.float64]:
    """1 / (1 + position) of each movie of `union` in `movies` (0 where absent)."""
    at = {m: i for i, m in enumerate(movies)}
    return np.array([1.0 / (1.0 + at[m]) if m in at else 0.0 for m in union], dtype=np.float64)
