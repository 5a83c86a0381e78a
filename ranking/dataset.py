"""Leakage-safe training sets: cut-offs, candidates from the past, labels from the future, Feast point-in-time features.

For each cut-off c (train cut-offs, then one validation and one test cut-off, in time order):
- generators are fit on sessions that *ended* before c (`interactions.history`), each cut-off
  on its own history (a fit is never shared between cut-offs: that would leak);
- the examples are users with history before c and something in [c, c + horizon) (at most
  `max_users` of them, drawn uniformly), each with up to `k_total` candidates that exclude
  what they had already watched (`seen` is built for those users only);
- ALS is fit on the example users' history plus a uniform sample of the other users with
  history, `als_users` in all (`ALS_USERS`): the example users get factors of their own, the
  movie factors come from a large sample; the cost of a fit grows with its users and plays.
  Only sessions before c go in; which users are in follows the example selection (users
  active after c), as a full fit on every user includes them too;
- labels are graded from what they did in [c, c + horizon) (`interactions.labels`);
- features come from Feast `get_historical_features` at event_timestamp = c for the
  `ranker_v1` service's features, asked once for the distinct users (user views) and once
  for the distinct movies (movie views), then merged onto the (user, movie) rows: the same
  point-in-time rows as one join of every pair, far fewer entity rows (the offline store's
  rows carry event time, floored to microseconds);
- train label windows end before the validation cut-off, and validation's before the test's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from ranking import columns as C  # noqa: N812 (the Recommenders idiom: C.USER, C.ITEM)
from ranking.candidates import (
    ALSConfig,
    ALSGenerator,
    PopularityGenerator,
    merge_candidates,
    seen_items,
)
from ranking.interactions import history, labels
from ranking.transforms import FEATURE_SERVICE, model_matrix

CUTOFF = "cutoff"
"""Column: the cut-off time of an example (its feature time)."""
ALS_USERS: Final = 200_000
"""Users an ALS fit sees per cut-off: the example users plus a uniform sample of the rest (None: all).

Measured at full scale (1M users, 10M sessions; test cut-off, 10,000 of its users; default
ALSConfig): 150,000 / 200,000 / 400,000 / all 937,000 users gave NDCG@20 0.0075 / 0.0067 /
0.0076 / 0.0070 (no trend with the sample) and candidate recall@100 0.053 / 0.051 / 0.054 /
0.054; fits took 17 s (1 thread) / 13 / 30 / 96 s (2 threads) on the shared 2-core machine.
Serving's candidate index fits on everyone."""
TRAINING_ALS: Final = ALSConfig(num_threads=min(2, os.cpu_count() or 1))
"""ALS as training fits it: the defaults (as serving's index), on implicit's own threads (BLAS stays
at one thread inside `fit`; threads do not change the factors)."""


@dataclass(frozen=True)
class Split:
    """One cut-off and its label window."""

    name: str
    cutoff: pd.Timestamp
    end: pd.Timestamp


def plan_splits(
    sessions: pd.DataFrame, n_train: int = 3, horizon: pd.Timedelta | None = None, warmup: float = 0.35
) -> list[Split]:
    """Train cut-offs, then 'valid' and 'test', spaced one horizon apart at the end of the data.

    The horizon defaults to a tenth of the data's span; the first `warmup` share of the span
    is history only, so every cut-off has something to learn from.
    """
    t0, t1 = sessions[C.START_TS].min(), sessions[C.END_TS].max()
    span = t1 - t0
    h = horizon or span / 10
    test = t1 - h
    valid = test - h
    last_train = valid - h
    step = h / 2
    train = [last_train - i * step for i in range(n_train)]
    train = [c for c in train if c >= t0 + span * warmup]
    if not train:
        raise ValueError(f"{span} of data is too short for {n_train} train cut-offs with a {h} horizon")
    out = [Split(f"train{i}", c.floor("s"), (c + h).floor("s")) for i, c in enumerate(sorted(train))]
    out.append(Split("valid", valid.floor("s"), (valid + h).floor("s")))
    out.append(Split("test", test.floor("s"), (test + h).floor("s")))
    return out


