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

    target, ref = current.get_column(column), reference.get_column(column)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # whylogs warns on empty sketches; None says it already
        if kind == "numeric":
            distance = Hellinger().calculate(target, ref)
            if distance is None:
                return None
            return ColumnScore(float(distance.statistic), _p(KS().calculate(target, ref)))
        value = hellinger(frequent_counts(current, column), frequent_counts(reference, column))
        if math.isnan(value):
            return None
        return ColumnScore(value, _p(ChiSquare().calculate(target, ref)))
