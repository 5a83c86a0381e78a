"""Leakage-safe training sets: cut-offs, candidates from the past, labels from the future, Feast point-in-time features.

For each cut-off c (train cut-offs, then one validation and one test cut-off, in time order):
- generators are fit on sessions that *ended* before c (`interactions.history`);
- the examples are users with history before c and something in [c, c + horizon), each with
  up to `k_total` candidates that exclude what they had already watched;
- labels are graded from what they did in [c, c + horizon) (`interactions.labels`);
- features come from Feast `get_historical_features` through the `ranker_v1` service with
  event_timestamp = c, so every feature row is as of the cut-off (the offline store's rows
  carry event time, floored to microseconds);
- train label windows end before the validation cut-off, and validation's before the test's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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


def fit_generators(sessions: pd.DataFrame, cutoff: pd.Timestamp, als: ALSConfig | None = None) -> Generators:
    """Popularity and ALS fit on history strictly before the cut-off."""
    hist = history(sessions, cutoff)
    pop = PopularityGenerator().fit(hist, now=cutoff, cutoff=cutoff)
    als_gen = ALSGenerator(als).fit(hist, cutoff=cutoff)
    return Generators(pop, als_gen, seen_items(hist))


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


def join_features(store: Any, rows: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    """Feast point-in-time features of (user, movie) rows as of `at` through the versioned feature service."""
    entity = rows[[C.USER, C.ITEM]].copy()
    entity[C.TIMESTAMP] = at.floor("us")
    joined = store.get_historical_features(
        entity_df=entity, features=store.get_feature_service(FEATURE_SERVICE), full_feature_names=True
    ).to_df()
    # Feast may reorder rows: bring them back to the candidates' order.
    joined = joined.drop(columns=[C.TIMESTAMP]).drop_duplicates([C.USER, C.ITEM])
    return rows.merge(joined, on=[C.USER, C.ITEM], how="left", validate="one_to_one")


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
) -> tuple[ExampleSet, Generators, pd.DataFrame]:
    """Examples of one cut-off, the generators fit for it, and the window's full label table (for evaluation)."""
    gens = fit_generators(sessions, split.cutoff)
    truth = labels(sessions, ratings, runtime, split.cutoff, split.end)
    known = np.asarray(sorted(set(truth[C.USER]) & set(gens.seen)), dtype=np.int64)
    if max_users is not None and len(known) > max_users:
        known = np.sort(np.random.default_rng(seed).choice(known, max_users, replace=False))
    cands = candidates(gens, known, k_pop, k_als, k_total)
    rows = join_features(store, cands, split.cutoff)
    rows = rows.merge(truth, on=[C.USER, C.ITEM], how="left")
    rows[C.LABEL] = rows[C.GAIN].fillna(0).astype("int64")
    rows[CUTOFF] = split.cutoff
    rows = rows.sort_values([C.USER, C.RANK], kind="stable").reset_index(drop=True)
    x = model_matrix(rows, split.cutoff.timestamp())
    groups = np.asarray(rows.groupby(C.USER, sort=False).size().to_numpy(), dtype=np.int64)
    ex = ExampleSet(rows, x, rows[C.LABEL].to_numpy(dtype=np.int64), groups, [split])
    return ex, gens, truth[truth[C.USER].isin(known)]
