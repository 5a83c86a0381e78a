"""The serving candidate path reproduces training's candidates, and the shared transform matches per row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from events.metadata import GENRE_INDEX, GENRES
from ranking import columns as C  # noqa: N812
from ranking.candidate_index import CandidateIndex
from ranking.candidates import ALSConfig
from ranking.candidates.merge import MISSING_RANK
from ranking.dataset import candidates, fit_generators
from ranking.transforms import (
    FEATURE_COLUMNS,
    RAW_NUMERIC,
    affinity_vector,
    genre_onehot,
    matrix_from_columns,
    model_matrix,
)


def _sessions(n_users: int = 60, n_movies: int = 80, n: int = 1500, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-10-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 10 * 86_400, n), unit="s")
    minutes = rng.integers(1, 120, n)
    # Skewed movie choice so popularity and ALS disagree and overlap.
    movies = np.minimum(rng.zipf(1.3, n), n_movies) - 1
    return pd.DataFrame(
        {
            C.USER: rng.integers(0, n_users, n).astype(np.int64),
            C.ITEM: [f"movie+{m}+19{m % 90 + 10}" for m in movies],
            C.MINUTES: minutes,
            C.START_TS: start,
            C.END_TS: start + pd.to_timedelta(minutes, unit="m"),
        }
    )


def test_index_candidates_match_training_candidates_row_for_row(tmp_path: Path) -> None:
    sessions = _sessions()
    as_of = pd.Timestamp("2026-10-09", tz="UTC")
    config = ALSConfig(factors=8, iterations=5)
    gens = fit_generators(sessions, as_of, config)
    index = CandidateIndex.build(sessions, as_of, config)
    index = CandidateIndex.load(index.save(tmp_path / "candidates"))  # through its files, as serving reads it
    users = np.asarray([*sorted(gens.seen)[:25], 10_000], dtype=np.int64)  # the last one is unknown
    expected = candidates(gens, users, 50, 100, 120)
    compared = 0
    for user in users:
        want = expected[expected[C.USER] == user]
        got = index.candidates(int(user))
        assert index.items[got.items].tolist() == want[C.ITEM].tolist(), f"user {user}"
        assert got.rank_pop.tolist() == want["rank_pop"].tolist()
        assert got.rank_als.tolist() == want["rank_als"].tolist()
        np.testing.assert_allclose(
            got.score_als, want["score_als"].to_numpy(dtype=float), rtol=1e-5, atol=1e-6
        )
        assert got.known_user == (user in gens.seen)
        compared += len(want)
    assert compared > 1000, "the comparison must cover many candidates"


def test_extra_seen_movies_are_excluded_and_unknown_users_get_popular_only() -> None:
    sessions = _sessions()
    index = CandidateIndex.build(
        sessions, pd.Timestamp("2026-10-09", tz="UTC"), ALSConfig(factors=4, iterations=2)
    )
    top = index.popular(3)
    got = index.candidates(99_999, also_seen=top)
    assert not got.known_user
    assert not set(top) & set(got.items.tolist())
    assert (got.rank_als == MISSING_RANK).all() and got.rank_pop.tolist()[:3] == [1, 2, 3]
    assert got.sources() == {"pop": len(got.items), "als": 0}


def test_shared_transform_gives_the_same_matrix_from_arrays_and_from_a_frame() -> None:
    rng = np.random.default_rng(1)
    n = 30
    # One user (constant user columns, as at serving time), many movies.
    frame = pd.DataFrame(
        {c: np.full(n, rng.normal()) if c.startswith("user_") else rng.normal(size=n) for c in RAW_NUMERIC}
    )
    frame["user_watch_stats__last_active_ts"] = 1.79e9
    frame["user_profile__account_created_ts"] = 1.70e9
    frame["movie_metadata__year"] = rng.integers(1950, 2026, n)
    frame["rank_pop"], frame["rank_als"], frame["score_als"] = rng.integers(1, 50, n), MISSING_RANK, np.nan
    genres = [[GENRES[i % len(GENRES)], GENRES[(i * 7) % len(GENRES)]] if i % 5 else None for i in range(n)]
    frame["movie_metadata__genres"] = pd.Series(genres, dtype=object)
    affinity = rng.random(len(GENRES)).astype(np.float32)
    frame["user_watch_stats__genre_affinity"] = pd.Series([affinity] * n, dtype=object)
    want = model_matrix(frame, 1.8e9)
    user_cols = {c for c in frame if c.startswith("user_")}

    def column(name: str) -> np.ndarray:
        if name not in frame:
            return np.full(n, np.nan)
        if name in user_cols:  # serving broadcasts one user value
            return np.full(n, float(frame[name].iloc[0]))
        return frame[name].to_numpy(dtype=np.float64)

    got = matrix_from_columns(
        column, genre_onehot(genres), np.broadcast_to(affinity_vector(affinity), (n, len(GENRES))), 1.8e9, n
    )
    np.testing.assert_array_equal(got, want)
    assert got.shape == (n, len(FEATURE_COLUMNS))


def test_list_columns_map_per_row_whether_objects_repeat_or_not() -> None:
    from ranking.transforms import _affinity_matrix, _genre_matrix

    rng = np.random.default_rng(4)
    shared = ["Drama", "comedy", "no-such-genre"]
    genres = [
        shared,
        None,
        np.nan,
        ["action"],
        shared,
        np.asarray(["horror", "Drama"], dtype=object),
        [],
        shared,
    ]
    want = np.zeros((len(genres), len(GENRES)), np.float32)
    for i, gs in enumerate(genres):
        for g in gs if isinstance(gs, (list, np.ndarray)) else []:
            if g.lower() in GENRE_INDEX:
                want[i, GENRE_INDEX[g.lower()]] = 1.0
    np.testing.assert_array_equal(_genre_matrix(pd.Series(genres, dtype=object)), want)
    aff = rng.random(len(GENRES)).astype(np.float32)
    rows = [aff, None, list(aff * 2), aff, [0.5], np.nan]
    got = _affinity_matrix(pd.Series(rows, dtype=object))
    np.testing.assert_array_equal(got[[0, 3]], np.stack([aff, aff]))
    np.testing.assert_allclose(got[2], aff * 2, rtol=1e-6)
    assert not got[[1, 4, 5]].any(), "unknown or wrong-length affinity rows are zeros"
