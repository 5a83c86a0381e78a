"""Candidate generators on small synthetic data with planted structure (behavioural and contract tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ranking import columns as C  # noqa: N812 (the Recommenders idiom: C.USER, C.ITEM)
from ranking.candidates import (
    CANDIDATE_COLUMNS,
    MISSING_RANK,
    ALSConfig,
    ALSGenerator,
    ItemItemGenerator,
    LeakageError,
    PopularityConfig,
    PopularityGenerator,
    merge_candidates,
    recall_at_k,
    seen_items,
    sessions_to_interactions,
)

NOW = pd.Timestamp("2026-01-31", tz="UTC")
GROUPS = ("a", "b")


def planted(
    n_per_group: int = 50, n_movies: int = 30, n_watch: int = 12, n_test: int = 3, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two user groups watching two disjoint movie sets; each user's last plays are held out.

    Users 0.. watch movies a00..; users 1000.. watch b00... Within a group, movie popularity
    is skewed (Zipf-like), so the held-out plays are neither trivial nor random.
    """
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_movies + 1) ** 0.7
    weights /= weights.sum()
    rows = []
    for g, prefix in enumerate(GROUPS):
        for u in range(n_per_group):
            movies = rng.choice(n_movies, size=n_watch, replace=False, p=weights)
            ages = np.sort(rng.uniform(1, 60, size=n_watch))[::-1]
            for m, age in zip(movies, ages, strict=True):
                when = NOW - pd.Timedelta(days=float(age))
                rows.append((g * 1000 + u, f"{prefix}{m:02d}", when, int(rng.integers(5, 120))))
    df = pd.DataFrame(rows, columns=[C.USER, C.ITEM, C.TIMESTAMP, C.MINUTES]).sort_values(
        [C.USER, C.TIMESTAMP]
    )
    held_out = df.groupby(C.USER).cumcount(ascending=False).to_numpy() < n_test
    return df[~held_out].reset_index(drop=True), df[held_out].reset_index(drop=True)


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """Training plays, held-out plays and a cut-off just after the last training play."""
    train, test = planted()
    return train, test, pd.Timestamp(train[C.TIMESTAMP].max()) + pd.Timedelta(seconds=1)


@pytest.fixture(scope="module")
def als(data: tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]) -> ALSGenerator:
    """ALS fitted on the planted training plays (few factors suit two groups)."""
    train, _, cutoff = data
    return ALSGenerator(ALSConfig(factors=4, iterations=15)).fit(train, cutoff=cutoff)


def in_group_share(recs: pd.DataFrame) -> float:
    """Share of recommended movies from the user's own group."""
    group = np.where(recs[C.USER].to_numpy() >= 1000, "b", "a")
    return float((recs[C.ITEM].str[0].to_numpy() == group).mean())


def test_als_recommends_in_group_with_recall_well_above_popularity(
    data: tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp], als: ALSGenerator
) -> None:
    train, test, cutoff = data
    users, seen = train[C.USER].unique(), seen_items(train)
    pop = PopularityGenerator().fit(train, now=cutoff, cutoff=cutoff)
    als_recs = als.recommend(users, 10, exclude=seen)
    pop_recs = pop.recommend(users, 10, exclude=seen)
    assert in_group_share(als_recs) >= 0.95
    assert in_group_share(pop_recs) <= 0.7
    als_recall, pop_recall = recall_at_k(als_recs, test, 10), recall_at_k(pop_recs, test, 10)
    assert als_recall >= pop_recall + 0.15
    assert als_recall >= 1.5 * pop_recall


def test_item_item_stays_in_group_and_beats_popularity(
    data: tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp],
) -> None:
    train, test, cutoff = data
    users, seen = train[C.USER].unique(), seen_items(train)
    recs = ItemItemGenerator().fit(train, cutoff=cutoff).recommend(users, 10, exclude=seen)
    pop_recs = PopularityGenerator().fit(train, now=cutoff).recommend(users, 10, exclude=seen)
    assert in_group_share(recs) == 1.0  # disjoint groups never co-watch
    assert recall_at_k(recs, test, 10) >= recall_at_k(pop_recs, test, 10) + 0.15


