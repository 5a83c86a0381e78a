"""The adult flag end to end: catalogue and metadata API, enrichment, offline rows, the Feast view, the movie table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from events.metadata import MovieMeta
from feature_repo import config, movie_features
from ingestion.enrichment import EnrichmentConfig, MetadataClient
from ingestion.metadata_records import keep_last_good, parse_record
from ingestion.movie_features import _metadata, upgrade_files
from serving.movie_table import ADULT, MovieTable
from simulator.api.records import MetadataStore
from simulator.catalog import ADULT_SHARE, adult_flags, generate_catalog
from simulator.store import movies_table, users_table
from simulator.world import generate_world


def test_a_small_seeded_share_of_the_catalogue_is_adult_without_moving_other_values() -> None:
    rng = np.random.default_rng(5)
    catalog = generate_catalog(rng, 5_000, 8, 2026)
    again = generate_catalog(np.random.default_rng(5), 5_000, 8, 2026)
    assert np.array_equal(catalog.adult, again.adult)  # seeded: same world, same flags
    assert catalog.adult.mean() == pytest.approx(ADULT_SHARE, abs=0.01)
    assert np.array_equal(catalog.adult, adult_flags(catalog.tmdb_id))  # a hash of the id, not a draw
    other = generate_catalog(np.random.default_rng(6), 5_000, 8, 2026)
    assert not np.array_equal(catalog.adult, other.adult)


def test_the_metadata_api_answers_adult_true_or_false() -> None:
    world = generate_world(50, 400, seed=3)
    store = MetadataStore(world.meta, users_table(world.population), movies_table(world.catalog))
    records = store.movies(world.catalog.slug)
    flags = [r["adult"] for r in records if r is not None]
    assert all(isinstance(f, bool) for f in flags)
    assert flags == world.catalog.adult.tolist() and any(flags)


def _record(adult: Any = "absent") -> dict[str, Any]:
    rec: dict[str, Any] = {
        "id": "m+1", "tmdb_id": 1, "imdb_id": "tt1", "title": "M", "genres": ["Drama"], "overview": "",
        "popularity": 1.0, "vote_average": 6.0, "vote_count": 3, "release_date": "2001-01-01",
        "runtime": 90, "original_language": "en", "cost": 0.5,
    }  # fmt: skip
    if adult != "absent":
        rec["adult"] = adult
    return rec


def test_enrichment_carries_the_flag_and_an_absent_one_is_unknown_not_a_violation() -> None:
    known = parse_record("movie", "m+1", _record(True))
    assert isinstance(known.meta, MovieMeta) and known.meta.adult is True and not known.violations
    absent = parse_record("movie", "m+1", _record())
    assert isinstance(absent.meta, MovieMeta) and absent.meta.adult is None and not absent.violations
    null = parse_record("movie", "m+1", _record(None))
    assert isinstance(null.meta, MovieMeta) and null.meta.adult is None and "adult" not in null.violations


def test_a_known_flag_is_never_overwritten_by_null() -> None:
    for flag in (True, False):
        last = MovieMeta(id="m+1", adult=flag)
        kept, names = keep_last_good(MovieMeta(id="m+1", adult=None), last)
        assert kept.adult is flag and names == ["adult"]
    newer, names = keep_last_good(MovieMeta(id="m+1", adult=False), MovieMeta(id="m+1", adult=True))
    assert newer.adult is False and names == []  # a known new value wins


def test_the_client_keeps_the_last_known_flag_when_a_later_answer_drops_it() -> None:
    answers = iter([_record(True), _record()])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=next(answers))

    now = [0.0]
    client = MetadataClient(EnrichmentConfig(cache_ttl_s=1.0), transport=httpx.MockTransport(handler),
                            clock=lambda: now[0], sleep=lambda _: None)  # fmt: skip
    with client:
        assert client.get_movies(["m+1"])["m+1"].adult is True
        now[0] = 10.0  # the cached answer expired: the API is asked again, and leaves the field out
        assert client.get_movies(["m+1"])["m+1"].adult is True


def test_offline_rows_hold_the_flag_with_nulls_for_unknown() -> None:
    meta = {"a": MovieMeta(id="a", adult=True), "b": MovieMeta(id="b", adult=False), "c": MovieMeta(id="c")}
    rows = _metadata(meta, {}, 10**18)
    assert rows.schema.field("adult").type == pa.bool_()
    assert rows["adult"].to_pylist() == [True, False, None]
    view = config.arrow_schema(movie_features.movie_metadata)
    assert view.field("adult").type == pa.bool_()
    assert set(view.names) - {"movie_id", "event_timestamp", "created"} <= set(rows.column_names)


def test_older_files_get_the_new_column_so_duckdb_can_read_the_glob(tmp_path: Path) -> None:
    old = pa.table({"movie_id": ["a"], "cost": pa.array([1.0], pa.float32())})
    pq.write_table(old, tmp_path / "empty.parquet")  # sorts first: DuckDB takes its columns
    new = pa.table({"movie_id": ["b"], "cost": pa.array([2.0], pa.float32()), "adult": [True]})
    pq.write_table(new, tmp_path / "refresh-1.parquet")
    glob = f"SELECT movie_id, adult FROM read_parquet('{tmp_path}/*.parquet') ORDER BY movie_id"
    with pytest.raises(duckdb.Error):
        duckdb.execute(glob).fetchall()
    assert upgrade_files(tmp_path, new.schema) == [tmp_path / "empty.parquet"]
    assert duckdb.execute(glob).fetchall() == [("a", None), ("b", True)]
    assert json.loads((tmp_path / "_schema.json").read_text()) == sorted(new.schema.names)
    assert upgrade_files(tmp_path, new.schema) == []  # once per schema


def test_the_movie_table_reads_the_flag_as_one_zero_or_nan() -> None:
    table = MovieTable.from_rows({"movie_id": ["a", "b", "c"], ADULT: [True, False, None]})
    assert np.array_equal(table.columns[ADULT], [1.0, 0.0, np.nan], equal_nan=True)
    moved = table.reindex(["c", "a", "zzz"])
    assert np.array_equal(moved.columns[ADULT], [np.nan, 1.0, np.nan], equal_nan=True)
    assert ADULT in MovieTable.empty().columns


def test_a_registry_without_the_field_is_re_applied_and_older_files_upgraded(tmp_path: Path) -> None:
    import copy

    from feature_repo.config import definitions, offline_dir, open_store
    from ingestion.feast_bridge import _seed_empty_views, open_feature_store

    old = []
    for obj in definitions(tmp_path):
        was = obj
        if getattr(obj, "name", "") == "movie_metadata":  # the view as registered before the field
            was = copy.deepcopy(obj)
            was.features = [f for f in obj.features if f.name != "adult"]
        old.append(was)
    _seed_empty_views(old, tmp_path)
    open_store(tmp_path, "redis://127.0.0.1:1/0").apply(old)
    seed = offline_dir("movie_metadata", tmp_path) / "empty.parquet"
    assert "adult" not in pq.read_schema(seed).names
    store = open_feature_store(tmp_path, "redis://127.0.0.1:1/0")
    assert "adult" in pq.read_schema(seed).names
    view = store.get_feature_view("movie_metadata")
    assert "adult" in {f.name for f in view.features}
