"""Lines waiting to be written, bucketed by the step (chunk of simulated time) in which they are due.

A session started now writes its minutes for hours to come; the timeline keeps those future
lines in per-step buckets, so each step sorts only its own lines and the stream comes out in
time order. A line's `emit` time is its timestamp, or later for a line delivered late.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

LINE = np.dtype(
    [("emit", "i8"), ("ts", "i8"), ("user", "i8"), ("kind", "i1"), ("movie", "i4"), ("value", "i8")]
)
"""One pending line: emission and event time (ns), user id, kind, movie index, minute/rating/payload id."""

WATCH, RATE, ACCOUNT, REC = 0, 1, 2, 3
REC_TS_DIGITS = 6
"""Recommendation lines carry microseconds; watch, rate and account lines whole seconds (as course logs)."""


class Timeline:
    """Pending lines in buckets of `step_ns` starting at `origin_ns`."""

    def __init__(self, origin_ns: int, step_ns: int) -> None:
        self.origin_ns = origin_ns
        self.step_ns = step_ns
        self._buckets: dict[int, list[NDArray[np.void]]] = {}
        self._pending = 0

    def __len__(self) -> int:
        return self._pending

    def step_of(self, ts_ns: int) -> int:
        """Index of the step holding `ts_ns`."""
        return (ts_ns - self.origin_ns) // self.step_ns

    def add(self, lines: NDArray[np.void], not_before: int = 0) -> None:
        """File `lines` (dtype LINE) under the step of their `emit` time, never earlier than step `not_before`."""
        if len(lines) == 0:
            return
        lines = lines[np.argsort(lines["emit"], kind="stable")]
        steps = np.maximum((lines["emit"] - self.origin_ns) // self.step_ns, not_before)
        cuts = np.flatnonzero(np.diff(steps)) + 1
        keys = steps[np.concatenate(([0], cuts))].tolist()
        for key, part in zip(keys, np.split(lines, cuts), strict=True):
            self._buckets.setdefault(key, []).append(part)
        self._pending += len(lines)

    def pop(self, step: int) -> NDArray[np.void]:
        """The lines due in `step`, sorted by emission time (ties keep their insertion order)."""
        parts = self._buckets.pop(step, [])
        if not parts:
            return np.zeros(0, dtype=LINE)
        lines = parts[0] if len(parts) == 1 else np.concatenate(parts)
        self._pending -= len(lines)
        return lines[np.argsort(lines["emit"], kind="stable")]


def make_lines(
    ts: NDArray[np.int64],
    user: NDArray[np.int64],
    kind: int,
    movie: NDArray[np.int64],
    value: NDArray[np.int64],
) -> NDArray[np.void]:
    """Pending lines of one kind, due at their timestamp. Times are floored to the precision the
    line prints (whole seconds; microseconds for recommendation lines), so that the write order
    is also the order of the printed timestamps."""
    unit = 10 ** (9 - REC_TS_DIGITS) if kind == REC else 1_000_000_000
    ts = ts - ts % unit
    out = np.zeros(len(ts), dtype=LINE)
    out["emit"], out["ts"], out["user"], out["kind"] = ts, ts, user, kind
    out["movie"], out["value"] = movie, value
    return out