@dataclass
class Generators:
    """The candidate generators fit as of one cut-off."""

    popularity: PopularityGenerator
    als: ALSGenerator
    seen: dict[int, set[str]]


def fit_generators(
    sessions: pd.DataFrame,
    cutoff: pd.Timestamp,
    als: ALSConfig | None = None,
    users: npt.NDArray[np.int64] | None = None,
    als_users: int | None = None,
    seed: int = 7,
) -> Generators:
    """Popularity and ALS fit on history strictly before the cut-off.

    `users`: the users candidates will be asked for (`seen` is built for them only; all
    users when None). `als_users`: cap on the users ALS is fit on — `users` plus a uniform
    sample (seeded) of the others with history; None fits on everyone.
    """
    return _fit(history(sessions, cutoff), cutoff, als, users, als_users, seed)


def _fit(
    hist: pd.DataFrame,
    cutoff: pd.Timestamp,
    als: ALSConfig | None,
    users: npt.NDArray[np.int64] | None,
    als_users: int | None,
    seed: int,
    with_history: npt.NDArray[np.int64] | None = None,
) -> Generators:
    pop = PopularityGenerator().fit(hist, now=cutoff, cutoff=cutoff)
    als_hist = hist
    if als_users is not None:
        everyone = pd.unique(hist[C.USER].to_numpy()) if with_history is None else with_history
        if len(everyone) > als_users:
            chosen = np.zeros(0, np.int64) if users is None else np.asarray(users, dtype=np.int64)
            rest = np.setdiff1d(everyone, chosen)
            extra = max(0, als_users - len(chosen))
            sample = np.random.default_rng([seed, 1]).choice(rest, min(extra, len(rest)), replace=False)
            als_hist = hist[hist[C.USER].isin(np.concatenate([chosen, sample]))]
    als_gen = ALSGenerator(als).fit(als_hist, cutoff=cutoff)
    seen_input = hist if users is None else hist[hist[C.USER].isin(users)]
    return Generators(pop, als_gen, seen_items(seen_input))


def candidates(
    gens: Generators, users: npt.NDArray[np.int64], k_pop: int, k_als: int, k_total: int
) -> pd.DataFrame:
    """Merged candidates per user (already-watched movies excluded) with per-source rank/score features."""
    frames = [
        gens.popularity.recommend(users, k_pop, exclude=gens.seen),
        gens.als.recommend(users, k_als, exclude=gens.seen),
    ]
    # `sources` fixes the rank/score columns even when a generator proposes nothing.
    return merge_candidates(frames, k_total, exclude=gens.seen, sources=["pop", "als"])


@dataclass
class ExampleSet:
    """Rows (user × candidate) of one or more cut-offs, ready for LightGBM."""

    frame: pd.DataFrame
    x: npt.NDArray[np.float32]
    y: npt.NDArray[np.int64]
    groups: npt.NDArray[np.int64]
    splits: list[Split] = field(default_factory=list)

    @classmethod
    def concat(cls, sets: list[ExampleSet]) -> ExampleSet:
        """One set from several (groups stay contiguous)."""
        return cls(
            pd.concat([s.frame for s in sets], ignore_index=True),
            np.concatenate([s.x for s in sets]),
            np.concatenate([s.y for s in sets]),
            np.concatenate([s.groups for s in sets]),
            [sp for s in sets for sp in s.splits],
        )


def _references(store: Any, service: str) -> dict[tuple[str, ...], list[str]]:
    """The service's `view:feature` references, grouped by the join keys of their views."""
    out: dict[tuple[str, ...], list[str]] = {}
    for projection in store.get_feature_service(service).feature_view_projections:
        keys = tuple(store.get_feature_view(projection.name).join_keys)
        out.setdefault(keys, []).extend(f"{projection.name}:{f.name}" for f in projection.features)
    return out


