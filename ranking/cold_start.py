"""The self-description cold-start policy, and the hand-over from it to the ranker as history grows.

Score of movie j for a parsed description d (each term on a comparable scale; weights below):

    W_POP * pop_j                                  popularity prior (z-score of log1p decayed plays)
  + W_TEXT * z(cos(d.vector, v_j))                 the likes text against the movie document
  + W_GENRE * liked-genre share of j               genres the user named, over the movie's genres
  - W_DISLIKED_GENRE * [j has a disliked genre]
  + W_NEIGHBOUR * z(cos(v_j, mean v_liked))       neighbours of the titles named as liked
  - W_DISLIKED_NEIGHBOUR * z(cos(v_j, mean v_disliked))
  + TITLE_BOOST * [j named as liked] - TITLE_BOOST * [j named as disliked]
  - lam * cost_j / median cost                     the licence-cost penalty (as ranking.cost_policy)

Weights: chosen on one simulated world (30,000 users, 1,500 movies) on half of its new users
and checked on the other half (reports/cold_start.md): named genres carry most of the signal
(W_GENRE 3 is three standard deviations of log-popularity for a movie wholly in them); more text
weight hurt there because the movie documents hold only title, year and genres; a named title
leads the list only mildly, and its neighbours barely move it. Real text with no lexicon word
still moves the list through the text term.

z() standardises over the catalogue, so the text terms mean the same whatever the encoder's
typical cosine. The three vector terms are linear in v_j, and z() of a linear score has a closed
form (mean: the mean movie vector; spread: the movie vectors' covariance, both kept from start-up),
so they fold into one query vector and one mat-vec: the movie matrix (20,000 x 384, 30 MB) is
read once per request, which is what a request costs. Several named titles act through their mean. The description vector is ignored when its model id differs from the movie
vectors' (a TF-IDF user vector never meets MiniLM movie vectors). Empty and vague descriptions
get the popularity prior and the cost penalty only: the current cold start.

Hand-over (`handover_weight`): a user with n plays is served blend = (1 - w) * cold + w * ranker
over rank-normalised scores, w = 1 - (1 - min(n, HANDOVER_PLAYS) / HANDOVER_PLAYS) ** 2. It is 0
with no plays, rises fastest at first (the first plays say more about taste than a sentence does)
and reaches 1 at HANDOVER_PLAYS plays, from where the ranker's history features carry the user.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from events.metadata import GENRES
from textmodel.describe import INFORMATIVE, ParsedDescription

F64 = npt.NDArray[np.float64]

W_POP: Final = 1.0
"""Weight of the popularity prior (z-score of log1p decayed plays)."""
W_TEXT: Final = 0.3
"""Weight of the likes text's similarity to each movie document (z-scored)."""
W_GENRE: Final = 3.0
"""Weight of the share of a movie's genres the user named as liked."""
W_DISLIKED_GENRE: Final = 2.0
"""Penalty of a movie carrying a genre the user named as disliked."""
W_NEIGHBOUR: Final = 0.1
"""Weight of a movie's similarity to the nearest title named as liked (z-scored)."""
W_DISLIKED_NEIGHBOUR: Final = 0.3
"""Penalty of a movie's similarity to the nearest title named as disliked (z-scored, positive part)."""
TITLE_BOOST: Final = 1.0
"""Bonus of a title named as liked (penalty of one named as disliked): moderate, as a favourite is often already seen."""
HANDOVER_PLAYS: Final = 10
"""Plays after which the ranker alone serves a user (`handover_weight` reaches 1)."""


def _z(values: F64) -> F64:
    """Standardised over the catalogue (all zeros when constant)."""
    sd = float(values.std())
    return (values - values.mean()) / sd if sd > 0 else np.zeros_like(values)


