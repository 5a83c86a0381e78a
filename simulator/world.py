"""World generation: catalogue, population, self-descriptions; deterministic for a seed.

Every stage draws from its own child generator of the seed (`SeedSequence.spawn`), so a stage
can change its number of draws without reshuffling the others (release times, `simulator.temporal`,
use the fourth child, so the first three are what they were before time existed), and self-descriptions are made
in fixed-size chunks of users with one generator per chunk (the same world for any machine).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.progress import track

from simulator.affinity import AffinityModel
from simulator.catalog import Catalog, generate_catalog
from simulator.describe import describe
from simulator.temporal import TemporalConfig, draw_releases
from simulator.users import Population, generate_population
from simulator.vocab import GENRE_NAMES

DESCRIBE_CHUNK = 100_000
"""Users per self-description chunk (fixed: the chunking is part of the seed's meaning)."""
FAMOUS = 400
"""Titles users name in their answers come from the most popular movies."""
LIKED_TITLE_MIN = 1.0
"""A title is named as liked only if the user's true affinity for it is at least this."""
DISLIKED_TITLE_MAX = -0.5


class WorldMeta(BaseModel):
    """What a stored world is: its seed and size, written to <sim>/world.json."""

    model_config = ConfigDict(extra="forbid")

    format: int = Field(2, description="Storage layout version (2: release times and the temporal model).")
    seed: int = Field(description="Seed the world was generated from.")
    users: int = Field(description="Number of users (ids 1..users).")
    movies: int = Field(description="Number of movies.")
    latent_dim: int = Field(description="Dimensions of the hidden taste vectors.")
    now_year: int = Field(description="Latest release year of the catalogue.")
    temporal: TemporalConfig | None = Field(
        None, description="The temporal model (period, releases, hype, rhythm); None: a world without time."
    )
    genres: list[str] = Field(default_factory=lambda: list(GENRE_NAMES), description="Genre column order.")
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


@dataclass(slots=True)
class World:
    """A whole simulated world in memory."""

    meta: WorldMeta
    catalog: Catalog
    population: Population

    def affinity_model(self) -> AffinityModel:
        """The ground-truth affinity formula bound to this world's arrays."""
        return make_affinity_model(self.catalog, self.population)


def make_affinity_model(catalog: Catalog, population: Population) -> AffinityModel:
    """Bind the affinity formula to a catalogue and a population."""
    return AffinityModel(
        user_genre=population.genre_w,
        user_latent=population.latent,
        user_quality=population.quality_bias,
        user_pop=population.pop_bias,
        movie_genre=catalog.genres_norm,
        movie_latent=catalog.latent,
        movie_quality=catalog.quality,
        movie_pop_z=catalog.pop_z,
    )


def _title_mentions(
    model: AffinityModel, users: NDArray[np.int64], famous: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Index (into `famous`) of each user's favourite and worst famous title, or -1 when none stands out."""
    aff = model.scores(users, famous)
    best = np.argmax(aff, axis=1)
    worst = np.argmin(aff, axis=1)
    rows = np.arange(len(users))
    liked = np.where(aff[rows, best] >= LIKED_TITLE_MIN, best, -1)
    disliked = np.where(aff[rows, worst] <= DISLIKED_TITLE_MAX, worst, -1)
    return liked.astype(np.int64), disliked.astype(np.int64)


def generate_world(
    users: int,
    movies: int,
    seed: int,
    *,
    latent_dim: int = 16,
    now_year: int = 2026,
    temporal: TemporalConfig | None = None,
    progress: bool = False,
) -> World:
    """Generate a world: same arguments, same world, byte for byte.

    `temporal` (default `TemporalConfig()`, its period starting on 1 January of `now_year` unless
    set) places the releases around the simulated period; it is stored in the world's meta.
    """
    seq = np.random.SeedSequence(seed)
    movie_seq, user_seq, text_seq, time_seq = seq.spawn(4)
    cfg = (temporal or TemporalConfig()).resolved(now_year)
    release_s = draw_releases(np.random.default_rng(time_seq), movies, cfg)
    catalog = generate_catalog(
        np.random.default_rng(movie_seq), movies, latent_dim, now_year, release_s, cfg.period_s()[0]
    )
    population = generate_population(np.random.default_rng(user_seq), users, latent_dim)
    model = make_affinity_model(catalog, population)
    famous = np.argsort(-catalog.popularity, kind="stable")[: min(FAMOUS, movies)].astype(np.int64)
    famous_titles = [catalog.title[i] for i in famous.tolist()]
    starts = range(0, users, DESCRIBE_CHUNK)
    chunk_seqs = text_seq.spawn(len(starts))
    for start, chunk_seq in track(
        list(zip(starts, chunk_seqs, strict=True)),
        description="self-descriptions",
        disable=not progress,
        console=Console(stderr=True),
    ):
        idx = np.arange(start, min(start + DESCRIBE_CHUNK, users), dtype=np.int64)
        liked, disliked = _title_mentions(model, idx, famous)
        rng = np.random.default_rng(chunk_seq)
        likes, dislikes = describe(rng, population.genre_w[idx], famous_titles, liked, disliked)
        population.likes.extend(likes)
        population.dislikes.extend(dislikes)
    meta = WorldMeta(
        seed=seed, users=users, movies=movies, latent_dim=latent_dim,
        now_year=int(catalog.year.max()), temporal=cfg,
    )  # fmt: skip
    return World(meta, catalog, population)
