"""The feature repo end to end on the real Redis: CLI apply, point-in-time joins, materialise, push.

Everything runs in a temporary var dir against Redis db 5 (flushed first), so the demo's
registry and online data are never touched.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
from feast import FeatureStore, FileSource
from feast.data_source import PushMode
from feast.errors import FeatureNameCollisionError

from feature_repo import config
from feature_repo.movie_features import movie_metadata, movie_popularity, movie_rating_stats
from feature_repo.user_features import user_description, user_profile, user_rating_stats, user_watch_stats
from tests.integration.conftest import StackInfo

pytestmark = pytest.mark.integration

ROOT = config.REPO_DIR.parent
FEAST = str(Path(sys.executable).with_name("feast"))
TEST_DB = 5
NOW = datetime.now(UTC).replace(microsecond=0)
T = NOW - timedelta(days=1)
"""The entity timestamp of the point-in-time checks."""
US = timedelta(microseconds=1)


def watch_row(user_id: int, ts: datetime, minutes: float, created: datetime | None = None) -> dict[str, Any]:
    """A user_watch_stats row whose `watch_minutes_1d` identifies it."""
    return {
        "user_id": user_id,
        "watch_minutes_1d": minutes,
        "watch_minutes_7d": minutes * 7,
        "watch_count_7d": 3,
        "watch_count_total": 10,
        "last_active_ts": int(ts.timestamp()),
        "recent_movie_ids": ["a+2000", "b+2001"],
        "genre_affinity": [1 / 19] * 19,
        "event_timestamp": ts,
        "created": created or ts,
    }


def stamped(ts: datetime, **values: Any) -> dict[str, Any]:
    """A row of any view: values plus both timestamps."""
    return {**values, "event_timestamp": ts, "created": ts}


def write(var: Path, view: Any, name: str, rows: list[dict[str, Any]]) -> None:
    """One Parquet file in a view's folder, in the schema ingestion writes."""
    folder = config.offline_dir(view.name, var)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=config.arrow_schema(view)), folder / f"{name}.parquet")


def seed_offline(var: Path) -> None:
    """Small offline tables, several files per view, with the traps the tests look for."""
    write(
        var,
        user_watch_stats,
        "part-0",
        [
            watch_row(1, T - timedelta(days=2), 10.0),
            watch_row(2, T - timedelta(days=40), 20.0),  # older than the 30-day TTL at T
            watch_row(3, T - timedelta(hours=1), 30.0, created=T - timedelta(minutes=50)),
        ],
    )
    write(
        var,
        user_watch_stats,
        "part-1",
        [
            watch_row(1, T, 11.0),  # exactly at the entity time: joined
            watch_row(1, T + US, 999.0),  # one microsecond later: leakage if joined
            watch_row(1, NOW + timedelta(hours=1), 5555.0),  # after the materialisation end
            watch_row(3, T - timedelta(hours=1), 33.0, created=T - timedelta(minutes=40)),  # newer write wins
        ],
    )
    write(
        var,
        user_rating_stats,
        "part-0",
        [stamped(T - timedelta(days=1), user_id=1, rating_count=4, rating_mean=3.5)],
    )
    write(
        var,
        user_profile,
        "part-0",
        [
            stamped(
                T - timedelta(days=100),
                user_id=1,
                age=34,
                gender="F",
                occupation="writer",
                account_created_ts=int((T - timedelta(days=100)).timestamp()),
            )
        ],
    )
    write(
        var,
        user_description,
        "part-0",
        [
            stamped(
                T - timedelta(days=100),
                user_id=1,
                text_vector=[0.6, 0.8],
                text_model_id="test-model",
                liked_movie_ids=["a+2000"],
                disliked_movie_ids=[],
                liked_genres=["Drama"],
                disliked_genres=["Horror"],
                description_kind="informative",
            )
        ],
    )
    write(
        var,
        movie_popularity,
        "part-0",
        [
            stamped(
                T - timedelta(hours=1),
                movie_id="a+2000",
                plays_1h=5,
                plays_24h=50,
                plays_7d=300,
                completion_rate=0.75,
            ),
            stamped(
                T + timedelta(seconds=1),
                movie_id="a+2000",
                plays_1h=-1,
                plays_24h=-1,
                plays_7d=-1,
                completion_rate=-1.0,
            ),
        ],
    )
    write(
        var,
        movie_rating_stats,
        "part-0",
        [stamped(T - timedelta(days=3), movie_id="a+2000", rating_count=12, rating_mean=4.25)],
    )
    write(
        var,
        movie_metadata,
        "part-0",
        [
            stamped(
                T - timedelta(days=300),
                movie_id="a+2000",
                cost=1.5,
                genres=["Drama", "Comedy"],
                year=2000,
                runtime=101,
                vote_average=7.5,
                tmdb_popularity=12.5,
            )
        ],
    )