class ColdStartPolicy:
    """Scores every catalogue movie for a parsed self-description; built once per catalogue and prior."""

    def __init__(
        self,
        movie_ids: Sequence[str],
        vectors: npt.NDArray[np.float32] | None,
        model_id: str | None,
        genres: npt.NDArray[np.bool_],
        popularity: npt.NDArray[np.float64],
        cost: npt.NDArray[np.float64],
        lam: float = 0.0,
    ) -> None:
        n = len(movie_ids)
        if genres.shape != (n, len(GENRES)) or popularity.shape != (n,) or cost.shape != (n,):
            raise ValueError(
                f"{n} movies but genres {genres.shape}, popularity {popularity.shape}, cost {cost.shape}"
            )
        if vectors is not None and vectors.shape[0] != n:
            raise ValueError(f"{n} movies but {vectors.shape[0]} vectors")
        if lam < 0:
            raise ValueError(f"lam must be non-negative, got {lam}")
        self.movie_ids = [str(m) for m in movie_ids]
        self._row = {m: i for i, m in enumerate(self.movie_ids)}
        self._vectors = None if vectors is None else np.ascontiguousarray(vectors, dtype=np.float32)
        self._mean_vec = np.zeros(0)
        self._cov = np.zeros((0, 0))
        if self._vectors is not None and len(self._vectors):
            centred = self._vectors - self._vectors.mean(axis=0)
            self._mean_vec = self._vectors.mean(axis=0, dtype=np.float64)
            self._cov = (centred.T @ centred).astype(np.float64) / len(self._vectors)
        self._model_id = model_id
        # Genre terms are mat-vecs with a 0/1 mask over GENRES: no per-request copy of the columns.
        self._genres = np.asarray(genres, dtype=np.float64)
        self._genre_col = {g: i for i, g in enumerate(GENRES)}
        n_genres = self._genres.sum(axis=1)
        self._genre_share = self._genres / np.where(n_genres > 0, n_genres, 1.0)[:, None]
        self._price(popularity, cost, lam)

    def repriced(
        self, popularity: npt.NDArray[np.float64], cost: npt.NDArray[np.float64], lam: float
    ) -> ColdStartPolicy:
        """The same catalogue (movies, vectors, genres) with a new popularity prior, costs and λ.

        Serving rebuilds the policy after every movie-table refresh, where mostly plays and costs
        moved: this skips the vectors' covariance and every per-movie Python step.
        """
        n = len(self.movie_ids)
        if popularity.shape != (n,) or cost.shape != (n,) or lam < 0:
            raise ValueError(f"{n} movies but popularity {popularity.shape}, cost {cost.shape}, lam {lam}")
        out = copy.copy(self)
        out._price(popularity, cost, lam)
        return out

    def _price(self, popularity: npt.NDArray[np.float64], cost: npt.NDArray[np.float64], lam: float) -> None:
        """The description-independent part of every score: popularity prior minus the cost penalty."""
        pop = np.log1p(np.clip(np.nan_to_num(np.asarray(popularity, dtype=np.float64)), 0.0, None))
        c = np.asarray(cost, dtype=np.float64)
        known = c[np.isfinite(c)]
        # Unknown costs are charged a high price (the 0.9 quantile), so missing data never buys a slot.
        c = np.where(np.isfinite(c), c, float(np.quantile(known, 0.9)) if len(known) else 0.0)
        scale = float(np.median(c)) if len(c) and np.median(c) > 0 else 1.0
        self._base = W_POP * _z(pop) - lam * c / scale
        self.lam = lam

    def _usable(self, vector: npt.NDArray[np.float32] | None, model_id: str | None) -> bool:
        """Whether a description vector can be compared with the movie vectors (same model, same width, not zero)."""
        if vector is None or self._vectors is None or model_id != self._model_id:
            return False
        return vector.shape == (self._vectors.shape[1],) and bool(np.any(vector))

    def _mask(self, names: Sequence[str]) -> F64 | None:
        """0/1 over GENRES of the known genres in `names` (None when there is none)."""
        cols = [self._genre_col[g] for g in names if g in self._genre_col]
        if not cols:
            return None
        mask = np.zeros(len(GENRES), dtype=np.float64)
        mask[cols] = 1.0
        return mask

    def _rows(self, ids: Sequence[str]) -> list[int]:
        return [r for i in ids if (r := self._row.get(i)) is not None]

    def _query(self, q: npt.NDArray[np.floating], weight: float) -> F64:
        """`q` scaled so that movies @ result - mean @ result is weight * z(movies @ q) (0 when constant)."""
        q64 = np.asarray(q, dtype=np.float64)
        variance = float(q64 @ self._cov @ q64)
        sd = float(np.sqrt(max(variance, 0.0)))
        return q64 * (weight / sd) if sd > 0 else np.zeros_like(q64)

    def _vector_terms(self, d: ParsedDescription, liked: list[int], disliked: list[int]) -> F64 | None:
        """The text, liked-neighbour and disliked-neighbour terms of every movie, from one mat-vec."""
        if self._vectors is None or not len(self._vectors):
            return None
        w = np.zeros(self._vectors.shape[1], dtype=np.float64)
        if self._usable(d.vector, d.model_id):
            assert d.vector is not None
            w += self._query(d.vector, W_TEXT)
        if liked:
            w += self._query(self._vectors[liked].mean(axis=0), W_NEIGHBOUR)
        if disliked:
            w -= self._query(self._vectors[disliked].mean(axis=0), W_DISLIKED_NEIGHBOUR)
        if not w.any():
            return None
        terms: F64 = (self._vectors @ w.astype(np.float32)).astype(np.float64) - float(self._mean_vec @ w)
        return terms

    def scores(self, d: ParsedDescription) -> F64:
        """One score per catalogue movie (movie_ids order), higher is better; popularity for empty/vague."""
        s = self._base.copy()
        if d.kind != INFORMATIVE:
            return s
        if (liked_g := self._mask(d.liked_genres)) is not None:
            s += W_GENRE * (self._genre_share @ liked_g)
        if (disliked_g := self._mask(d.disliked_genres)) is not None:
            s -= W_DISLIKED_GENRE * ((self._genres @ disliked_g) > 0)
        liked, disliked = self._rows(d.liked), self._rows(d.disliked)
        if (terms := self._vector_terms(d, liked, disliked)) is not None:
            s += terms
        s[liked] += TITLE_BOOST
        s[disliked] -= TITLE_BOOST
        return s

    def recommend(self, d: ParsedDescription, k: int = 20, seen: Collection[str] = ()) -> list[str]:
        """The k best unseen movies for `d`, best first (ties: catalogue order, so lists are deterministic)."""
        s = self.scores(d)
        s[self._rows(list(seen))] = -np.inf
        if k < 1 or not len(s):
            return []
        # Partial selection (20,000 movies: a full sort costs more than the scores): every movie scoring
        # at least the k-th best is kept, so ties at the edge are broken by catalogue order, as a full sort would.
        kth = -np.partition(-s, min(k, len(s)) - 1)[min(k, len(s)) - 1]
        top = np.flatnonzero(s >= kth)
        order = top[np.lexsort((top, -s[top]))][:k]
        return [self.movie_ids[i] for i in order if np.isfinite(s[i])]


