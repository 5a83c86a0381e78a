"""Reading and writing a world under <var>/sim/ as Parquet, public records apart from the ground truth.

    world.json            WorldMeta (seed, sizes)
    movies.parquet        public movie records (what the metadata API serves)
    users.parquet         public user records, with the self-description answers
    truth_movies.parquet  hidden movie quality, taste vectors and exact release times
    truth_users.parquet   hidden user tastes and habits

Files are written to a temporary name and renamed, world.json last, so a reader never sees a
half-written world.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.typing import NDArray

from simulator.catalog import Catalog, release_midnights
from simulator.users import GENDERS, Population
from simulator.vocab import GENRE_NAMES, GENRES, OCCUPATIONS
from simulator.world import World, WorldMeta

META, MOVIES, USERS = "world.json", "movies.parquet", "users.parquet"
TRUTH_MOVIES, TRUTH_USERS = "truth_movies.parquet", "truth_users.parquet"


class WorldNotFoundError(FileNotFoundError):
    """No generated world where one was expected; run `recsys simulate world` first."""


def _fixed(matrix: NDArray[np.float32]) -> pa.FixedSizeListArray:
    flat = pa.array(np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, matrix.shape[1])


def _matrix(column: pa.ChunkedArray) -> NDArray[np.float32]:
    arr = column.combine_chunks()
    width = arr.type.list_size
    return np.asarray(arr.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, width)


def _codes(column: pa.ChunkedArray, values: tuple[str, ...]) -> NDArray[np.int8]:
    """Positions of a (dictionary) string column's values in `values`, whatever dictionary Parquet gave back."""
    codes = pc.index_in(column.cast(pa.string()), value_set=pa.array(values))
    return np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.int8)


def _write(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd", row_group_size=200_000)
    os.replace(tmp, path)


def movies_table(c: Catalog) -> pa.Table:
    """The public movie records, one row per movie, in the metadata API's field names."""
    names = np.array(GENRE_NAMES, dtype=object)
    genres = [names[row].tolist() for row in c.genres]
    return pa.table(
        {
            "id": c.slug,
            "tmdb_id": c.tmdb_id,
            "imdb_id": c.imdb_id,
            "title": c.title,
            "genres": pa.array(genres, pa.list_(pa.string())),
            "overview": c.overview,
            "popularity": c.popularity,
            "vote_average": c.vote_average,
            "vote_count": c.vote_count,
            "release_date": c.release_date,
            "runtime": c.runtime,
            "original_language": c.language,
            "cost": c.cost,
        }
    )


def users_table(p: Population) -> pa.Table:
    """The public user records, one row per user, in the metadata API's field names."""
    return pa.table(
        {
            "user_id": p.user_ids,
            "age": p.age,
            "occupation": pa.DictionaryArray.from_arrays(pa.array(p.occupation), pa.array(OCCUPATIONS)),
            "gender": pa.DictionaryArray.from_arrays(pa.array(p.gender), pa.array(GENDERS)),
            "likes": p.likes,
            "dislikes": p.dislikes,
        }
    )


def save_world(world: World, sim_dir: Path) -> None:
    """Write `world` under `sim_dir` (created if missing), replacing a previous world."""
    sim_dir.mkdir(parents=True, exist_ok=True)
    (sim_dir / META).unlink(missing_ok=True)
    c, p = world.catalog, world.population
    _write(movies_table(c), sim_dir / MOVIES)
    _write(users_table(p), sim_dir / USERS)
    _write(
        pa.table({"id": c.slug, "quality": c.quality, "latent": _fixed(c.latent), "release_s": c.release_s}),
        sim_dir / TRUTH_MOVIES,
    )
    _write(
        pa.table(
            {
                "user_id": p.user_ids,
                "genre_w": _fixed(p.genre_w),
                "latent": _fixed(p.latent),
                "quality_bias": p.quality_bias,
                "pop_bias": p.pop_bias,
                "activity": p.activity,
            }
        ),
        sim_dir / TRUTH_USERS,
    )
    tmp = sim_dir / (META + ".tmp")
    tmp.write_text(world.meta.model_dump_json(indent=2))
    os.replace(tmp, sim_dir / META)


def load_meta(sim_dir: Path) -> WorldMeta:
    """The stored world's metadata; WorldNotFoundError when there is none."""
    path = sim_dir / META
    if not path.is_file():
        raise WorldNotFoundError(f"no world under {sim_dir}: run `recsys simulate world` first")
    return WorldMeta.model_validate_json(path.read_text())


def read_public(sim_dir: Path) -> tuple[WorldMeta, pa.Table, pa.Table]:
    """(meta, users table, movies table): what the metadata API serves."""
    meta = load_meta(sim_dir)
    return meta, pq.read_table(sim_dir / USERS), pq.read_table(sim_dir / MOVIES)


def _catalog(movies: pa.Table, truth: pa.Table) -> Catalog:
    col = movies.column
    genre_index = {name: i for i, name in enumerate(GENRE_NAMES)}
    lists = col("genres").to_pylist()
    multi = np.zeros((movies.num_rows, len(GENRES)), dtype=bool)
    for i, names in enumerate(lists):
        multi[i, [genre_index[n] for n in names]] = True
    dates = col("release_date").to_pylist()
    return Catalog(
        slug=col("id").to_pylist(),
        title=col("title").to_pylist(),
        overview=col("overview").to_pylist(),
        genres=multi,
        release_date=dates,
        year=np.array([int(d[:4]) for d in dates], dtype=np.int16),
        runtime=col("runtime").to_numpy().astype(np.int16),
        language=col("original_language").to_pylist(),
        popularity=col("popularity").to_numpy().astype(np.float64),
        vote_average=col("vote_average").to_numpy().astype(np.float32),
        vote_count=col("vote_count").to_numpy().astype(np.int32),
        cost=col("cost").to_numpy().astype(np.float32),
        tmdb_id=col("tmdb_id").to_numpy().astype(np.int64),
        imdb_id=col("imdb_id").to_pylist(),
        quality=truth.column("quality").to_numpy().astype(np.float32),
        latent=_matrix(truth.column("latent")),
        # Worlds stored before release times existed: each movie came out at 00:00 UTC of its date.
        release_s=(
            truth.column("release_s").to_numpy().astype(np.int64)
            if "release_s" in truth.column_names
            else release_midnights(dates)
        ),
    )


def load_world(sim_dir: Path, texts: bool = True) -> World:
    """The stored world; `texts=False` skips the self-descriptions (the traffic generator needs none)."""
    meta = load_meta(sim_dir)
    catalog = _catalog(pq.read_table(sim_dir / MOVIES), pq.read_table(sim_dir / TRUTH_MOVIES))
    columns = ["age", "gender", "occupation"] + (["likes", "dislikes"] if texts else [])
    users = pq.read_table(sim_dir / USERS, columns=columns)
    truth = pq.read_table(sim_dir / TRUTH_USERS)
    population = Population(
        age=users.column("age").to_numpy().astype(np.int16),
        gender=_codes(users.column("gender"), GENDERS),
        occupation=_codes(users.column("occupation"), OCCUPATIONS),
        genre_w=_matrix(truth.column("genre_w")),
        latent=_matrix(truth.column("latent")),
        quality_bias=truth.column("quality_bias").to_numpy().astype(np.float32),
        pop_bias=truth.column("pop_bias").to_numpy().astype(np.float32),
        activity=truth.column("activity").to_numpy().astype(np.float32),
        likes=users.column("likes").to_pylist() if texts else [],
        dislikes=users.column("dislikes").to_pylist() if texts else [],
    )
    return World(meta, catalog, population)