def _attach(rows: pd.DataFrame, table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """`rows` plus the other columns of `table` (unique on `keys`) by key; NA where a key is missing.

    A left join that keeps the order and index of `rows`, without pandas' merge (which copies
    every column of `rows` and hashes the keys again): one indexer, one take per new column.
    """
    if len(keys) == 1:
        pos = pd.Index(table[keys[0]]).get_indexer(rows[keys[0]])
    else:
        pos = pd.MultiIndex.from_frame(table[keys]).get_indexer(pd.MultiIndex.from_frame(rows[keys]))
    out = rows.copy(deep=False)
    for col in table.columns:
        if col not in keys:
            out[col] = pd.api.extensions.take(table[col].to_numpy(), pos, allow_fill=True)
    return out


def join_features(store: Any, rows: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    """Feast point-in-time features of (user, movie) rows as of `at` through the versioned feature service.

    Every row has the same entity timestamp, so a view keyed by users gives the same row for
    every movie of a user: each side is joined once per distinct entity (users for the user
    views, movies for the movie views) and attached to the rows, with the columns
    `<view>__<feature>` as `full_feature_names=True` names them.
    """
    out = rows
    for keys, refs in _references(store, FEATURE_SERVICE).items():
        entity = rows[list(keys)].drop_duplicates().reset_index(drop=True)
        entity[C.TIMESTAMP] = at.floor("us")
        joined = store.get_historical_features(
            entity_df=entity, features=refs, full_feature_names=True
        ).to_df()
        # Feast may reorder rows; one row per entity (the timestamp is shared).
        joined = joined.drop(columns=[C.TIMESTAMP]).drop_duplicates(list(keys))
        out = _attach(out, joined, list(keys))
    return out


def build_split(
    split: Split,
    sessions: pd.DataFrame,
    ratings: pd.DataFrame,
    runtime: dict[str, float],
    store: Any,
    k_pop: int = 50,
    k_als: int = 100,
    k_total: int = 120,
    max_users: int | None = None,
    seed: int = 7,
    als: ALSConfig | None = TRAINING_ALS,
    als_users: int | None = ALS_USERS,
) -> tuple[ExampleSet, Generators, pd.DataFrame]:
    """Examples of one cut-off, the generators fit for it, and the window's label table for its users (evaluation)."""
    hist = history(sessions, split.cutoff)
    truth = labels(sessions, ratings, runtime, split.cutoff, split.end)
    with_history = pd.unique(hist[C.USER].to_numpy(dtype=np.int64))
    known = np.intersect1d(truth[C.USER].to_numpy(dtype=np.int64), with_history)
    if max_users is not None and len(known) > max_users:
        known = np.sort(np.random.default_rng(seed).choice(known, max_users, replace=False))
    gens = _fit(hist, split.cutoff, als, known, als_users, seed, with_history)
    del hist
    truth = truth[truth[C.USER].isin(known)].reset_index(drop=True)
    cands = candidates(gens, known, k_pop, k_als, k_total)
    rows = join_features(store, cands, split.cutoff)
    rows = _attach(rows, truth, [C.USER, C.ITEM])
    rows[C.LABEL] = rows[C.GAIN].fillna(0).astype("int64")
    rows[CUTOFF] = split.cutoff
    user, rank = rows[C.USER].to_numpy(), rows[C.RANK].to_numpy()
    step_user, step_rank = np.diff(user), np.diff(rank)
    if not ((step_user > 0) | ((step_user == 0) & (step_rank >= 0))).all():  # usually merge_candidates' order
        rows = rows.take(np.lexsort((rank, user))).reset_index(drop=True)
    x = model_matrix(rows, split.cutoff.timestamp())
    groups = np.asarray(rows.groupby(C.USER, sort=False).size().to_numpy(), dtype=np.int64)
    ex = ExampleSet(rows, x, rows[C.LABEL].to_numpy(dtype=np.int64), groups, [split])
    return ex, gens, truth
