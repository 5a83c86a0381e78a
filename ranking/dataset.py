"""Leakage-safe training sets: cut-offs, candidates from the past, labels from the future, Feast point-in-time features.

For each cut-off c (train cut-offs, then one validation and one test cut-off, in time order):
- a `CandidateIndex` (recency popularity, all-time popularity, ALS, item-item) is fit on
  sessions that *ended* before c (`interactions.history`), each cut-off on its own history (a
  fit is never shared between cut-offs: that would leak);
- the examples are users with history before c and something in [c, c + horizon) (at most
  `max_users` of them, drawn uniformly); their Feast user features at c are joined first, and
  each user's candidates come from `CandidateIndex.candidates(user, recent watches)`, the very
  call the service makes per request, so training, evaluation and serving see the same lists;
- ALS and item-item are fit on the example users' history plus a uniform sample of the other users with
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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from ranking import columns as C  # noqa: N812 (the Recommenders idiom: C.USER, C.ITEM)
from ranking.candidate_index import CANDIDATE_FEATURES, CandidateIndex, IndexConfig
from ranking.candidates import ALSConfig
from ranking.interactions import history, labels
from ranking.transforms import FEATURE_SERVICE, genre_onehot, model_matrix, recent_genre_profile

RECENT_IDS: Final = "user_watch_stats__recent_movie_ids"
"""Joined user feature: the user's recent watches, most recent first (item-item's input)."""
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


MAX_HORIZON: Final = pd.Timedelta(days=28)
"""Longest label window: a log spanning years is judged on the next four weeks, as a weekly retrain would be."""


def plan_splits(
    sessions: pd.DataFrame, n_train: int = 3, horizon: pd.Timedelta | None = None, warmup: float = 0.35
) -> list[Split]:
    """Train cut-offs, then 'valid' and 'test', spaced one horizon apart at the end of the data.

    The horizon defaults to a tenth of the data's span, at most MAX_HORIZON (hours of data:
    minutes-long windows; years: four weeks); the first `warmup` share of the span is history
    only, so every cut-off has something to learn from. Fewer train cut-offs are planned when
    the span cannot hold `n_train` of them (at least one).
    """
    t0, t1 = sessions[C.START_TS].min(), sessions[C.END_TS].max()
    span = t1 - t0
    if not span > pd.Timedelta(0):
        raise ValueError(f"the sessions span {span}: nothing to split")
    h = horizon or min(span / 10, MAX_HORIZON)
    test = t1 - h
    valid = test - h
    last_train = valid - h
    step = h / 2
    train = [last_train - i * step for i in range(n_train)]
    train = [c for c in train if c >= t0 + span * warmup]
    if not train:
        raise ValueError(f"{span} of data is too short for a train cut-off with a {h} horizon")
    out = [Split(f"train{i}", c.floor("s"), (c + h).floor("s")) for i, c in enumerate(sorted(train))]
    out.append(Split("valid", valid.floor("s"), (valid + h).floor("s")))
    out.append(Split("test", test.floor("s"), (test + h).floor("s")))
    return out


@dataclass
class ExampleSet:
    """Rows (user × candidate) of one or more cut-offs, ready for LightGBM."""

    frame: pd.DataFrame
    x: npt.NDArray[np.float32]
    y: npt.NDArray[np.int64]
    groups: npt.NDArray[np.int64]
    splits: list[Split] = field(default_factory=list)
    recent: dict[int, list[str]] = field(default_factory=dict)
    """Each user's recent watches at the cut-off (Feast), for the baseline policies' lists."""

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


def service_references(store: Any, service: str) -> dict[tuple[str, ...], list[str]]:
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


def join_features(
    store: Any, rows: pd.DataFrame, at: pd.Timestamp, keys: set[tuple[str, ...]] | None = None
) -> pd.DataFrame:
    """Feast point-in-time features of (user, movie) rows as of `at` through the versioned feature service.

    Every row has the same entity timestamp, so a view keyed by users gives the same row for
    every movie of a user: each side is joined once per distinct entity (users for the user
    views, movies for the movie views) and attached to the rows, with the columns
    `<view>__<feature>` as `full_feature_names=True` names them. `keys`: only the views keyed
    by these join keys (default: the views whose keys `rows` holds).
    """
    out = rows
    for view_keys, refs in service_references(store, FEATURE_SERVICE).items():
        if (keys is not None and view_keys not in keys) or not set(view_keys) <= set(rows.columns):
            continue
        entity = rows[list(view_keys)].drop_duplicates().reset_index(drop=True)
        entity[C.TIMESTAMP] = at.floor("us")
        joined = store.get_historical_features(
            entity_df=entity, features=refs, full_feature_names=True
        ).to_df()
        # Feast may reorder rows; one row per entity (the timestamp is shared).
        joined = joined.drop(columns=[C.TIMESTAMP]).drop_duplicates(list(view_keys))
        out = _attach(out, joined, list(view_keys))
    return out


def genre_rows(items: npt.NDArray[Any], movie_genres: Mapping[str, Any]) -> npt.NDArray[np.float32]:
    """One-hot genre rows aligned to a candidate index's vocabulary (zeros for movies without metadata)."""
    return genre_onehot([movie_genres.get(str(m)) for m in items])


