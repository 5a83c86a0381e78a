"""Feature transforms shared by training and serving: Feast feature rows + candidate info -> model matrix.

Training (point-in-time rows from `get_historical_features`) and serving (online rows from
`get_online_features`) both call `model_matrix` on frames with Feast's full feature names
(`<view>__<feature>`), so the model sees the same columns computed the same way: no
training/serving skew. Missing values stay NaN (LightGBM handles them natively).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from events.metadata import GENRE_INDEX, GENRES

FEATURE_SERVICE: Final = "ranker_v1"
"""The versioned feature service the model is trained and served on."""

UNKNOWN_COST_QUANTILE: Final = 0.9
"""A movie whose license cost is unknown is priced at this quantile of the known costs.

Conservative on purpose (docs/training.md, "Unknown license cost"): a movie must never look
cheap, and so be pushed up by the cost penalty or the cost-aware fallback, because the
metadata API failed or renamed `cost`; the 90th percentile penalises it like an expensive title
without letting one outlier price set it. Training, evaluation and serving all use it.
"""


def unknown_cost(known: npt.ArrayLike) -> float:
    """The price assumed for an unknown cost: UNKNOWN_COST_QUANTILE of the finite known costs (0 when none)."""
    values = np.asarray(known, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(np.quantile(values, UNKNOWN_COST_QUANTILE)) if len(values) else 0.0


def fill_unknown_cost(cost: npt.ArrayLike, assumed: float) -> tuple[npt.NDArray[np.float64], int]:
    """Costs with every unknown (NaN) one replaced by `assumed`, and how many were replaced."""
    values = np.asarray(cost, dtype=np.float64)
    unknown = ~np.isfinite(values)
    return np.where(unknown, assumed, values), int(unknown.sum())


RAW_NUMERIC: Final[tuple[str, ...]] = (
    "user_watch_stats__watch_minutes_1d",
    "user_watch_stats__watch_minutes_7d",
    "user_watch_stats__watch_count_7d",
    "user_watch_stats__watch_count_total",
    "user_rating_stats__rating_count",
    "user_rating_stats__rating_mean",
    "user_profile__age",
    "movie_popularity__plays_1h",
    "movie_popularity__plays_24h",
    "movie_popularity__plays_7d",
    "movie_popularity__completion_rate",
    "movie_rating_stats__rating_count",
    "movie_rating_stats__rating_mean",
    "movie_metadata__cost",
    "movie_metadata__runtime",
    "movie_metadata__vote_average",
    "movie_metadata__tmdb_popularity",
)
"""Feast features used as they are."""

CANDIDATE_COLUMNS: Final[tuple[str, ...]] = (
    "rank_pop",
    "score_pop",
    "rank_als",
    "score_als",
    "rank_item",
    "score_item",
    "sim_als_last",
    "sim_item_last",
)
"""Per-candidate signals from `ranking.candidate_index` (missing rank = not proposed by that source):
each generator's rank and score, and the candidate's ALS and item-item similarity to the user's last watches."""

DERIVED: Final[tuple[str, ...]] = (
    "user_days_since_active",
    "user_account_age_days",
    "movie_age_years",
    "genre_match",
    "genre_match_max",
    "genre_dislike",
    "plays_trend_24h_7d",
    "plays_trend_1h_24h",
    "movie_days_in_stream",
    "genre_match_recent",
)
"""Cross and recency features computed here."""

FEATURE_COLUMNS: Final[tuple[str, ...]] = RAW_NUMERIC + CANDIDATE_COLUMNS + DERIVED
"""The model's input columns, in order."""

_SECONDS_PER_DAY = 86_400.0


def _col(df: pd.DataFrame, name: str) -> np.ndarray:
    if name not in df:
        return np.full(len(df), np.nan, dtype=np.float64)
    values: np.ndarray = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return values