def test_popularity_prefers_recent_plays() -> None:
    old = [(u, "old", NOW - pd.Timedelta(days=60), 90) for u in range(10)]
    new = [(u, "new", NOW - pd.Timedelta(days=1), 90) for u in range(4)]
    plays = pd.DataFrame(old + new, columns=[C.USER, C.ITEM, C.TIMESTAMP, C.MINUTES])
    recent = PopularityGenerator(PopularityConfig(half_life_days=7)).fit(plays, now=NOW)
    assert recent.top(2) == ["new", "old"]
    scores = recent.item_scores()
    assert scores["new"] == pytest.approx(4 * 0.5 ** (1 / 7))
    assert scores["old"] == pytest.approx(10 * 0.5 ** (60 / 7))
    # With a very long half-life the raw play count wins again.
    assert PopularityGenerator(PopularityConfig(half_life_days=10_000)).fit(plays, now=NOW).top(2) == [
        "old",
        "new",
    ]


def test_popularity_serves_everyone_including_unknown_users() -> None:
    plays = pd.DataFrame(
        {
            C.USER: [1, 2, 3, 1],
            C.ITEM: ["x", "x", "y", "z"],
            C.TIMESTAMP: [NOW - pd.Timedelta(hours=1)] * 4,
        }
    )
    pop = PopularityGenerator().fit(plays, now=NOW)
    recs = pop.recommend([99, 1], 5, exclude={1: {"x"}})
    assert list(recs.columns) == list(CANDIDATE_COLUMNS)
    assert recs[C.USER].tolist() == [99, 99, 99, 1, 1]  # callers' order of users is kept
    assert recs[C.ITEM].tolist() == ["x", "y", "z", "y", "z"]  # ties broken by movie id
    assert recs[C.RANK].tolist() == [1, 2, 3, 1, 2]
    assert set(recs[C.SOURCE]) == {"pop"}
    assert pop.top(1) == ["x"]


def test_exclusion_filters_seen_items(
    data: tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp], als: ALSGenerator
) -> None:
    train, _, cutoff = data
    users = train[C.USER].unique()[:20]
    seen = seen_items(train)
    extra = {int(u): seen[int(u)] | {"a00", "b00", "not-a-movie"} for u in users}
    generators = [
        als,
        PopularityGenerator().fit(train, now=cutoff),
        ItemItemGenerator().fit(train, cutoff=cutoff),
    ]
    for gen in generators:
        recs = gen.recommend(users, 15, exclude=extra)
        assert not recs.empty
        pairs = set(zip(recs[C.USER], recs[C.ITEM], strict=True))
        banned = {(u, m) for u, items in extra.items() for m in items}
        assert not pairs & banned, gen.source
        assert (recs.groupby(C.USER).size() <= 15).all()
    # ALS leaves a user's training movies out even without an explicit exclude set.
    plain = als.recommend(users, 15)
    assert not set(zip(plain[C.USER], plain[C.ITEM], strict=True)) & {
        (u, m) for u in users for m in seen[int(u)]
    }


def test_als_unknown_users_get_nothing_and_factors_are_reachable(als: ALSGenerator) -> None:
    assert als.recommend([424242], 10).empty
    assert als.user_vector(424242) is None
    vector = als.user_vector(0)
    assert vector is not None and vector.shape == (als.item_factors.shape[1],)
    pairs = pd.DataFrame({C.USER: [0, 0, 424242], C.ITEM: ["a00", "nope", "a00"]})
    scores = als.score_pairs(pairs)
    row = int(np.flatnonzero(als.item_ids == "a00")[0])
    assert scores[0] == pytest.approx(float(vector @ als.item_factors[row]), rel=1e-5)
    assert np.isnan(scores[1]) and np.isnan(scores[2])


def test_k_larger_than_the_catalogue_returns_every_allowed_movie(
    data: tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp], als: ALSGenerator
) -> None:
    train, _, cutoff = data
    n_movies, seen = train[C.ITEM].nunique(), seen_items(train)
    user = int(train[C.USER].iloc[0])
    assert len(als.recommend([user], 1000)) == n_movies - len(seen[user])
    pop = PopularityGenerator().fit(train, now=cutoff)
    assert len(pop.recommend([user], 1000, exclude=seen)) == n_movies - len(seen[user])
    item = ItemItemGenerator().fit(train).recommend([user], 1000)
    assert 0 < len(item) <= n_movies - len(seen[user])  # only movies that co-occur score above 0


