"""One recommendation, start to finish, as plain logic: candidates -> shared transforms -> ranker -> top 20.

No I/O here: the app hands in the user's online features (or None when they could not be
read), the model bundle the router chose, the in-memory movie table and the clock. The
feature matrix comes from `ranking.transforms.matrix_from_columns`, the function training
uses, so serving cannot drift from what the model learned.

The step after scoring that every answer path goes through (ranking constraints, exploration
slots, the unknown-cost count) is `serving.post_scoring`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from events.metadata import GENRES
from ranking.cost_policy import CostRule, rerank
from ranking.transforms import USER_AFFINITY, affinity_vector, matrix_from_columns, recent_genre_profile
from serving.models import ModelBundle
from serving.movie_table import COST, NUMERIC, MovieTable

TOP_K: Final = 20
"""Movies per answer."""
RECENT: Final = "user_watch_stats__recent_movie_ids"
"""Online feature: the user's most recently watched movies (filtered out of answers)."""
NUMERIC_INDEX: Final = {name: j for j, name in enumerate(NUMERIC)}
"""Column of each numeric movie feature in `MovieTable.matrix`."""
HISTORY_FEATURES: Final = ("user_watch_stats__watch_count_total", "user_rating_stats__rating_count")
"""Any of these non-zero means the user watched or rated something. Not `last_active_ts`: the account
creation alone sets it, and a user who only just signed up is a cold-start user."""
AGE: Final = "user_profile__age"
"""Online feature: the user's age (None when unknown: the adult rule then treats them as a minor)."""
RESERVE: Final = 2 * TOP_K
"""Next-ranked candidates kept after the list on the model path: back-fill for the constraints."""


@dataclass(frozen=True)
class ScoredRows:
    """The candidate rows the model scored for one answer, handed to the feature log as they are (no copy, no recompute)."""

    x: npt.NDArray[np.float32]
    """Feature matrix, one row per candidate (`ranking.transforms.FEATURE_COLUMNS` order)."""
    scores: npt.NDArray[np.float64]
    """The ranker's relevance score of each row (before the cost rule)."""
    items: npt.NDArray[np.int64]
    """Each row's position in `vocab`."""
    vocab: npt.NDArray[Any]
    """The candidate index's movie ids (ids are looked up off the request path, by the log's thread)."""
    as_of: float | None = None
    """The feature time (unix seconds) `rank` computed the time features at: the skew replay rebuilds the rows as of it."""


@dataclass(frozen=True)
class Outcome:
    """What was answered and how (the provenance record and the metrics are built from it)."""

    movies: list[str]
    path: str
    """`model`, `model_no_features` (the model without the user's online features), `cold_start` or `fallback`."""
    candidate_sources: dict[str, int] = field(default_factory=dict)
    lam: float | None = None
    reason: str | None = None
    """Why the answer is not the model's (fallback) or which cold-start policy served it."""
    scored: ScoredRows | None = None
    """The ranker's input rows and scores (model path with a ranker only): what the feature log samples."""
    reserve: list[str] = field(default_factory=list)
    """The next-ranked movies after `movies`, best first: back-fill for the constraints (`finalize`)."""
    tail: npt.NDArray[Any] | None = None
    """The candidates not served (movie ids): what exploration draws from; None: draw from the catalogue."""
    unknown_cost: int | None = None
    """Candidates the cost rule priced at the assumed cost (model path); None: count the served list's."""
    constrained: bool = False
    """`constrain` already ran (an arm's ranking step does it, so each interleaved team is served constrained)."""


def fallback_list(index_popular: Sequence[str], table: MovieTable, k: int = 100) -> list[str]:
    """Popular and cost-aware: the k most popular movies ordered by popularity per licence dollar.

    Popularity rank r gives weight 1/(1 + r/10); dividing by (1 + cost / median cost) keeps
    the list popular while pushing expensive titles down; an unknown cost counts as the table's
    `unknown_cost` (a high quantile: never cheap). Used whenever the model path fails.
    """
    movies = list(index_popular[:k])
    if not movies:
        return []
    rows = table.rows(movies)
    cost = table.gather(COST, rows)
    finite = cost[np.isfinite(cost)]
    median = float(np.median(finite)) if len(finite) else 1.0
    cost = np.where(np.isfinite(cost), cost, table.unknown_cost)
    value = (1.0 / (1.0 + np.arange(len(movies)) / 10.0)) / (1.0 + cost / max(median, 1e-9))
    return [movies[i] for i in np.argsort(-value, kind="stable")]