def _genre_row(genres: object) -> np.ndarray:
    """One movie's genre list as a one-hot row (GENRES order); zeros when unknown."""
    out = np.zeros(len(GENRES), dtype=np.float32)
    if genres is None or isinstance(genres, (float, str)) or not hasattr(genres, "__iter__"):
        return out
    for g in genres:
        j = GENRE_INDEX.get(str(g).lower())
        if j is not None:
            out[j] = 1.0
    return out


def _rows_by_identity(values: np.ndarray, row: Callable[[object], np.ndarray]) -> np.ndarray:
    """`row` applied once per distinct object: training repeats each user's or movie's list across its candidates."""
    if not len(values):
        return np.zeros((0, len(GENRES)), dtype=np.float32)
    ids = np.fromiter((id(v) for v in values), dtype=np.uint64, count=len(values))
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    table = np.stack([row(values[i]) for i in first]).astype(np.float32)
    out: np.ndarray = table[inverse.reshape(-1)]
    return out


def _genre_matrix(genres: pd.Series) -> np.ndarray:
    """One-hot rows (GENRES order) of each movie's genre list."""
    return _rows_by_identity(genres.to_numpy(dtype=object), _genre_row)


def _affinity_matrix(affinity: pd.Series) -> np.ndarray:
    """Rows of user genre affinity (zeros when unknown)."""
    return _rows_by_identity(affinity.to_numpy(dtype=object), affinity_vector)


USER_COLUMNS: Final[tuple[str, ...]] = tuple(c for c in RAW_NUMERIC if c.startswith("user_"))
"""Raw user features (one value per request at serving time)."""

MOVIE_COLUMNS: Final[tuple[str, ...]] = tuple(c for c in RAW_NUMERIC if c.startswith("movie_"))
"""Raw movie features (held in memory per movie at serving time)."""

LAST_ACTIVE: Final = "user_watch_stats__last_active_ts"
ACCOUNT_CREATED: Final = "user_profile__account_created_ts"
MOVIE_YEAR: Final = "movie_metadata__year"
MOVIE_GENRES: Final = "movie_metadata__genres"
MOVIE_FIRST_PLAY: Final = "movie_popularity__first_play_ts"
"""Unix seconds of the movie's first play in the stream (its age on this service)."""
RECENT_GENRES_N: Final = 10
"""Most recent watches whose genres make the user's recent-genre profile."""
USER_AFFINITY: Final = "user_watch_stats__genre_affinity"


class Column(Protocol):
    """Reads one named input column as float64 values, one per row (NaN where missing)."""

    def __call__(self, name: str) -> np.ndarray: ...


def genre_onehot(genres: pd.Series | list[object]) -> np.ndarray:
    """One-hot rows (GENRES order) of each movie's genre list (serving precomputes these per movie)."""
    return _genre_matrix(pd.Series(genres, dtype=object) if isinstance(genres, list) else genres)


def affinity_vector(affinity: object) -> np.ndarray:
    """One user's genre affinity as a GENRES-long float32 row (zeros when unknown)."""
    if affinity is None or isinstance(affinity, float) or not hasattr(affinity, "__len__"):
        return np.zeros(len(GENRES), dtype=np.float32)
    if len(affinity) != len(GENRES):
        return np.zeros(len(GENRES), dtype=np.float32)
    return np.asarray(affinity, dtype=np.float32)


def recent_genre_profile(recent: np.ndarray, genre_rows: np.ndarray) -> np.ndarray:
    """Genre shares of the user's RECENT_GENRES_N latest watches (positions into `genre_rows`; zeros when none)."""
    last = recent[:RECENT_GENRES_N]
    if not len(last):
        return np.zeros(genre_rows.shape[1], dtype=np.float32)
    rows = genre_rows[last]
    per = rows / np.maximum(rows.sum(axis=1, keepdims=True), 1.0)
    total = per.sum(axis=0)
    out: np.ndarray = (total / max(float(total.sum()), 1e-9)).astype(np.float32)
    return out


