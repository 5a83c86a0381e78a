"""Per-user top-k over a 20,000-movie vocabulary without touching all 20,000 scores: the request path's kernels.

`CandidateIndex.candidates` runs once per request. Dense passes over the whole vocabulary (a
copy, a mask, a partition per generator) cost ~1 ms of CPU a request at 20K movies; these
helpers do the same selections on what a user actually touches: a precomputed popularity
order skipped past the user's seen movies, and the item-item rows of their recent watches.
Every function is pure and returns what the dense version returned, ties included (best
score first, ties to the smaller vocabulary position).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def top(scores: npt.NDArray[Any], k: int) -> I64:
    """Positions of the k best finite scores, best first, ties to the smaller position."""
    k = min(k, len(scores))
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    kth = -np.partition(-scores, k - 1)[k - 1] if k < len(scores) else -np.inf
    # Every position tied with the k-th best, not argpartition's arbitrary pick among them.
    best = np.flatnonzero(scores >= kth) if np.isfinite(kth) else np.flatnonzero(np.isfinite(scores))
    best = best[np.isfinite(scores[best])]
    return np.asarray(best[np.lexsort((best, -scores[best]))][:k], dtype=np.int64)


def top_outside(order: I64, blocked: npt.NDArray[np.bool_], k: int) -> I64:
    """The first k of a precomputed best-first `order` whose `blocked` flag is off.

    Equals `top(scores with the blocked set to -inf, k)` when `order = top(scores, len(scores))`,
    in O(k + blocked count) instead of a pass over every score.
    """
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    head = order[: k + int(np.count_nonzero(blocked))]
    return np.asarray(head[~blocked[head]][:k], dtype=np.int64)


def rows_weighted_sum(
    indptr: npt.NDArray[Any], indices: npt.NDArray[Any], data: npt.NDArray[Any], rows: I64, weights: F64
) -> tuple[I64, F64]:
    """Σ_i weights[i] · matrix[rows[i]] of a CSR matrix, as (sorted columns with an entry, their sums).

    The sparse form of `matrix[rows].T @ weights`: only the columns some row touches, so the
    cost follows the rows' entries, not the matrix width.
    """
    take, lengths = _entries(indptr, rows)
    cols = indices[take].astype(np.int64)
    vals = data[take].astype(np.float64) * np.repeat(np.asarray(weights, dtype=np.float64), lengths)
    columns, inverse = np.unique(cols, return_inverse=True)
    sums: F64 = np.bincount(inverse.ravel(), weights=vals, minlength=len(columns)).astype(np.float64)
    return columns, sums


def rows_max_at(
    indptr: npt.NDArray[Any],
    indices: npt.NDArray[Any],
    data: npt.NDArray[Any],
    rows: I64,
    at: I64,
    width: int,
) -> F64:
    """max over `rows` of matrix[row, at] of a CSR matrix with non-negative entries (absent: 0).

    The sparse form of `matrix[rows][:, at].todense().max(axis=0)`.
    """
    take, _ = _entries(indptr, rows)
    dense = np.zeros(width, dtype=np.float64)
    vals = data[take].astype(np.float64)
    order = np.argsort(
        vals, kind="stable"
    )  # ascending: where a column repeats, the last (largest) write stays
    dense[indices[take][order]] = vals[order]
    return dense[at]


def _entries(indptr: npt.NDArray[Any], rows: I64) -> tuple[I64, I64]:
    """Positions in `indices`/`data` of every entry of the given CSR rows (row by row), and each row's length."""
    rows = np.asarray(rows, dtype=np.int64)
    starts = indptr[rows].astype(np.int64)
    lengths = indptr[rows + 1].astype(np.int64) - starts
    ends = np.cumsum(lengths)
    take = np.arange(int(ends[-1]) if len(ends) else 0, dtype=np.int64) + np.repeat(
        starts - (ends - lengths), lengths
    )
    return take, lengths


def lookup(keys: I64, values: npt.NDArray[Any] | None, at: I64) -> F64:
    """values[i] where keys[i] == at[j], for each j; -inf where `at[j]` is not a key (sorted `keys`; None: no values)."""
    out = np.full(len(at), -np.inf)
    if values is None or not len(keys):
        return out
    j = np.minimum(np.searchsorted(keys, at), len(keys) - 1)
    hit = keys[j] == at
    out[hit] = values[j[hit]]
    return out
