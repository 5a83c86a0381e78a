"""The user population: demographics and hidden tastes, drawn in vectorised NumPy (1M users in seconds).

A taste is a weight per genre (a demographic prior, individual noise, one to three strongly
liked and one or two strongly disliked genres), a low-rank latent vector, and two habits: how
much quality matters and how much popularity sways the user's own choices. `activity` spreads
sessions unevenly, as real audiences have heavy and light users.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from simulator.vocab import GENRE_NAMES, GENRES, OCCUPATIONS

F32 = NDArray[np.float32]
GENDERS = ("M", "F")

_AGE_BANDS = (
    (13, 17, 0.05),
    (18, 24, 0.22),
    (25, 34, 0.28),
    (35, 44, 0.18),
    (45, 54, 0.12),
    (55, 64, 0.09),
    (65, 85, 0.06),
)
# Mild demographic priors on genre weights (added to N(0, 0.8) noise): they make demographics
# somewhat predictive, as in MovieLens, without deciding anyone's taste.
_PRIORS: dict[str, dict[str, float]] = {
    "young": {
        "Animation": 0.8,
        "Family": 0.6,
        "Action": 0.3,
        "Comedy": 0.3,
        "Documentary": -0.5,
        "History": -0.6,
        "War": -0.4,
        "Western": -0.6,
    },
    "adult": {
        "Action": 0.3,
        "Horror": 0.4,
        "Science Fiction": 0.3,
        "Comedy": 0.3,
        "Western": -0.4,
        "TV Movie": -0.4,
        "Family": -0.3,
    },
    "middle": {"Drama": 0.2, "Crime": 0.2, "Thriller": 0.3},
    "senior": {
        "Drama": 0.4,
        "History": 0.5,
        "War": 0.4,
        "Western": 0.5,
        "Documentary": 0.3,
        "Horror": -0.4,
        "Animation": -0.4,
        "Science Fiction": -0.2,
    },
    "F": {"Romance": 0.3, "Drama": 0.2, "War": -0.2},
    "M": {"Action": 0.2, "War": 0.2, "Romance": -0.2},
}


@dataclass(slots=True)
class Population:
    """All users, row i = user id i + 1. Demographics are public; tastes are ground truth."""

    age: NDArray[np.int16]
    gender: NDArray[np.int8]
    """Index into GENDERS."""
    occupation: NDArray[np.int8]
    """Index into vocab.OCCUPATIONS."""
    genre_w: F32
    """(users, genres) genre weights."""
    latent: F32
    """(users, latent_dim) taste vector, ~N(0, 1) per entry."""
    quality_bias: F32
    pop_bias: F32
    activity: F32
    likes: list[str]
    dislikes: list[str]

    def __len__(self) -> int:
        return len(self.age)

    @property
    def user_ids(self) -> NDArray[np.int64]:
        """Public user ids (1-based)."""
        return np.arange(1, len(self) + 1, dtype=np.int64)


def _prior_vector(name: str) -> F32:
    vec = np.zeros(len(GENRE_NAMES), dtype=np.float32)
    for genre, value in _PRIORS[name].items():
        vec[GENRE_NAMES.index(genre)] = value
    return vec


def _ages(rng: np.random.Generator, n: int) -> NDArray[np.int16]:
    band = rng.choice(len(_AGE_BANDS), size=n, p=[b[2] for b in _AGE_BANDS])
    low = np.array([b[0] for b in _AGE_BANDS])[band]
    high = np.array([b[1] for b in _AGE_BANDS])[band]
    return np.asarray(low + np.floor(rng.random(n) * (high - low + 1)), dtype=np.int16)


def _occupations(rng: np.random.Generator, age: NDArray[np.int16]) -> NDArray[np.int8]:
    n = len(age)
    occ = rng.integers(0, len(OCCUPATIONS), n)
    student = OCCUPATIONS.index("college/grad student")
    occ = np.where((age >= 18) & (age <= 24) & (rng.random(n) < 0.5), student, occ)
    occ = np.where((age < 18) & (rng.random(n) < 0.9), OCCUPATIONS.index("K-12 student"), occ)
    occ = np.where((age >= 65) & (rng.random(n) < 0.7), OCCUPATIONS.index("retired"), occ)
    return occ.astype(np.int8)


def _tastes(rng: np.random.Generator, age: NDArray[np.int16], gender: NDArray[np.int8]) -> F32:
    n, g = len(age), len(GENRE_NAMES)
    w = rng.standard_normal((n, g), dtype=np.float32) * np.float32(0.8)
    for name, mask in (
        ("young", age < 18),
        ("adult", (age >= 18) & (age < 30)),
        ("middle", (age >= 30) & (age < 50)),
        ("senior", age >= 50),
        ("M", gender == 0),
        ("F", gender == 1),
    ):
        w[mask] += _prior_vector(name)
    # Strong likes and dislikes: a Gumbel top-k pick of genres (popular genres liked more often).
    prevalence = np.log(np.array([genre.prevalence for genre in GENRES], dtype=np.float32))
    keys = w + prevalence + rng.gumbel(size=(n, g)).astype(np.float32)
    order = np.argsort(-keys, axis=1)
    n_like = rng.integers(1, 4, n)
    n_dislike = rng.integers(1, 3, n)
    rows = np.arange(n)
    for k in range(3):
        sel = n_like > k
        w[rows[sel], order[sel, k]] += 1.5
    for k in range(2):
        sel = n_dislike > k
        w[rows[sel], order[sel, g - 1 - k]] -= 1.5
    return w


def generate_population(rng: np.random.Generator, n: int, latent_dim: int) -> Population:
    """`n` users with demographics and tastes; self-descriptions are filled in later (they need the catalogue)."""
    age = _ages(rng, n)
    gender = (rng.random(n) < 0.45).astype(np.int8)
    occupation = _occupations(rng, age)
    genre_w = _tastes(rng, age, gender)
    latent = rng.standard_normal((n, latent_dim), dtype=np.float32)
    quality_bias = np.clip(rng.normal(0.35, 0.15, n), 0.0, 1.0).astype(np.float32)
    pop_bias = np.clip(rng.normal(0.8, 0.4, n), 0.0, 2.0).astype(np.float32)
    activity = rng.lognormal(0.0, 1.0, n).astype(np.float32)
    return Population(age, gender, occupation, genre_w, latent, quality_bias, pop_bias, activity, [], [])