def matrix_from_columns(
    column: Column,
    genres: np.ndarray,
    affinity: np.ndarray,
    now_s: float | np.ndarray,
    n: int,
    recent_genres: np.ndarray | None = None,
) -> np.ndarray:
    """The ranker's float32 matrix from column readers: the one implementation training and serving share.

    `column(name)` gives the n values of a RAW_NUMERIC, CANDIDATE_COLUMNS or date input;
    `genres` and `affinity` are (n, len(GENRES)) one-hot genre rows and user affinity rows;
    `recent_genres` the user's recent-genre profile per row (`recent_genre_profile`; None: unknown).
    """
    now = np.broadcast_to(np.asarray(now_s, dtype=np.float64), (n,))
    # Written column by column into one float32 block: no float64 copy of the whole matrix.
    out = np.empty((n, len(FEATURE_COLUMNS)), dtype=np.float32)
    for j, name in enumerate(RAW_NUMERIC + CANDIDATE_COLUMNS):
        out[:, j] = column(name)
    last_active, created, year = column(LAST_ACTIVE), column(ACCOUNT_CREATED), column(MOVIE_YEAR)
    n_genres = genres.sum(axis=1)
    overlap = (genres * affinity).sum(axis=1)
    known = (n_genres > 0) & (affinity.sum(axis=1) > 0)
    genre_match = np.where(known, overlap / np.maximum(n_genres, 1), np.nan)
    genre_max = np.where(known, (genres * affinity).max(axis=1, initial=0.0), np.nan)
    # A movie whose genres the user never watches, while the user watches plenty: a soft dislike.
    genre_dislike = np.where(known, (overlap == 0).astype(np.float64), np.nan)
    plays_24h, plays_7d = column("movie_popularity__plays_24h"), column("movie_popularity__plays_7d")
    trend = np.where(plays_7d > 0, plays_24h * 7.0 / np.maximum(plays_7d, 1.0), np.nan)
    plays_1h = column("movie_popularity__plays_1h")
    trend_short = np.where(plays_24h > 0, plays_1h * 24.0 / np.maximum(plays_24h, 1.0), np.nan)
    if recent_genres is None:
        genre_recent = np.full(n, np.nan)
    else:
        known_recent = (n_genres > 0) & (recent_genres.sum(axis=1) > 0)
        genre_recent = np.where(
            known_recent, (genres * recent_genres).sum(axis=1) / np.maximum(n_genres, 1), np.nan
        )
    now_year = 1970.0 + now / (365.2425 * _SECONDS_PER_DAY)
    derived = (
        (now - last_active) / _SECONDS_PER_DAY,
        (now - created) / _SECONDS_PER_DAY,
        now_year - year,
        genre_match,
        genre_max,
        genre_dislike,
        trend,
        trend_short,
        (now - column(MOVIE_FIRST_PLAY)) / _SECONDS_PER_DAY,
        genre_recent,
    )
    for j, values in enumerate(derived, start=len(RAW_NUMERIC) + len(CANDIDATE_COLUMNS)):
        out[:, j] = values
    return out


def model_matrix(
    df: pd.DataFrame, now_s: float | np.ndarray, recent_genres: np.ndarray | None = None
) -> np.ndarray:
    """The float32 matrix (rows of `df`, FEATURE_COLUMNS) for the ranker; `now_s` is the as-of time in unix seconds."""
    n = len(df)
    genres = _genre_matrix(df[MOVIE_GENRES]) if MOVIE_GENRES in df else np.zeros((n, len(GENRES)), np.float32)
    affinity = (
        _affinity_matrix(df[USER_AFFINITY]) if USER_AFFINITY in df else np.zeros((n, len(GENRES)), np.float32)
    )
    return matrix_from_columns(lambda name: _col(df, name), genres, affinity, now_s, n, recent_genres)
