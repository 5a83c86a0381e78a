"""The candidate index (training's, evaluation's and serving's one candidate path), and the shared transform per row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from events.metadata import GENRE_INDEX, GENRES
from ranking import columns as C  # noqa: N812
from ranking.candidate_index import GENERATORS, POLICIES, RECENT_DECAY, CandidateIndex, IndexConfig
from ranking.candidates import ALSConfig
from ranking.candidates.merge import MISSING_RANK
from ranking.interactions import history
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


def test_candidates_are_the_union_of_each_generators_top_k_without_seen_movies(tmp_path: Path) -> None:
    sessions = _sessions()
    as_of = pd.Timestamp("2026-10-09", tz="UTC")
    config = IndexConfig(half_life_days=3.0, k_pop=10, k_als=15, k_item=15)
    built = CandidateIndex.build(sessions, as_of, ALSConfig(factors=8, iterations=5), config)
    index = CandidateIndex.load(built.save(tmp_path / "candidates"))  # through its files, as serving reads it
    hist = history(sessions, as_of)
    compared = 0
    for user in sorted(hist[C.USER].unique())[:25]:
        recent = index.positions(
            hist[hist[C.USER] == user].sort_values(C.TIMESTAMP, ascending=False)[C.ITEM].unique().tolist()
        )
        got, again = index.candidates(int(user), recent), built.candidates(int(user), recent)
        assert got.items.tolist() == again.items.tolist()  # saved and loaded: the same candidates
        seen = set(index.watched(int(user)).tolist()) | set(recent.tolist())
        assert not seen & set(got.items.tolist())
        for gen, k in (("pop", 10), ("als", 15), ("item", 15)):
            own = got.features[f"rank_{gen}"]
            proposed = got.items[own != MISSING_RANK]
            assert len(proposed) <= k and sorted(own[own != MISSING_RANK].tolist()) == list(
                range(1, len(proposed) + 1)
            )
        # Every candidate was proposed by some generator, and the merged set holds each generator's list.
        ranks = np.stack([got.features[f"rank_{g}"] for g in GENERATORS])
        assert (ranks != MISSING_RANK).any(axis=0).all()
        assert set(index.generator_list("item_item", int(user), recent, 15).tolist()) >= set(
            got.items[got.features["rank_item"] != MISSING_RANK].tolist()
        )
        compared += len(got.items)
    assert compared > 500


def test_item_item_weighs_the_most_recent_watches_most() -> None:
    sessions = _sessions()
    index = CandidateIndex.build(
        sessions, pd.Timestamp("2026-10-09", tz="UTC"), ALSConfig(factors=4, iterations=2)
    )
    sim = index._similar.toarray()
    a, b = index.popular(2)
    for recent in ([a, b], [b, a]):
        want = sim[recent[0]] + RECENT_DECAY * sim[recent[1]]
        want[recent] = -np.inf
        got = index.generator_list("item_item", 99_999, np.asarray(recent), 3)
        assert got[0] == int(np.argmax(want)), recent
        assert want[got[0]] > 0


def test_unknown_users_get_popular_candidates_and_baselines_top_up_to_k() -> None:
    sessions = _sessions()
    index = CandidateIndex.build(
        sessions, pd.Timestamp("2026-10-09", tz="UTC"), ALSConfig(factors=4, iterations=2)
    )
    top = index.popular(3)
    got = index.candidates(99_999, top)
    assert not got.known_user
    assert not set(top) & set(got.items.tolist())
    assert (got.features["rank_als"] == MISSING_RANK).all()
    assert got.sources()["als"] == 0 and got.sources()["pop"] > 0
    for policy in POLICIES:
        assert len(index.generator_list(policy, 99_999, top, 20)) == 20, policy


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
