"""Guard rails of a running experiment: each treatment arm's availability, p99 latency, fallback ratio and cost, judged.

Read from the online job's window rows (`var/monitoring/windows`, log time) since the experiment
started: one experiment runs at a time, so the arm names seen since its start are its arms.
An arm is judged over its most recent `lookback` of windows once it has `min_requests` requests
there (fewer says nothing: a handful of slow answers is noise); it breaks a rail when
- availability (answered 200 within the SLA / requests) < `availability_min`,
- the p99 latency (the highest window p99 in the lookback: a tail that broke once is a tail) > `p99_ms_max`,
- the fallback ratio (answers on path `fallback` / answered) > `fallback_ratio_max`,
- the licence cost of plays per 1,000 answered requests > `cost_per_1k_max` (when set).
The control arm is judged too, but only reported: stopping an experiment cannot fix control.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Limits:
    """The rails of one experiment (mirrors the experiment file's `guardrails`)."""

    availability_min: float = 0.99
    p99_ms_max: float = 600.0
    fallback_ratio_max: float = 0.05
    cost_per_1k_max: float | None = None
    min_requests: int = 200


@dataclass(frozen=True)
class ArmHealth:
    """One arm's figures over the lookback, and the rails it broke."""

    arm: str
    requests: int
    availability: float
    p99_ms: float
    fallback_ratio: float
    cost_per_1k: float
    judged: bool
    """Enough requests to judge."""
    breaches: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def arm_health(windows: pd.DataFrame, arms: Sequence[str], since: pd.Timestamp, lookback: pd.Timedelta,
               limits: Limits) -> list[ArmHealth]:  # fmt: skip
    """Each arm's health over the last `lookback` of windows since `since` (window rows of the online job)."""
    if windows.empty:
        return [
            ArmHealth(a, 0, float("nan"), float("nan"), float("nan"), float("nan"), False, ()) for a in arms
        ]
    start = pd.to_datetime(windows["window_start"], utc=True)
    recent = windows[(start >= since) & (start >= start.max() - lookback)]
    out = []
    for arm in arms:
        rows = recent[recent["arm"] == arm]
        requests = int(rows["requests"].sum())
        ok = int(rows["ok"].sum())
        availability = float(rows["available"].sum()) / requests if requests else float("nan")
        p99 = float(rows["latency_p99_ms"].max()) if requests else float("nan")
        fallback = int(rows.loc[rows["path"] == "fallback", "ok"].sum())
        fallback_ratio = fallback / ok if ok else float("nan")
        cost = float(rows["hit_cost_sum"].sum()) / ok * 1000.0 if ok else float("nan")
        judged = requests >= limits.min_requests
        breaches: list[str] = []
        if judged:
            if availability < limits.availability_min:
                breaches.append(f"availability {availability:.3f} < {limits.availability_min:g}")
            if p99 > limits.p99_ms_max:
                breaches.append(f"p99 {p99:.0f} ms > {limits.p99_ms_max:g} ms")
            if fallback_ratio > limits.fallback_ratio_max:
                breaches.append(f"fallback ratio {fallback_ratio:.3f} > {limits.fallback_ratio_max:g}")
            if limits.cost_per_1k_max is not None and cost > limits.cost_per_1k_max:
                breaches.append(f"cost per 1k answers {cost:.2f} > {limits.cost_per_1k_max:g} USD")
        out.append(ArmHealth(arm, requests, availability, p99, fallback_ratio, cost, judged, tuple(breaches)))
    return out


def breached(health: Sequence[ArmHealth], control: str) -> list[ArmHealth]:
    """The treatment arms (not control) that broke a rail: the reason to stop the experiment."""
    return [h for h in health if h.arm != control and h.breaches]
