"""The Feast definitions keep the naming and dtype contract, and the repo helpers build correct config."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from feast import Entity, FeatureService, FeatureView, FileSource, PushSource, ValueType
from feast.data_format import ParquetFormat
from feast.repo_operations import get_repo_files
from feast.types import Array, Bool, Float32, Int64, String

from events.metadata import GENRES
from feature_repo import config, data_sources, entities, feature_services, movie_features, user_features

CONTRACT: dict[str, tuple[str, int, dict[str, object]]] = {
    "user_watch_stats": (
        "user",
        30,
        {
            "watch_minutes_1d": Float32,
            "watch_minutes_7d": Float32,
            "watch_count_7d": Int64,
            "watch_count_total": Int64,
            "last_active_ts": Int64,
            "recent_movie_ids": Array(String),
            "genre_affinity": Array(Float32),
        },
    ),
    "user_rating_stats": ("user", 365, {"rating_count": Int64, "rating_mean": Float32}),
    "user_profile": (
        "user",
        3650,
        {"age": Int64, "gender": String, "occupation": String, "account_created_ts": Int64},
    ),
    "user_description": (
        "user",
        3650,
        {
            "text_vector": Array(Float32),
            "text_model_id": String,
            "liked_movie_ids": Array(String),
            "disliked_movie_ids": Array(String),
            "liked_genres": Array(String),
            "disliked_genres": Array(String),
            "description_kind": String,
        },
    ),
    "movie_popularity": (
        "movie",
        30,
        {
            "plays_1h": Int64,
            "plays_24h": Int64,
            "plays_7d": Int64,
            "completion_rate": Float32,
            "first_play_ts": Int64,
        },
    ),
    "movie_rating_stats": ("movie", 365, {"rating_count": Int64, "rating_mean": Float32}),
    "movie_metadata": (
        "movie",
        3650,
        {
            "cost": Float32,
            "genres": Array(String),
            "year": Int64,
            "runtime": Int64,
            "vote_average": Float32,
            "tmdb_popularity": Float32,
            "adult": Bool,
        },
    ),
}
"""view -> (entity, ttl in days, {feature: dtype}): the names ingestion writes and models read."""


def all_views() -> dict[str, FeatureView]:
    views = [
        v for m in (user_features, movie_features) for v in vars(m).values() if isinstance(v, FeatureView)
    ]
    return {v.name: v for v in views}


def test_entities() -> None:
    assert isinstance(entities.user, Entity) and isinstance(entities.movie, Entity)
    assert (entities.user.name, entities.user.join_key, entities.user.value_type) == (
        "user",
        "user_id",
        ValueType.INT64,
    )
    assert (entities.movie.name, entities.movie.join_key, entities.movie.value_type) == (
        "movie",
        "movie_id",
        ValueType.STRING,
    )


def test_views_match_the_contract() -> None:
    views = all_views()
    assert set(views) == set(CONTRACT)
    for name, (entity, ttl_days, features) in CONTRACT.items():
        view = views[name]
        assert view.entities == [entity], name
        assert view.ttl == timedelta(days=ttl_days), name
        assert view.online, name
        assert {f.name: f.dtype for f in view.features} == features, name
        join_key = f"{entity}_id"
        assert [(c.name, c.dtype) for c in view.entity_columns] == [
            (join_key, Int64 if entity == "user" else String)
        ], name
        assert all(f.description for f in view.features), name
        assert view.description and view.owner, name


def test_every_view_has_a_push_source_over_an_absolute_parquet_glob() -> None:
    for name, view in all_views().items():
        push = view.stream_source
        assert isinstance(push, PushSource), name
        assert push.name == f"{name}_push_source"
        batch = view.batch_source
        assert isinstance(batch, FileSource), name
        assert batch is push.batch_source
        assert batch.name == f"{name}_source"
        assert isinstance(batch.file_format, ParquetFormat)
        assert (batch.timestamp_field, batch.created_timestamp_column) == ("event_timestamp", "created")
        path = Path(batch.path)
        assert path.is_absolute(), batch.path
        assert path.name == "*.parquet"
        assert path.parent.parts[-3:] == ("offline", "features", name)
        assert getattr(data_sources, f"{name}_source") is batch
        assert getattr(data_sources, f"{name}_push_source") is push


def test_feature_services_are_versioned_and_tagged() -> None:
    services = {s.name: s for s in vars(feature_services).values() if isinstance(s, FeatureService)}
    assert set(services) == {"ranker_v1", "user_online_v1"}
    ranker = {p.name for p in services["ranker_v1"].feature_view_projections}
    # The self-description feeds the cold-start policy, never the ranker: its features stay as trained.
    assert ranker == set(CONTRACT) - {"user_description"}
    user_only = {p.name for p in services["user_online_v1"].feature_view_projections}
    assert user_only == {v for v, (entity, _, _) in CONTRACT.items() if entity == "user"}
    for s in services.values():
        assert s.description and s.owner and s.tags.get("version") == "1"


def test_genre_affinity_length_is_documented_against_the_genre_vocabulary() -> None:
    # The vector's order is GENRES; a change of the vocabulary is a change of the contract.
    assert len(GENRES) == 19
    field = next(f for f in user_features.user_watch_stats.features if f.name == "genre_affinity")
    assert "GENRES" in field.description


def test_definitions_are_rebuilt_for_another_var_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RECSYS_VAR_DIR", str(tmp_path / "first"))
    config.definitions(tmp_path / "first")
    objects = config.definitions(tmp_path / "second")  # modules already loaded for "first"
    sources = [o for o in objects if isinstance(o, FileSource)]
    assert len(sources) == 7
    assert all(Path(s.path).parent.parent.parent.parent == tmp_path / "second" for s in sources)
    views = [o for o in objects if isinstance(o, FeatureView)]
    assert all(v.batch_source in sources for v in views)  # the views use the rebuilt sources
    assert {type(o).__name__ for o in objects} == {
        "Entity",
        "FileSource",
        "PushSource",
        "FeatureView",
        "FeatureService",
    }
    assert len(objects) == 2 + 7 + 7 + 7 + 2
    assert os.environ["RECSYS_VAR_DIR"] == str(tmp_path / "first")  # restored


def test_feast_imports_only_definition_files() -> None:
    # `feast apply` imports every .py it finds; helpers must be in .feastignore.
    names = {p.name for p in get_repo_files(config.REPO_DIR)}
    assert names == {
        "entities.py",
        "data_sources.py",
        "user_features.py",
        "movie_features.py",
        "feature_services.py",
    }


# --- helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", "127.0.0.1:6379,db=0"),
        ("redis://localhost/5", "localhost:6379,db=5"),
        ("redis://127.0.0.1:6380", "127.0.0.1:6380,db=0"),
        ("redis://:s%40cret@cache:6379/2", "cache:6379,db=2,password=s@cret"),
        ("redis://bob:pw@cache:6379/1", "cache:6379,db=1,username=bob,password=pw"),
        ("rediss://cache:6390/0", "cache:6390,db=0,ssl=true"),
        ("redis://cache:6379/0?socket_timeout=0.25", "cache:6379,db=0,socket_timeout=0.25"),
        ("127.0.0.1:6379,db=3", "127.0.0.1:6379,db=3"),
    ],
)
def test_redis_connection_string(url: str, expected: str) -> None:
    assert config.redis_connection_string(url) == expected


@pytest.mark.parametrize("url", ["http://cache:6379", "redis://:a,b@cache:6379/0"])
def test_redis_connection_string_refuses_what_feast_would_misread(url: str) -> None:
    with pytest.raises(ValueError):
        config.redis_connection_string(url)


def test_var_dir_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RECSYS_VAR_DIR", str(tmp_path / "state"))
    assert config.var_dir() == tmp_path / "state"
    assert (
        config.offline_dir("movie_metadata") == tmp_path / "state" / "offline" / "features" / "movie_metadata"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECSYS_VAR_DIR", "rel")
    assert config.var_dir() == tmp_path / "rel"  # relative means from the cwd, as recsys.settings reads it
    monkeypatch.delenv("RECSYS_VAR_DIR")
    assert config.var_dir() == tmp_path / "var"  # one default for every reader: `var` under the cwd


def test_load_config_fills_the_yaml_without_touching_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("RECSYS_VAR_DIR", raising=False)
    monkeypatch.delenv("RECSYS_FEAST_REDIS", raising=False)
    cfg = config.load_config(tmp_path, "redis://127.0.0.1:6379/5")
    assert cfg.project == "recsys"
    assert cfg.provider == "local"
    assert cfg.entity_key_serialization_version == 3
    assert cfg.offline_store.type == "duckdb"
    assert cfg.online_store.type == "redis"
    assert cfg.online_store.connection_string == "127.0.0.1:6379,db=5"
    assert Path(cfg.registry.path) == config.registry_path(tmp_path) == tmp_path / "feast" / "registry.db"
    assert config.feast_env(tmp_path, "redis://h:1/2") == {
        "RECSYS_VAR_DIR": str(tmp_path),
        "RECSYS_FEAST_REDIS": "h:1,db=2",
    }
    assert "RECSYS_FEAST_REDIS" not in os.environ


def test_arrow_schema_is_what_ingestion_must_write() -> None:
    schema = config.arrow_schema(user_features.user_watch_stats)
    # Stable order: join key, features as declared, then the two timestamps.
    assert schema.names == ["user_id", *CONTRACT["user_watch_stats"][2], "event_timestamp", "created"]
    assert schema.field("user_id").type == pa.int64()
    assert schema.field("recent_movie_ids").type == pa.list_(pa.string())
    assert schema.field("genre_affinity").type == pa.list_(pa.float32())
    assert schema.field("watch_minutes_1d").type == pa.float32()
    assert schema.field("event_timestamp").type == pa.timestamp("us", tz="UTC")
    assert schema.field("created").type == pa.timestamp("us", tz="UTC")
    movie = config.arrow_schema(movie_features.movie_metadata)
    assert movie.field("movie_id").type == pa.string()
    assert movie.field("genres").type == pa.list_(pa.string())
