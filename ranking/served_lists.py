"""The lists a registered version serves as of a time, computed offline: `recsys evaluate --lists`.

The same steps as the service's request path, batched: the version's own candidate index, the
users' Feast features as of `as_of` (point in time; the service reads the same rows online when
`as_of` is the stream clock), `CandidateIndex.candidates`, the shared transforms and the model's
default cost rule; a baseline version serves its policy's list. An integration test holds these
lists equal to `/recommend`'s answers under `RECSYS_SERVING_CLOCK=stream`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ranking import columns as C  # noqa: N812 (the Recommenders idiom)
from ranking.candidate_index import INDEX_DIR, CandidateIndex
from ranking.dataset import ExampleSet, _attach, candidate_rows, genre_rows, join_features, recent_lists
from ranking.evaluate import K, model_lists
from ranking.ranker import Ranker
from ranking.registry import KIND_BASELINE, read_kind
from ranking.transforms import model_matrix


def lists_as_of(
    model_dir: Path,
    store: Any,
    users: npt.NDArray[np.int64],
    as_of: pd.Timestamp,
    movie_genres: dict[str, Any] | None = None,
    k: int = K,
) -> dict[int, list[str]]:
    """Each user's list from the version in `model_dir` as of `as_of` (unix time of the service's clock)."""
    index = CandidateIndex.load(model_dir / INDEX_DIR)
    users = np.asarray(users, dtype=np.int64)
    user_rows = join_features(store, pd.DataFrame({C.USER: users}), as_of)
    recent = recent_lists(user_rows)
    kind, policy = read_kind(model_dir)
    if kind == KIND_BASELINE:
        assert policy is not None
        return {
            int(u): [
                str(m)
                for m in index.items[index.generator_list(policy, int(u), index.positions(recent[int(u)]), k)]
            ]
            for u in users
        }
    genres = genre_rows(index.items, movie_genres or {})
    cands, profile = candidate_rows(index, users, recent, genres)
    rows = _attach(cands, user_rows, [C.USER])
    rows = join_features(store, rows, as_of, keys={(C.ITEM,)})
    x = model_matrix(rows, as_of.timestamp(), profile)
    groups = np.asarray(rows.groupby(C.USER, sort=False).size().to_numpy(), dtype=np.int64)
    ex = ExampleSet(rows, x, np.zeros(len(rows), dtype=np.int64), groups)
    lists = model_lists(Ranker.load(model_dir), ex, None, k)
    out: dict[int, list[str]] = {int(u): [] for u in users}
    for u, m in zip(lists[C.USER].to_numpy(dtype=np.int64), lists[C.ITEM].astype(str), strict=True):
        out[int(u)].append(m)
    return out
