"""Per-column drift scores between two whylogs profiles: Hellinger distance as the effect size, a test's p-value beside it.

Numbers: whylogs' Hellinger on the binned KLL sketches, and its KS p-value. Categories: the
Hellinger distance of the frequent-items shares (values beyond the sketch pooled as "other"),
and whylogs' chi-square p-value. A column is called drifted by the distance alone: with
thousands of rows every p-value is tiny, so a p-value would alarm on noise-free, harmless
differences (an hour of the day against a week), while the distance measures how much moved.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitoring.profiles import Kind, column_rows, whylogs_core

OTHER = "\x00other"
"""Pooled share of the values a frequent-items sketch did not list."""
NUMERIC_BINS = 20
"""At most this many histogram bins for a numeric Hellinger (whylogs' default of 30 at 4 values a bin is noisy)."""
VALUES_PER_BIN = 50
"""Fewer bins for smaller samples: at least this many values a bin on average.

Two samples of one distribution differ by chance: the squared Hellinger distance between them is
about (bins - 1) / 8 * (1/n1 + 1/n2), so 20 bins (or categories) and 500 values a side give ~0.1,
half the default threshold; `drift_min_rows` keeps smaller samples out."""


@dataclass(frozen=True)
class ColumnScore:
    """A column's drift score (Hellinger, 0..1) and the p-value of the matching test (None when not available)."""

    score: float
    p_value: float | None


def hellinger(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Hellinger distance of two count (or share) maps over the union of their keys; 0 identical, 1 disjoint."""
    keys = sorted(set(p) | set(q))
    a = np.array([max(float(p.get(k, 0.0)), 0.0) for k in keys])
    b = np.array([max(float(q.get(k, 0.0)), 0.0) for k in keys])
    if a.sum() <= 0 or b.sum() <= 0:
        return math.nan
    a, b = a / a.sum(), b / b.sum()
    return float(np.sqrt(max(0.0, 1.0 - float(np.sqrt(a * b).sum()))))


def frequent_counts(view: Any, column: str) -> dict[str, float]:
    """Value -> estimated count from a profile's frequent-items sketch, the remainder of non-null values as OTHER."""
    metric = view.get_column(column).get_metric("frequent_items")
    if metric is None:
        return {}
    items = metric.to_summary_dict()["frequent_strings"]
    counts = {str(i.value): float(i.est) for i in items}
    rest = column_rows(view, column) - sum(counts.values())
    if rest > 0:
        counts[OTHER] = float(rest)
    return counts


def _p(score: Any) -> float | None:
    if score is None or score.pvalue is None:
        return None
    value = float(score.pvalue)
    return None if math.isnan(value) else value


def score_column(kind: Kind, current: Any, reference: Any, column: str) -> ColumnScore | None:
    """Drift of `column` from `reference` to `current` (profile views); None when either side has no values."""
    if column_rows(current, column) == 0 or column_rows(reference, column) == 0:
        return None
    whylogs_core()  # imported with its telemetry off before the viz module
    from whylogs.viz.drift.column_drift_algorithms import KS, ChiSquare, Hellinger
    from whylogs.viz.drift.configs import HellingerConfig

    target, ref = current.get_column(column), reference.get_column(column)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # whylogs warns on empty sketches; None says it already
        if kind == "numeric":
            config = HellingerConfig(max_hist_buckets=NUMERIC_BINS, hist_avg_number_per_bucket=VALUES_PER_BIN)
            distance = Hellinger(config).calculate(target, ref)
            if distance is None:
                return None
            return ColumnScore(float(distance.statistic), _p(KS().calculate(target, ref)))
        value = hellinger(frequent_counts(current, column), frequent_counts(reference, column))
        if math.isnan(value):
            return None
        return ColumnScore(value, _p(ChiSquare().calculate(target, ref)))
