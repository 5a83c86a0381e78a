"""World generation: determinism, catalogue contract, cost model, self-descriptions, storage, ground truth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from events import WatchEvent, format_line, parse_line
from simulator.catalog import generate_catalog
from simulator.drift import TasteShift
from simulator.settings import SimSettings
from simulator.store import load_world, movies_table, save_world, users_table
from simulator.truth import Truth
from simulator.vocab import GENRE_NAMES, GENRES
from simulator.world import World, generate_world


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(2_000, 300, seed=11)


def _same_world(a: World, b: World) -> bool:
    for part_a, part_b in ((a.catalog, b.catalog), (a.population, b.population)):
        for name in part_a.__slots__:
            if not np.array_equal(np.asarray(getattr(part_a, name)), np.asarray(getattr(part_b, name))):
                return False
    return True


def test_same_seed_same_world_other_seed_other_world(world: World) -> None:
    assert _same_world(world, generate_world(2_000, 300, seed=11))
    other = generate_world(2_000, 300, seed=12)
    assert other.catalog.slug != world.catalog.slug
    assert other.population.likes != world.population.likes


def test_slugs_are_unique_valid_movie_ids_with_real_punctuation() -> None:
    catalog = generate_catalog(np.random.default_rng(3), 3_000, 8, 2026)
    assert len(set(catalog.slug)) == len(catalog.slug)
    for slug in catalog.slug:
        assert not any(ch.isspace() or ch in ",/=" for ch in slug), slug
        line = format_line(WatchEvent(1_700_000_000 * 10**9, 1, slug, 3))
        parsed = parse_line(line)
        assert isinstance(parsed, WatchEvent) and parsed.movie_id == slug
        assert slug.rsplit("+", 1)[1].isdigit()  # ends in the year
    for mark in ("-", "_", ".", "'"):
        assert any(mark in s for s in catalog.slug), mark


def test_cost_follows_popularity_and_recency_but_cheap_good_movies_exist() -> None:
    c = generate_catalog(np.random.default_rng(5), 5_000, 8, 2026)
    log_cost, log_pop = np.log(c.cost), np.log(c.popularity)
    assert 0.4 < np.corrcoef(log_cost, log_pop)[0, 1] < 0.95
    assert np.corrcoef(log_cost, c.year)[0, 1] > 0.2
    good = c.quality > np.quantile(c.quality, 0.75)
    cheap = c.cost < np.quantile(c.cost, 0.25)
    assert (good & cheap).mean() > 0.02  # a cost-aware ranker has something to find
    assert (c.cost > 0).all()
    assert c.vote_average.min() >= 1.0 and c.vote_average.max() <= 10.0


def test_public_records_follow_the_metadata_contract(world: World) -> None:
    movies = movies_table(world.catalog)
    assert movies.column_names == [
        "id", "tmdb_id", "imdb_id", "title", "genres", "overview", "popularity", "vote_average",
        "vote_count", "release_date", "runtime", "original_language", "cost",
    ]  # fmt: skip
    assert users_table(world.population).column_names == [
        "user_id", "age", "occupation", "gender", "likes", "dislikes",
    ]  # fmt: skip
    assert len(set(movies.column("tmdb_id").to_pylist())) == movies.num_rows
    assert all(g in GENRE_NAMES for gs in movies.column("genres").to_pylist() for g in gs)


def test_overviews_use_the_vocabulary_of_the_main_genre(world: World) -> None:
    c = world.catalog
    hits = 0
    for i in range(len(c)):
        heroes = {h for g in np.flatnonzero(c.genres[i]) for h in GENRES[g].heroes}
        hits += any(h in c.overview[i] for h in heroes)
    assert hits == len(c)


def test_self_descriptions_reveal_part_of_the_taste(world: World) -> None:
    p = world.population
    likes = [s.lower() for s in p.likes]
    assert 0.03 < np.mean([s == "" for s in likes]) < 0.2
    assert len(set(likes)) > 0.5 * len(likes)  # varied phrasing
    horror = GENRE_NAMES.index("Horror")
    says_horror = np.array([any(w.lower() in s for w in GENRES[horror].synonyms) for s in likes])
    assert says_horror.sum() > 20
    # Users who say they like horror truly weigh it far above the rest, but the signal is noisy.
    assert p.genre_w[says_horror, horror].mean() > p.genre_w[:, horror].mean() + 1.0
    assert (p.genre_w[says_horror, horror] < 0).any()


def test_store_round_trip(world: World, tmp_path: Path) -> None:
    save_world(world, tmp_path / "sim")
    loaded = load_world(tmp_path / "sim")
    assert _same_world(world, loaded)
    assert loaded.meta == world.meta
    assert load_world(tmp_path / "sim", texts=False).population.likes == []


def test_affinity_batch_agrees_with_pairs_and_candidates(world: World) -> None:
    model = world.affinity_model()
    users = np.array([0, 5, 1999])
    full = model.scores(users)
    assert full.shape == (3, 300) and full.dtype == np.float32
    movies = np.array([3, 100, 299])
    np.testing.assert_allclose(model.pairs(users, movies), full[[0, 1, 2], movies], rtol=1e-5, atol=1e-5)
    cands = np.array([[1, 2], [3, 4], [5, 6]])
    np.testing.assert_allclose(model.candidates(users, cands), np.take_along_axis(full, cands, 1), atol=1e-5)


def test_truth_ranks_movies_by_affinity_and_rejects_unknown_users(world: World) -> None:
    truth = Truth(world, SimSettings())
    top = truth.top_movies(7, k=10)
    assert [a for _, a in top] == sorted((a for _, a in top), reverse=True)
    assert truth.oracle_ranking([7], k=10)[7] == [m for m, _ in top]
    assert top[0][1] == pytest.approx(float(truth.affinity([7]).max()))
    with pytest.raises(ValueError, match="unknown user"):
        truth.affinity([0])


def test_taste_shift_changes_the_truth_of_its_segment_only(world: World) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    shift = TasteShift(start=start, genre="Animation", delta=3.0, min_age=18, max_age=29)
    truth = Truth(world, SimSettings(drifts=[shift]))
    age = world.population.age
    young, old = int(np.flatnonzero((age >= 18) & (age <= 29))[0]) + 1, int(np.flatnonzero(age >= 40)[0]) + 1
    before, after = start - timedelta(days=1), start + timedelta(days=1)
    anim = world.catalog.genres[:, GENRE_NAMES.index("Animation")]
    gain = truth.affinity([young], after)[0] - truth.affinity([young], before)[0]
    assert (gain[anim] > 0).all() and np.allclose(gain[~anim], 0, atol=1e-5)
    assert np.allclose(truth.affinity([old], after), truth.affinity([old], before))