def db_url(url: str, db: int) -> str:
    """The same Redis, another logical database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


def feast_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`feast -c feature_repo <args>` from the repository root, as the docs tell data engineers to run it."""
    # The editable install may predate feature_repo/: make the package importable either way.
    path = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [FEAST, "-c", "feature_repo", *args],
        cwd=ROOT,
        env={**env, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@dataclass
class Repo:
    """An applied repo in a temporary var dir."""

    var: Path
    redis_url: str
    store: FeatureStore


@pytest.fixture(scope="module")
def repo(stack: StackInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repo]:
    """Offline tables written, `feast apply` run through the CLI, and a store opened through the helper."""
    url = db_url(stack.redis_url, TEST_DB)
    redis.Redis.from_url(url).flushdb()
    var = tmp_path_factory.mktemp("var")
    seed_offline(var)
    (var / "feast").mkdir()
    env = {**os.environ, **config.feast_env(var, url)}
    t0 = time.perf_counter()
    done = feast_cli("apply", env=env)
    print(f"feast apply (CLI, cold process): {time.perf_counter() - t0:.1f} s")
    assert done.returncode == 0, done.stdout + done.stderr
    assert config.registry_path(var).is_file()
    yield Repo(var, url, config.open_store(var, url))


def test_cli_apply_registered_every_object(repo: Repo) -> None:
    store = repo.store
    assert {e.name for e in store.list_entities()} == {"user", "movie"}
    assert {v.name for v in store.list_feature_views()} == {
        "user_watch_stats",
        "user_rating_stats",
        "user_profile",
        "user_description",
        "movie_popularity",
        "movie_rating_stats",
        "movie_metadata",
    }
    assert {s.name for s in store.list_feature_services()} == {"ranker_v1", "user_online_v1"}
    source = store.get_data_source("user_watch_stats_source")
    assert isinstance(source, FileSource)
    # The registry holds the absolute path of *this* var dir, read from RECSYS_VAR_DIR at apply time.
    assert source.path == str(config.offline_dir("user_watch_stats", repo.var) / "*.parquet")


def test_python_api_apply_of_the_same_definitions_changes_nothing(repo: Repo) -> None:
    # Code applies through config.definitions(var): same objects as the CLI found, same paths.
    before = repo.store.registry.to_dict(project="recsys")
    t0 = time.perf_counter()
    repo.store.apply(config.definitions(repo.var))
    print(f"FeatureStore.apply (warm process): {time.perf_counter() - t0:.2f} s")
    after = repo.store.registry.to_dict(project="recsys")
    for kind in ("entities", "dataSources", "featureViews", "featureServices"):
        assert sorted(o["spec"]["name"] if "spec" in o else o["name"] for o in after[kind]) == sorted(
            o["spec"]["name"] if "spec" in o else o["name"] for o in before[kind]
        ), kind
    source = repo.store.get_data_source("movie_metadata_source")
    assert isinstance(source, FileSource)
    assert source.path == str(config.offline_dir("movie_metadata", repo.var) / "*.parquet")


def test_historical_features_keep_every_row_and_never_leak(repo: Repo) -> None:
    store = repo.store
    entity_df = pd.DataFrame(
        {
            "row": [0, 1, 2, 3, 4],
            "user_id": [1, 1, 2, 3, 42],
            "movie_id": ["a+2000", "a+2000", "a+2000", "b+2001", "a+2000"],
            "event_timestamp": [T] * 5,
        }
    )
    service = store.get_feature_service("ranker_v1")
    t0 = time.perf_counter()
    df = store.get_historical_features(entity_df=entity_df, features=service, full_feature_names=True).to_df()
    print(f"get_historical_features, 5 rows x 26 features: {time.perf_counter() - t0:.2f} s")
    # Rows sharing a join key and a timestamp all come back (feast issue 6787 drops them on Dask).
    assert sorted(df["row"]) == [0, 1, 2, 3, 4]
    by_row = df.set_index("row")
    minutes = by_row["user_watch_stats__watch_minutes_1d"]
    assert minutes[0] == minutes[1] == 11.0  # the row at T, not the one a microsecond later
    assert math.isnan(minutes[2])  # only a row older than the TTL
    assert minutes[3] == 33.0  # same event time: the later `created` wins
    assert math.isnan(minutes[4])  # unknown user
    plays = by_row["movie_popularity__plays_1h"]
    assert plays[0] == 5 and plays[4] == 5  # not the row a second after T
    assert math.isnan(plays[3])
    assert list(by_row.loc[0, "movie_metadata__genres"]) == ["Drama", "Comedy"]
    assert by_row.loc[0, "user_rating_stats__rating_mean"] == pytest.approx(3.5)
    assert by_row.loc[0, "movie_rating_stats__rating_mean"] == pytest.approx(4.25)
    assert by_row.loc[0, "user_profile__occupation"] == "writer"
    assert list(by_row.loc[0, "user_watch_stats__genre_affinity"]) == pytest.approx([1 / 19] * 19)
    assert len([c for c in df.columns if "__" in c]) == 26  # 25 + movie_popularity.first_play_ts


def test_ranker_service_needs_full_feature_names(repo: Repo) -> None:
    # rating_count and rating_mean exist for users and for movies.
    entity_df = pd.DataFrame({"user_id": [1], "movie_id": ["a+2000"], "event_timestamp": [T]})
    with pytest.raises(FeatureNameCollisionError):
        repo.store.get_historical_features(
            entity_df=entity_df, features=repo.store.get_feature_service("ranker_v1")
        )


def test_materialize_incremental_serves_the_latest_values_online(repo: Repo) -> None:
    store = repo.store
    t0 = time.perf_counter()
    store.materialize_incremental(end_date=NOW)
    print(f"materialize_incremental, 7 views: {time.perf_counter() - t0:.2f} s")
    users = store.get_online_features(
        features=store.get_feature_service("user_online_v1"),
        entity_rows=[{"user_id": u} for u in (1, 2, 3, 42)],
    ).to_dict()
    assert users["watch_minutes_1d"] == [999.0, None, 33.0, None]  # user 2: outside the TTL window
    assert users["occupation"] == ["writer", None, None, None]
    assert users["description_kind"] == ["informative", None, None, None]
    assert users["text_vector"][0] == pytest.approx([0.6, 0.8])
    assert users["recent_movie_ids"][0] == ["a+2000", "b+2001"]
    movies = store.get_online_features(
        features=["movie_metadata:cost", "movie_metadata:genres", "movie_popularity:plays_1h"],
        entity_rows=[{"movie_id": "a+2000"}, {"movie_id": "b+2001"}],
    ).to_dict()
    assert movies["cost"] == [1.5, None]
    assert movies["genres"] == [["Drama", "Comedy"], None]
    assert movies["plays_1h"] == [-1, None]  # the latest row up to NOW


def test_direct_redis_reader_equals_get_online_features(repo: Repo) -> None:
    """serving.online_reader reads Feast's Redis layout itself; it must answer exactly what the SDK answers."""
    import asyncio

    import redis.asyncio as aioredis

    from serving.movie_table import MOVIE_VIEWS
    from serving.online_reader import OnlineLayout
    from serving.user_features import USER_SERVICE

    store = repo.store
    store.materialize_incremental(end_date=NOW)
    client = redis.Redis.from_url(repo.redis_url)
    users = [1, 2, 3, 42, 10**12]  # watched, quiet, profile-less, unknown, never seen
    layout = OnlineLayout.for_service(store, USER_SERVICE)
    sdk = store.get_online_features(
        features=store.get_feature_service(USER_SERVICE),
        entity_rows=[{"user_id": u} for u in users],
        full_feature_names=True,
    ).to_dict()
    direct = layout.read_many(client, users, chunk=2)
    assert set(direct[0]) == set(sdk)
    for i, row in enumerate(direct):
        assert row == {name: values[i] for name, values in sdk.items()}
    assert any(v is not None for k, v in direct[0].items() if k != "user_id")  # not vacuous

    async def one(user: int) -> dict[str, Any]:
        aclient = aioredis.Redis.from_url(repo.redis_url)
        try:
            return await layout.read_async(aclient, user)
        finally:
            await aclient.aclose()

    assert asyncio.run(one(1)) == direct[0]

    movies = ["a+2000", "b+2001", "no+such+movie+1900"]
    mlayout = OnlineLayout.from_store(store, MOVIE_VIEWS)
    refs = [f"{v}:{f.name}" for v in MOVIE_VIEWS for f in store.get_feature_view(v).features]
    sdk_movies = store.get_online_features(
        features=refs, entity_rows=[{"movie_id": m} for m in movies], full_feature_names=True
    ).to_dict()
    for i, row in enumerate(mlayout.read_many(client, movies)):
        assert row == {name: values[i] for name, values in sdk_movies.items()}


def test_push_online_shows_up_and_never_goes_back_in_time(repo: Repo) -> None:
    store = repo.store
    ts = datetime.now(UTC).replace(microsecond=0)
    store.push(
        "user_watch_stats_push_source",
        pd.DataFrame([watch_row(77, ts, 7.0), watch_row(78, ts, 8.0)]),
        to=PushMode.ONLINE,
    )
    got = store.get_online_features(
        features=["user_watch_stats:watch_minutes_1d", "user_watch_stats:last_active_ts"],
        entity_rows=[{"user_id": 77}, {"user_id": 78}],
    ).to_dict()
    assert got["watch_minutes_1d"] == [7.0, 8.0]
    assert got["last_active_ts"] == [int(ts.timestamp())] * 2
    # A replayed, older row must not overwrite the newer value.
    store.push(
        "user_watch_stats_push_source",
        pd.DataFrame([watch_row(77, ts - timedelta(hours=1), 1.0)]),
        to=PushMode.ONLINE,
    )
    again = store.get_online_features(
        features=["user_watch_stats:watch_minutes_1d"], entity_rows=[{"user_id": 77}]
    ).to_dict()
    assert again["watch_minutes_1d"] == [7.0]


def test_cli_without_the_environment_fails_loudly_and_leaves_nothing(repo: Repo) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RECSYS_VAR_DIR", "RECSYS_FEAST_REDIS")}
    done = feast_cli("feature-views", "list", env=env)
    assert done.returncode != 0
    assert "RECSYS_VAR_DIR" in done.stderr
    assert not any("$" in p.name for p in config.REPO_DIR.iterdir())