def without(movies: Sequence[str], seen: set[str], k: int = TOP_K) -> list[str]:
    """The first k movies not in `seen`."""
    return [m for m in movies if m not in seen][:k]


def recent_movies(user: dict[str, Any] | None) -> list[str]:
    """The user's recently watched movie ids from the online features (empty when unknown)."""
    recent = (user or {}).get(RECENT)
    return [str(m) for m in recent] if recent else []


def features_missing(user: dict[str, Any] | None) -> bool:
    """Whether the online read found no feature at all for the user (no row: never written, or the store lost it).

    Feast keeps all of a user's views in one Redis hash, so a flushed or restarted-empty store
    gives every feature None at once; a user with a row always has some value set.
    """
    return not user or all(value is None for name, value in user.items() if "__" in name)


def has_history(user: dict[str, Any] | None, bundle: ModelBundle | None, user_id: int) -> bool:
    """Whether the user watched anything: online features say so, or the candidate index knows them."""
    if user and (recent_movies(user) or any(user.get(f) for f in HISTORY_FEATURES)):
        return True
    return bundle is not None and len(bundle.index.watched(user_id)) > 0


def rank(
    user_id: int,
    user: dict[str, Any],
    bundle: ModelBundle,
    table: MovieTable,
    lam: float | None,
    now_s: float,
    k: int = TOP_K,
    cost_budget: float | None = None,
) -> Outcome:
    """The model path: candidates for the user, features, LambdaRank scores under the cost rule, top k.

    A baseline version (`bundle.policy`) serves its generator's own list from the same index.
    `lam`/`cost_budget`: the arm's overrides (None: the model's defaults).
    """
    index = bundle.index
    recent = index.positions(recent_movies(user))
    if bundle.policy is not None:
        top = index.generator_list(bundle.policy, user_id, recent, k)
        return Outcome([str(m) for m in index.items[top]], "model", {bundle.policy: len(top)}, 0.0)
    cands = index.candidates(user_id, recent)
    n = len(cands.items)
    if n == 0:
        return Outcome([], "model", {}, lam, "no candidates")
    aligned = bundle.vocab_table(table)
    block = aligned.matrix[cands.items]  # one take: the candidates' movie features, NUMERIC order

    def column(name: str) -> npt.NDArray[np.float64]:
        if name in cands.features:
            return np.asarray(cands.features[name], dtype=np.float64)
        j = NUMERIC_INDEX.get(name)
        if j is not None:
            return block[:, j]
        if name.startswith("movie_"):
            return np.full(n, np.nan)
        value = user.get(name)
        try:
            scalar = float(value) if value is not None else np.nan
        except (TypeError, ValueError):
            scalar = np.nan
        return np.full(n, scalar)

    affinity = np.broadcast_to(affinity_vector(user.get(USER_AFFINITY)), (n, len(GENRES)))
    profile = np.broadcast_to(recent_genre_profile(recent, aligned.genres), (n, len(GENRES)))
    x = matrix_from_columns(column, aligned.genres[cands.items], affinity, now_s, n, profile)
    ranker = bundle.ranker
    assert ranker is not None  # a bundle without a policy has trees (load_bundle)
    meta = ranker.meta
    rule = CostRule(
        lam=(meta.default_lambda or 0.0) if lam is None else lam,
        max_mean_cost=meta.default_cost_budget if cost_budget is None else cost_budget,
    )
    assumed = meta.cost_scale if meta.unknown_cost is None else meta.unknown_cost
    scores = ranker.score(x)
    cost = block[:, NUMERIC_INDEX[COST]]
    top = rerank(scores, cost, k, rule, meta.cost_scale, unknown_cost=assumed)
    movies = [str(m) for m in index.items[cands.items[top]]]
    scored = ScoredRows(x, scores, cands.items, index.items, now_s)
    # The rest in penalised order: the first RESERVE back-fill the constraints, all of them feed exploration.
    order = np.argsort(-ranker.penalised(scores, cost, rule.lam), kind="stable")
    rest = index.items[cands.items[order[~np.isin(order, top)]]]
    return Outcome(
        movies, "model", cands.sources(), rule.lam, scored=scored,
        reserve=[str(m) for m in rest[:RESERVE]], tail=rest,
        unknown_cost=int(np.count_nonzero(~np.isfinite(cost))),
    )  # fmt: skip