def handover_weight(n_plays: int) -> float:
    """The ranker's share of a user's blended score: 0 at 0 plays, rising to 1 at HANDOVER_PLAYS (see module doc)."""
    left = 1.0 - min(max(n_plays, 0), HANDOVER_PLAYS) / HANDOVER_PLAYS
    return 1.0 - left * left


def _rank_normalised(values: F64) -> F64:
    """Ranks scaled to [0, 1] (best 1; ties share their mean rank), so scores of any scale mix."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) <= 1:
        return np.ones_like(v)
    order = np.argsort(v, kind="stable")
    ranks = np.empty(len(v), dtype=np.float64)
    ranks[order] = np.arange(len(v), dtype=np.float64)
    # Ties share the mean rank, so equal scores stay equal after normalising.
    _, inverse = np.unique(v, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks)
    counts = np.bincount(inverse)
    return (sums / counts)[inverse] / (len(v) - 1)


def blend(cold: F64, ranker: F64, n_plays: int) -> F64:
    """Rank-normalised mix of the cold-start and ranker scores of the same candidates for a user with n plays."""
    c, r = np.asarray(cold, dtype=np.float64), np.asarray(ranker, dtype=np.float64)
    if c.shape != r.shape:
        raise ValueError(f"cold {c.shape} and ranker {r.shape} scores must have the same shape")
    w = handover_weight(n_plays)
    if w == 0.0:
        return _rank_normalised(c)
    if w == 1.0:
        return _rank_normalised(r)
    return (1.0 - w) * _rank_normalised(c) + w * _rank_normalised(r)
