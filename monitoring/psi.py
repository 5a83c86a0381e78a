"""Population stability index and mean shift of one column, served against training: the skew check's arithmetic.

Bins come from the training values alone, so a served distribution is judged on the grid the
model learned on:

- a column with at most `bins` distinct finite training values (flags, ranks of a short list,
  a constant) gets one bin per value plus an `other` bin for served values training never had
  (a constant that moved is caught, which quantile bins of a constant cannot do);
- otherwise `bins` quantile bins of the finite training values (cut points de-duplicated, so
  point masses such as a missing rank's sentinel stay one bin); values beyond the training
  range fall into the outer bins;
- NaN (missing) is always a bin of its own: a feature that is missing at serving time and
  present in training is a skew, not a hole in the data.

PSI = sum over bins of (s - t) * ln(s / t), with shares floored at `EPSILON` so an empty bin on
one side gives a large, finite term. Rules of thumb: < 0.1 stable, 0.1 to 0.25 a moderate shift,
> 0.25 a large one (the threshold is `MonitorSettings.skew_psi_threshold`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

BINS: Final = 10
"""Quantile bins of a continuous column (and the most distinct values a column may have to be binned by value)."""
EPSILON: Final = 1e-4
"""Smallest share a bin counts with (an empty bin would make ln(s / t) infinite)."""
MAX_SHIFT: Final = 1e6
"""Mean shifts are clipped to this many training standard deviations (a constant training column has std 0)."""

F64 = npt.NDArray[np.float64]


def bin_shares(train: F64, served: F64, bins: int = BINS) -> tuple[F64, F64]:
    """Shares of the training and served values in the bins the training values define (NaN bin last)."""
    t_fin, s_fin = train[np.isfinite(train)], served[np.isfinite(served)]
    values = np.unique(t_fin)
    if len(values) <= bins:
        # One bin per training value, then `other`: served values training never had.
        def by_value(v: F64) -> npt.NDArray[np.int64]:
            if not len(values):  # no finite training value: every finite served value is `other`
                return np.zeros(len(v), dtype=np.int64)
            pos = np.searchsorted(values, v)
            hit = (pos < len(values)) & (values[np.minimum(pos, len(values) - 1)] == v)
            return np.where(hit, pos, len(values)).astype(np.int64)

        n_bins = len(values) + 1
        t_bin, s_bin = by_value(t_fin), by_value(s_fin)
    else:
        cuts = np.unique(np.quantile(t_fin, np.linspace(0.0, 1.0, bins + 1)[1:-1], method="inverted_cdf"))
        n_bins = len(cuts) + 1
        t_bin = np.searchsorted(cuts, t_fin, side="right")
        s_bin = np.searchsorted(cuts, s_fin, side="right")

    def shares(bin_of: npt.NDArray[np.int64], n_nan: int, n: int) -> F64:
        counts = np.bincount(bin_of, minlength=n_bins).astype(np.float64)
        return np.append(counts, float(n_nan)) / max(n, 1)

    return (
        shares(t_bin, len(train) - len(t_fin), len(train)),
        shares(s_bin, len(served) - len(s_fin), len(served)),
    )


def psi(train: npt.ArrayLike, served: npt.ArrayLike, bins: int = BINS) -> float:
    """Population stability index of the served values against the training values (0: the same shares)."""
    t, s = bin_shares(np.asarray(train, dtype=np.float64), np.asarray(served, dtype=np.float64), bins)
    t, s = np.maximum(t, EPSILON), np.maximum(s, EPSILON)
    return float(np.sum((s - t) * np.log(s / t)))


@dataclass(frozen=True)
class ColumnSkew:
    """One column's comparison: PSI, each side's mean (None when it has no finite value) and the shift."""

    psi: float
    mean_train: float | None
    mean_served: float | None
    mean_shift: float
    """(served mean - training mean) / training std; 0 when either side has no finite value."""
    nan_train: float
    """Share of missing (NaN) training values."""
    nan_served: float
    """Share of missing (NaN) served values."""


def _mean(values: F64) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else None


def compare_column(train: npt.ArrayLike, served: npt.ArrayLike, bins: int = BINS) -> ColumnSkew:
    """PSI, means, mean shift in training standard deviations and missing shares of one column."""
    t = np.asarray(train, dtype=np.float64)
    s = np.asarray(served, dtype=np.float64)
    m_t, m_s = _mean(t), _mean(s)
    shift = 0.0
    if m_t is not None and m_s is not None:
        std = float(np.std(t[np.isfinite(t)]))
        diff = m_s - m_t
        shift = diff / std if std > 0 else (0.0 if diff == 0 else float(np.sign(diff)) * MAX_SHIFT)
        shift = float(np.clip(shift, -MAX_SHIFT, MAX_SHIFT))
    nan_t = float(np.mean(~np.isfinite(t))) if len(t) else 0.0
    nan_s = float(np.mean(~np.isfinite(s))) if len(s) else 0.0
    return ColumnSkew(psi(t, s, bins), m_t, m_s, shift, nan_t, nan_s)