def test_naive_timestamps_are_read_as_utc() -> None:
    plays = pd.DataFrame(
        {C.USER: [1], C.ITEM: ["m"], C.MINUTES: [5], C.TIMESTAMP: [pd.Timestamp("2026-01-01 12:00")]}
    )
    with pytest.raises(LeakageError):
        ALSGenerator(ALSConfig(factors=2, iterations=1)).fit(
            plays, cutoff=pd.Timestamp("2026-01-01 12:00", tz="UTC")
        )
    pop = PopularityGenerator().fit(plays, now=pd.Timestamp("2026-01-01 13:00"))
    assert pop.now == pd.Timestamp("2026-01-01 13:00", tz="UTC")


def test_als_confidence_sums_sessions_before_the_log() -> None:
    plays = pd.DataFrame(
        {
            C.USER: [5, 5, 6],
            C.ITEM: ["m", "m", "n"],
            C.MINUTES: [10, 30, 0],
            C.TIMESTAMP: [NOW] * 3,
        }
    )
    gen = ALSGenerator(ALSConfig(alpha=2.0))
    matrix = gen.confidence_matrix(plays)
    assert matrix.shape == (2, 2)
    assert matrix[0, 0] == pytest.approx(1 + 2.0 * np.log1p(40), rel=1e-6)
    assert matrix[1, 1] == pytest.approx(1.0)  # a zero-minute session is still a (weak) positive
    assert list(gen.user_ids) == [5, 6] and list(gen.item_ids) == ["m", "n"]


def test_save_load_round_trip_gives_identical_recommendations(
    data: tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp], als: ALSGenerator, tmp_path: Path
) -> None:
    train, _, cutoff = data
    users = [*train[C.USER].unique()[::7], 424242]
    exclude = {int(users[0]): {"a01", "a02"}}
    als.save(tmp_path / "als")
    loaded = ALSGenerator.load(tmp_path / "als")
    pd.testing.assert_frame_equal(loaded.recommend(users, 10, exclude), als.recommend(users, 10, exclude))
    assert loaded.trained_before == cutoff
    np.testing.assert_array_equal(loaded.item_factors, als.item_factors)
    assert not any(p.suffix == ".pkl" for p in (tmp_path / "als").iterdir())

    pop = PopularityGenerator().fit(train, now=cutoff)
    pop.save(tmp_path / "pop")
    pd.testing.assert_frame_equal(
        PopularityGenerator.load(tmp_path / "pop").recommend(users, 10, exclude),
        pop.recommend(users, 10, exclude),
    )
    item = ItemItemGenerator().fit(train)
    item.save(tmp_path / "item")
    pd.testing.assert_frame_equal(
        ItemItemGenerator.load(tmp_path / "item").recommend(users, 10, exclude),
        item.recommend(users, 10, exclude),
    )


def test_cutoff_assertion_trips_on_leaked_data(data: tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]) -> None:
    train, test, cutoff = data
    leaked = pd.concat([train, test.iloc[:1].assign(**{C.TIMESTAMP: cutoff})], ignore_index=True)
    with pytest.raises(LeakageError):
        ALSGenerator(ALSConfig(factors=2, iterations=1)).fit(leaked, cutoff=cutoff)
    with pytest.raises(LeakageError):
        ItemItemGenerator().fit(leaked, cutoff=cutoff)
    with pytest.raises(LeakageError):
        PopularityGenerator().fit(leaked, now=cutoff + pd.Timedelta(days=1), cutoff=cutoff)
    with pytest.raises(LeakageError):  # a play after `now` would weigh more than a play now
        PopularityGenerator().fit(leaked, now=cutoff - pd.Timedelta(seconds=1))
    ALSGenerator(ALSConfig(factors=2, iterations=1)).fit(train, cutoff=cutoff)  # just before: fine


