"""What every candidate generator shares: the interactions contract, leakage check, exclusions, top-k.

Interactions are a pandas frame with one row per play (a watch session): `user_id` (int),
`movie_id` (str), `event_timestamp` (UTC datetime) and, for generators that weigh plays,
`minutes_watched`. `sessions_to_interactions` maps the offline store's sessions files onto
it. Generators return candidate frames: `user_id, movie_id, score, rank, candidate_source`,
one row per proposed movie, ranks 1..n per user in the order of the requested users.

Leakage safety is the caller's contract: fit on interactions strictly before the training
cut-off, already filtered. Generators double-check when given the cut-off and raise
`LeakageError` if any interaction is at or after it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from ranking.columns import END_TS, ITEM, MINUTES, RANK, SCORE, SOURCE, TIMESTAMP, USER

Exclusions: TypeAlias = Mapping[int, Collection[str]]
"""Movies not to propose, per user (typically everything the user has already watched)."""

CANDIDATE_COLUMNS: Final = (USER, ITEM, SCORE, RANK, SOURCE)
"""Columns of every generator's output, in order."""


class LeakageError(ValueError):
    """Training interactions reach the cut-off: the fit would see the future it is judged on."""


def as_utc(when: pd.Timestamp | str) -> pd.Timestamp:
    """`when` as a UTC timestamp (a naive one is read as UTC, like the log lines' times)."""
    ts = pd.Timestamp(when)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def check_before(interactions: pd.DataFrame, cutoff: pd.Timestamp | None, col_time: str = TIMESTAMP) -> None:
    """Raise LeakageError when an interaction is at or after `cutoff` (no-op when cutoff is None)."""
    if cutoff is None or interactions.empty:
        return
    latest = as_utc(pd.to_datetime(interactions[col_time], utc=True).max())
    if latest >= as_utc(cutoff):
        raise LeakageError(f"interactions reach {latest}, at or after the cut-off {cutoff}")


def require_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Raise KeyError naming the columns `frame` lacks for `what`."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"{what} needs columns {missing}; got {list(frame.columns)}")


def sessions_to_interactions(sessions: pd.DataFrame) -> pd.DataFrame:
    """Map offline-store sessions onto the interactions contract.

    A session's time is its `end_ts`: that is when the whole session is known, so filtering on
    it before a cut-off never lets minutes watched after the cut-off into training.
    """
    require_columns(sessions, (USER, ITEM, MINUTES, END_TS), "sessions_to_interactions")
    out = sessions[[USER, ITEM, END_TS, MINUTES]].rename(columns={END_TS: TIMESTAMP}).reset_index(drop=True)
    out = out.astype({USER: "int64", ITEM: str})
    return out.assign(**{TIMESTAMP: pd.to_datetime(out[TIMESTAMP], utc=True)})


def seen_items(interactions: pd.DataFrame) -> dict[int, set[str]]:
    """Every user's watched movies, the usual `exclude` argument of `recommend`."""
    if interactions.empty:
        return {}
    # On integer codes: distinct (user, movie) pairs sorted by user, then one slice per user.
    users = interactions[USER].to_numpy(dtype=np.int64)
    codes, items = pd.factorize(interactions[ITEM].astype(str))
    order = np.lexsort((codes, users))
    users, codes = users[order], codes[order]
    new_user = np.r_[True, users[1:] != users[:-1]]
    first = new_user | np.r_[True, codes[1:] != codes[:-1]]  # first row of each distinct pair
    users, names = users[first], np.asarray(items, dtype=object)[codes[first]]
    starts = np.flatnonzero(new_user[first])
    ends = np.r_[starts[1:], len(users)]
    return {
        int(u): set(names[a:b].tolist())
        for u, a, b in zip(users[starts].tolist(), starts.tolist(), ends.tolist(), strict=True)
    }


def unique_users(user_ids: Iterable[int]) -> npt.NDArray[np.int64]:
    """Requested users as int64, duplicates dropped, first-seen order kept."""
    arr = np.fromiter((int(u) for u in user_ids), dtype=np.int64)
    return pd.unique(arr) if len(arr) else arr


