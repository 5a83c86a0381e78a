"""The movie catalogue: TMDB-like public records, a license cost per play, and hidden quality and taste vectors.

Cost model: log cost grows with (standardised) log popularity and recency, plus independent
noise, and does not look at quality at all; so old, little-known, well-made movies are cheap
and a cost-aware ranker has good cheap movies to find.

Adult flag (TMDB's and the course API's `adult`): `ADULT_SHARE` of the movies, chosen by a hash
of the seeded `tmdb_id` rather than by a draw from the generator, so adding the flag changed no
other value of a seed's world and worlds stored before it get the same flags when loaded.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from simulator.titles import make_overview, unique_titles
from simulator.vocab import GENRES, LANGUAGE_SHARES, LANGUAGES

F32 = NDArray[np.float32]
I64 = NDArray[np.int64]

ADULT_SHARE: Final = 0.02
"""Share of the catalogue flagged adult (a small one, as on TMDB)."""
_GOLDEN: Final = np.uint64(0x9E3779B97F4A7C15)
"""Fibonacci hashing multiplier: spreads consecutive ids over the whole 64-bit range."""


def adult_flags(tmdb_id: NDArray[np.integer], share: float = ADULT_SHARE) -> NDArray[np.bool_]:
    """Which movies are adult: a fixed hash of each `tmdb_id` below `share` (deterministic per world seed)."""
    h = np.asarray(tmdb_id, dtype=np.int64).astype(np.uint64) * _GOLDEN  # wraps modulo 2**64 by design
    return np.asarray((h >> np.uint64(11)).astype(np.float64) / float(2**53) < share, dtype=np.bool_)


@dataclass(slots=True)
class Catalog:
    """All movies, row i = movie index i. Public fields go to the metadata API; the rest is ground truth."""

    slug: list[str]
    title: list[str]
    overview: list[str]
    genres: NDArray[np.bool_]
    """(movies, genres) multi-hot, genre order of `vocab.GENRES`."""
    release_date: list[str]
    year: NDArray[np.int16]
    runtime: NDArray[np.int16]
    language: list[str]
    popularity: NDArray[np.float64]
    vote_average: F32
    vote_count: NDArray[np.int32]
    cost: F32
    """License cost in USD per play."""
    tmdb_id: I64
    imdb_id: list[str]
    quality: F32
    """Hidden: how good the movie is, ~N(0, 1)."""
    latent: F32
    """Hidden: (movies, latent_dim) taste vector, ~N(0, 1/latent_dim) per entry."""
    release_s: I64
    """Release time, unix seconds (UTC); `release_date` and `year` are its date (see `simulator.temporal`)."""

    def __len__(self) -> int:
        return len(self.slug)

    @property
    def adult(self) -> NDArray[np.bool_]:
        """Public: the movie is adult-only (`adult_flags` of the tmdb ids; the metadata API's `adult`)."""
        return adult_flags(self.tmdb_id)

    @property
    def pop_z(self) -> F32:
        """Standardised log popularity (how visible a movie is)."""
        lp = np.log(self.popularity)
        return np.asarray((lp - lp.mean()) / (lp.std() + 1e-9), dtype=np.float32)

    @property
    def genres_norm(self) -> F32:
        """Genre rows scaled to unit length, so many-genre movies do not get a free boost."""
        g = self.genres.astype(np.float32)
        return np.asarray(g / np.sqrt(np.maximum(g.sum(axis=1, keepdims=True), 1.0)), dtype=np.float32)


def _pick_genres(rng: np.random.Generator, n: int) -> tuple[NDArray[np.bool_], I64]:
    """Multi-hot genres (1 to 3 per movie, weighted by prevalence) and each movie's main genre."""
    prev = np.array([g.prevalence for g in GENRES])
    counts = rng.choice([1, 2, 3], size=n, p=[0.35, 0.45, 0.20])
    # Gumbel top-k: a weighted draw without replacement for every movie at once.
    keys = np.log(prev)[None, :] + rng.gumbel(size=(n, len(GENRES)))
    order = np.argsort(-keys, axis=1)
    multi = np.zeros((n, len(GENRES)), dtype=bool)
    for k in range(3):
        rows = np.nonzero(counts > k)[0]
        multi[rows, order[rows, k]] = True
    return multi, order[:, 0].astype(np.int64)


def release_midnights(dates: list[str]) -> I64:
    """Unix seconds of 00:00 UTC of each ISO date (the release time of a world stored without one)."""
    return np.asarray(np.array(dates, dtype="datetime64[D]").astype("datetime64[s]").astype(np.int64))


def _dates(release_s: I64) -> tuple[NDArray[np.int16], list[str]]:
    """(year, ISO date) of unix seconds, UTC."""
    days = release_s.astype("datetime64[s]").astype("datetime64[D]")
    year = (days.astype("datetime64[Y]").astype(np.int64) + 1970).astype(np.int16)
    return year, np.datetime_as_string(days, unit="D").tolist()


def generate_catalog(
    rng: np.random.Generator,
    n: int,
    latent_dim: int,
    now_year: int,
    release_s: I64 | None = None,
    anchor_s: int | None = None,
) -> Catalog:
    """A deterministic catalogue of `n` movies for the generator state `rng`.

    `release_s` (unix seconds, with `anchor_s` the start of the simulated period) sets the release
    times; ages for popularity and cost are then counted to the anchor (0 for movies released later).
    Without it, dates are drawn here (exponential age, mean 15 years, before `now_year` ends).
    """
    genres, main_genre = _pick_genres(rng, n)
    age_drawn = np.minimum(rng.exponential(15.0, n), now_year - 1920).astype(np.int16)
    month = rng.integers(1, 13, n)
    day = rng.integers(1, 29, n)
    if release_s is None:
        age = age_drawn.astype(np.float64)
        year = (now_year - age_drawn).astype(np.int16)
        dates = [
            f"{y:04d}-{m:02d}-{d:02d}"
            for y, m, d in zip(year.tolist(), month.tolist(), day.tolist(), strict=True)
        ]
        release_s = release_midnights(dates)
    else:
        # The draws above are still made, so every later draw of the stream is the same either way.
        anchor = int(release_s.max()) if anchor_s is None else anchor_s
        age = np.maximum(anchor - release_s, 0) / (365.25 * 86_400)
        year, dates = _dates(release_s)
    runtime_mean = np.array([g.runtime for g in GENRES])[main_genre]
    runtime = np.clip(rng.normal(runtime_mean, 14.0), 62, 228).astype(np.int16)
    shares = np.array(LANGUAGE_SHARES)
    lang_idx = rng.choice(len(LANGUAGES), size=n, p=shares / shares.sum())

    quality = rng.normal(0.0, 1.0, n).astype(np.float32)
    hype = rng.normal(0.0, 1.0, n)
    recency = np.exp(-age / 8.0)
    log_pop = 1.2 + 0.45 * quality + 1.0 * hype + 1.6 * recency + rng.normal(0.0, 0.3, n)
    popularity = np.asarray(np.round(np.exp(log_pop), 3) + 0.001, dtype=np.float64)
    vote_average = np.clip(np.round(6.3 + 0.85 * quality + rng.normal(0.0, 0.35, n), 1), 1.0, 9.6)
    vote_count = (np.exp(log_pop) * rng.uniform(20, 120, n) * (1 + age / 15.0)).astype(np.int32)

    def z(x: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray((x - x.mean()) / (x.std() + 1e-9), dtype=np.float64)

    log_cost = np.log(0.30) + 0.55 * z(log_pop) + 0.35 * z(recency) + 0.45 * rng.normal(0.0, 1.0, n)
    cost = np.clip(np.round(np.exp(log_cost), 2), 0.01, 8.0).astype(np.float32)

    latent = (rng.normal(0.0, 1.0, (n, latent_dim)) / np.sqrt(latent_dim)).astype(np.float32)
    tmdb_id = (rng.choice(1_500_000, size=n, replace=False) + 2).astype(np.int64)
    imdb_num = rng.choice(9_000_000, size=n, replace=False) + 100_000

    # Titles and overviews are short per-movie Python work (20K movies: well under a second).
    rnd = random.Random(int(rng.integers(2**63)))
    genre_lists = [
        [int(main_genre[i])] + [int(j) for j in np.nonzero(genres[i])[0] if j != main_genre[i]]
        for i in range(n)
    ]
    titles, slugs = unique_titles(rnd, [gl[0] for gl in genre_lists], year.tolist())
    overviews = [make_overview(rnd, gl) for gl in genre_lists]
    return Catalog(
        slug=slugs,
        title=titles,
        overview=overviews,
        genres=genres,
        release_date=dates,
        year=year,
        runtime=runtime,
        language=[LANGUAGES[i] for i in lang_idx.tolist()],
        popularity=popularity,
        vote_average=vote_average.astype(np.float32),
        vote_count=vote_count,
        cost=cost,
        tmdb_id=tmdb_id,
        imdb_id=[f"tt{i:07d}" for i in imdb_num.tolist()],
        quality=quality,
        latent=latent,
        release_s=np.asarray(release_s, dtype=np.int64),
    )