def test_merge_candidates_unions_sources_with_rank_features() -> None:
    def frame(source: str, items: list[str], user: int = 1) -> pd.DataFrame:
        return pd.DataFrame(
            {
                C.USER: user,
                C.ITEM: items,
                C.SCORE: np.linspace(1.0, 0.5, len(items)),
                C.RANK: np.arange(1, len(items) + 1),
                C.SOURCE: source,
            }
        )

    als_frame = pd.concat([frame("als", ["a", "b", "s"]), frame("als", ["q"], user=2)])
    pop_frame = pd.concat([frame("pop", ["b", "c", "s"]), frame("pop", ["q", "r"], user=2)])
    merged = merge_candidates([als_frame, pop_frame], k_total=3, exclude={1: {"s"}})
    assert list(merged.columns) == [*CANDIDATE_COLUMNS, "rank_als", "score_als", "rank_pop", "score_pop"]
    one = merged[merged[C.USER] == 1].set_index(C.ITEM)
    # b: both sources (1/62 + 1/61); a: als rank 1 (1/61); c: pop rank 2 (1/62).
    assert list(one.index) == ["b", "a", "c"]
    assert one.loc["b", C.SCORE] == pytest.approx(1 / 62 + 1 / 61)
    assert one[C.SOURCE].tolist() == ["als|pop", "als", "pop"]
    assert one[C.RANK].tolist() == [1, 2, 3]
    assert one.loc["a", "rank_pop"] == MISSING_RANK and np.isnan(one.loc["a", "score_pop"])
    assert one.loc["c", "rank_pop"] == 2 and one.loc["c", "rank_als"] == MISSING_RANK
    assert merged[merged[C.USER] == 2][C.ITEM].tolist() == ["q", "r"]
    assert merged[C.USER].tolist()[0] == 1  # users keep the order they came in
    assert len(merge_candidates([als_frame, pop_frame], k_total=1)) == 2
    twice = pd.concat([frame("als", ["a", "b"]), frame("als", ["c", "a"]).assign(**{C.RANK: [3, 4]})])
    again = merge_candidates([twice], k_total=5).set_index(C.ITEM)
    assert again.loc["a", "rank_als"] == 1 and list(again.index) == ["a", "b", "c"]
    # Fixed sources give fixed feature columns, whoever answered.
    only_pop = merge_candidates([pop_frame, als_frame.iloc[0:0]], k_total=3, sources=["als", "pop"])
    assert list(only_pop.columns) == list(merged.columns)
    assert (only_pop["rank_als"] == MISSING_RANK).all() and set(only_pop[C.SOURCE]) == {"pop"}
    nothing = merge_candidates([], k_total=5, sources=["als", "pop"])
    assert nothing.empty and list(nothing.columns) == list(merged.columns)
    with pytest.raises(ValueError, match="not listed"):
        merge_candidates([pop_frame], k_total=3, sources=["als"])


def test_candidate_recall_micro_and_macro() -> None:
    candidates = pd.DataFrame(
        {C.USER: [1, 1, 2], C.ITEM: ["a", "b", "c"], C.RANK: [1, 2, 1], C.SCORE: [0.9, 0.8, 0.7]}
    )
    truth = pd.DataFrame({C.USER: [1, 1, 1, 2, 3], C.ITEM: ["a", "x", "y", "c", "z"]})
    assert recall_at_k(candidates, truth) == pytest.approx(2 / 5)  # user 3 has no candidates: a miss
    assert recall_at_k(candidates, truth, average="macro") == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert recall_at_k(candidates, truth, k=1) == pytest.approx(2 / 5)
    graded = truth.assign(**{C.GAIN: [1, 0, 0, 1, 0]})
    assert recall_at_k(candidates, graded) == pytest.approx(1.0)  # zero-gain rows are not positives


def test_sessions_to_interactions_uses_the_session_end() -> None:
    start = pd.Timestamp("2026-01-01 23:50", tz="UTC")
    sessions = pd.DataFrame(
        {
            C.USER: [1],
            C.ITEM: ["m"],
            C.MINUTES: np.array([20], dtype=np.int32),
            C.START_TS: [start],
            C.END_TS: [start + pd.Timedelta(minutes=20)],
        }
    )
    plays = sessions_to_interactions(sessions)
    assert plays[C.TIMESTAMP].iloc[0] == start + pd.Timedelta(minutes=20)
    assert set(plays.columns) == {C.USER, C.ITEM, C.TIMESTAMP, C.MINUTES}