def fit_users(
    hist: pd.DataFrame, users: npt.NDArray[np.int64], cap: int | None, seed: int
) -> npt.NDArray[np.int64] | None:
    """The users ALS and item-item are fit on: `users` plus a seeded uniform sample of the rest, `cap` in all."""
    if cap is None:
        return None
    everyone = pd.unique(hist[C.USER].to_numpy(dtype=np.int64))
    if len(everyone) <= cap:
        return None
    rest = np.setdiff1d(everyone, users)
    extra = max(0, cap - len(users))
    sample = np.random.default_rng([seed, 1]).choice(rest, min(extra, len(rest)), replace=False)
    return np.concatenate([users, sample]).astype(np.int64)


def candidate_rows(
    index: CandidateIndex,
    users: npt.NDArray[np.int64],
    recent: Mapping[int, list[str]],
    genres: npt.NDArray[np.float32],
) -> tuple[pd.DataFrame, npt.NDArray[np.float32]]:
    """Every user's candidates from `index.candidates` (serving's own call) as rows, and each row's recent-genre profile."""
    parts_user, parts_item, profiles = [], [], []
    feats: dict[str, list[npt.NDArray[np.float64]]] = {c: [] for c in CANDIDATE_FEATURES}
    for u in users:
        pos = index.positions(recent.get(int(u), []))
        cands = index.candidates(int(u), pos)
        n = len(cands.items)
        parts_user.append(np.full(n, u, dtype=np.int64))
        parts_item.append(cands.items)
        profiles.append(np.broadcast_to(recent_genre_profile(pos, genres), (n, genres.shape[1])))
        for c in CANDIDATE_FEATURES:
            feats[c].append(cands.features[c])
    items = np.concatenate(parts_item) if parts_item else np.empty(0, dtype=np.int64)
    frame = pd.DataFrame(
        {
            C.USER: np.concatenate(parts_user) if parts_user else np.empty(0, dtype=np.int64),
            C.ITEM: index.items[items],
            **{c: np.concatenate(v) if v else np.empty(0) for c, v in feats.items()},
        }
    )
    profile = np.concatenate(profiles) if profiles else np.zeros((0, genres.shape[1]), dtype=np.float32)
    return frame, profile.astype(np.float32)


def recent_lists(user_rows: pd.DataFrame) -> dict[int, list[str]]:
    """Each user's `recent_movie_ids` (most recent first) from joined user features (empty when unknown)."""
    values = user_rows[RECENT_IDS] if RECENT_IDS in user_rows else pd.Series([None] * len(user_rows))
    out: dict[int, list[str]] = {}
    for u, ids in zip(user_rows[C.USER].to_numpy(), values.to_numpy(dtype=object), strict=True):
        out[int(u)] = [str(m) for m in ids] if ids is not None and not isinstance(ids, float) else []
    return out


def build_split(
    split: Split,
    sessions: pd.DataFrame,
    ratings: pd.DataFrame,
    runtime: dict[str, float],
    store: Any,
    movie_genres: Mapping[str, Any] | None = None,
    max_users: int | None = None,
    seed: int = 7,
    als: ALSConfig | None = TRAINING_ALS,
    als_users: int | None = ALS_USERS,
    config: IndexConfig | None = None,
    index: CandidateIndex | None = None,
) -> tuple[ExampleSet, CandidateIndex, pd.DataFrame]:
    """Examples of one cut-off, the candidate index fit for it, and the window's label table for its users.

    `index`: score with this prebuilt index instead of fitting one (evaluating a shipped model
    as of its own index's time, as the service does).
    """
    hist = history(sessions, split.cutoff)
    truth = labels(sessions, ratings, runtime, split.cutoff, split.end)
    with_history = pd.unique(hist[C.USER].to_numpy(dtype=np.int64))
    known = np.intersect1d(truth[C.USER].to_numpy(dtype=np.int64), with_history)
    if max_users is not None and len(known) > max_users:
        known = np.sort(np.random.default_rng(seed).choice(known, max_users, replace=False))
    if index is None:
        index = CandidateIndex.build(
            sessions, split.cutoff, als, config, fit_users(hist, known, als_users, seed), hist=hist
        )
    del hist
    truth = truth[truth[C.USER].isin(known)].reset_index(drop=True)
    users = join_features(store, pd.DataFrame({C.USER: known}), split.cutoff)
    genres = genre_rows(index.items, movie_genres or {})
    recent = recent_lists(users)
    cands, profile = candidate_rows(index, known, recent, genres)
    rows = _attach(cands, users, [C.USER])
    rows = join_features(store, rows, split.cutoff, keys={(C.ITEM,)})
    rows = _attach(rows, truth, [C.USER, C.ITEM])
    rows[C.LABEL] = rows[C.GAIN].fillna(0).astype("int64")
    rows[CUTOFF] = split.cutoff
    x = model_matrix(rows, split.cutoff.timestamp(), profile)
    groups = np.asarray(rows.groupby(C.USER, sort=False).size().to_numpy(), dtype=np.int64)
    ex = ExampleSet(rows, x, rows[C.LABEL].to_numpy(dtype=np.int64), groups, [split], recent)
    return ex, index, truth
