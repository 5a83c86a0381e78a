"""The ground truth: a user's affinity for a movie, computed on the fly for a batch of users.

    affinity = 0.9 * genre_w[u] . genres_norm[m]    (genre taste)
             + 0.8 * latent[u] . latent[m]           (taste beyond genres)
             + quality_bias[u] * quality[m]          (how much quality matters to u)
             + 0.15 * pop_bias[u] * pop_z[m]          (a little bandwagon liking)

About N(0.4, 1.4) over all pairs; > 1 is a movie the user clearly likes. The full
users x movies matrix (1M x 20K) is never built: callers pass a batch of users (and optionally
a subset of movies), and a taste shift drift arrives as a per-user change of genre weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
I64 = NDArray[np.int64]

GENRE_SCALE = np.float32(0.9)
LATENT_SCALE = np.float32(0.8)
POP_SCALE = np.float32(0.15)


@dataclass(slots=True)
class AffinityModel:
    """The arrays the affinity formula needs; user rows by user index (id - 1), movie rows by movie index."""

    user_genre: F32
    user_latent: F32
    user_quality: F32
    user_pop: F32
    movie_genre: F32
    """(movies, genres), rows of unit length."""
    movie_latent: F32
    movie_quality: F32
    movie_pop_z: F32

    @property
    def n_movies(self) -> int:
        """Movies in the catalogue."""
        return len(self.movie_quality)

    def scores(self, users: I64, movies: I64 | None = None, genre_shift: F32 | None = None) -> F32:
        """(len(users), movies) affinities of each user for every movie (or for `movies`)."""
        mg, ml, mq, mp = self.movie_genre, self.movie_latent, self.movie_quality, self.movie_pop_z
        if movies is not None:
            mg, ml, mq, mp = mg[movies], ml[movies], mq[movies], mp[movies]
        ug = self.user_genre[users]
        if genre_shift is not None:
            ug = ug + genre_shift
        out = (ug * GENRE_SCALE) @ mg.T
        out += (self.user_latent[users] * LATENT_SCALE) @ ml.T
        out += self.user_quality[users][:, None] * mq[None, :]
        out += (self.user_pop[users] * POP_SCALE)[:, None] * mp[None, :]
        return np.asarray(out, dtype=np.float32)

    def candidates(self, users: I64, movies: I64, genre_shift: F32 | None = None) -> F32:
        """(B, C) affinities where row b holds user users[b] against movies[b, :] (a per-user candidate set)."""
        ug = self.user_genre[users]
        if genre_shift is not None:
            ug = ug + genre_shift
        out = np.einsum("bg,bcg->bc", ug * GENRE_SCALE, self.movie_genre[movies], optimize=True)
        out += np.einsum(
            "bk,bck->bc", self.user_latent[users] * LATENT_SCALE, self.movie_latent[movies], optimize=True
        )
        out += self.user_quality[users][:, None] * self.movie_quality[movies]
        out += (self.user_pop[users] * POP_SCALE)[:, None] * self.movie_pop_z[movies]
        return np.asarray(out, dtype=np.float32)

    def pairs(self, users: I64, movies: I64, genre_shift: F32 | None = None) -> F32:
        """(B,) affinity of users[b] for movies[b]."""
        return np.asarray(self.candidates(users, movies[:, None], genre_shift)[:, 0], dtype=np.float32)


def expected_rating(affinity: F32) -> F32:
    """Mean star rating (1 to 5) a user with this affinity gives; ratings add N(0, 0.7) noise around it."""
    return np.asarray(np.clip(2.3 + 0.65 * affinity, 1.0, 5.0), dtype=np.float32)