def exclusion_matrix(
    users: Sequence[int] | npt.NDArray[np.int64], exclude: Exclusions | None, item_index: pd.Index
) -> sp.csr_matrix:
    """Binary users x items CSR of excluded movies (rows follow `users`; unknown movies dropped)."""
    n_rows, n_items = len(users), len(item_index)
    if not exclude:
        return sp.csr_matrix((n_rows, n_items), dtype=np.float32)
    rows: list[int] = []
    items: list[str] = []
    for row, user in enumerate(users):
        excluded = exclude.get(int(user))
        if excluded:
            rows.extend([row] * len(excluded))
            items.extend(excluded)
    cols = item_index.get_indexer(pd.Index(items, dtype=object)) if items else np.empty(0, np.intp)
    keep = cols >= 0
    data = np.ones(int(keep.sum()), dtype=np.float32)
    matrix = sp.csr_matrix(
        (data, (np.asarray(rows, dtype=np.int64)[keep], cols[keep])), shape=(n_rows, n_items)
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def top_k_dense(
    scores: npt.NDArray[np.floating[Any]], k: int, min_score: float = -np.inf
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Row-wise top k of a dense score block as flat (row, column, score) arrays, best first.

    Entries at or below `min_score` (masked ones are -inf) are dropped, so rows may come back
    short. Ties go to the lower column index, which keeps results reproducible.
    """
    n_rows, n_cols = scores.shape
    k = min(k, n_cols)
    if k <= 0 or n_rows == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty.copy(), np.empty(0, dtype=np.float64)
    if k < n_cols:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(n_cols), (n_rows, n_cols))
    part_scores = np.take_along_axis(scores, part, axis=1)
    # lexsort's last key is the primary: score descending, then column ascending.
    order = np.lexsort((part, -part_scores), axis=1)
    cols = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(part_scores, order, axis=1)
    rows = np.broadcast_to(np.arange(n_rows)[:, None], cols.shape)
    keep = vals > min_score
    return rows[keep].astype(np.int64), cols[keep].astype(np.int64), vals[keep].astype(np.float64)


def candidate_frame(
    users: npt.NDArray[np.int64],
    items: npt.NDArray[Any] | Sequence[str],
    scores: npt.NDArray[np.floating[Any]],
    source: str,
) -> pd.DataFrame:
    """Build a candidate frame from flat arrays already grouped by user and sorted best first."""
    frame = pd.DataFrame(
        {
            USER: np.asarray(users, dtype=np.int64),
            ITEM: np.asarray(items, dtype=object),
            SCORE: np.asarray(scores, dtype=np.float64),
        }
    )
    frame[RANK] = frame.groupby(USER, sort=False).cumcount().to_numpy(dtype=np.int64) + 1
    frame[SOURCE] = source
    return frame


def empty_candidates() -> pd.DataFrame:
    """A candidate frame with no rows and the usual dtypes."""
    return candidate_frame(np.empty(0, np.int64), np.empty(0, object), np.empty(0), "")


def save_artifacts(
    path: str | Path, name: str, arrays: Mapping[str, npt.NDArray[Any]], meta: Mapping[str, Any]
) -> None:
    """Write `<path>/<name>.npz` (plain arrays, no pickle) and `<path>/<name>.json`, each atomically."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    npz, meta_file = folder / f"{name}.npz", folder / f"{name}.json"
    tmp_npz, tmp_json = npz.with_suffix(".npz.tmp"), meta_file.with_suffix(".json.tmp")
    with tmp_npz.open("wb") as fh:
        payload: dict[str, Any] = dict(arrays)
        np.savez(fh, allow_pickle=False, **payload)
    tmp_json.write_text(json.dumps(meta, separators=(",", ":")), encoding="utf-8")
    # Arrays first, metadata last: a reader that sees the new JSON also finds the new arrays.
    os.replace(tmp_npz, npz)
    os.replace(tmp_json, meta_file)


def load_artifacts(
    path: str | Path, name: str, expected_format: str
) -> tuple[dict[str, npt.NDArray[Any]], dict[str, Any]]:
    """Read what `save_artifacts` wrote, refusing pickled arrays and other formats."""
    folder = Path(path)
    meta: dict[str, Any] = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
    if meta.get("format") != expected_format:
        raise ValueError(f"{folder / name}.json holds {meta.get('format')!r}, expected {expected_format!r}")
    with np.load(folder / f"{name}.npz", allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    return arrays, meta
