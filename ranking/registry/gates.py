"""Promotion gates: a candidate's offline figures against the champion's under the configured thresholds.

The gates compare figures only, so they judge a baseline policy's version exactly as a
ranker's: both are registered with the same metrics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ranking.settings import RankSettings

NDCG20: Final = "ndcg20"
"""Offline NDCG@20 (higher is better)."""
COST20: Final = "cost20"
"""Mean license cost (USD per play) over the top 20 (lower is better)."""
P99_MS: Final = "p99_ms"
"""p99 latency of scoring one request, in ms."""
_EPS = 1e-9  # float noise: 0.30 - 0.02 is 0.27999999999999997


@dataclass(frozen=True)
class GateCheck:
    """One promotion gate and its verdict; `detail` names the metric and the figures."""

    metric: str
    passed: bool
    detail: str


def _finite(metrics: Mapping[str, float] | None, key: str) -> float | None:
    value = None if metrics is None else metrics.get(key)
    return value if value is not None and math.isfinite(value) else None


def check_gates(
    candidate: Mapping[str, float], champion: Mapping[str, float] | None, settings: RankSettings
) -> list[GateCheck]:
    """Compare a candidate's metrics with the champion's under the configured thresholds."""
    checks: list[GateCheck] = []
    for key, higher_is_better, allowed, rule in (
        (NDCG20, True, settings.max_ndcg_regression, "absolute drop"),
        (COST20, False, settings.max_cost_increase, "relative rise"),
    ):
        value, base = _finite(candidate, key), _finite(champion, key)
        if value is None:
            checks.append(GateCheck(key, False, f"candidate has no finite {key} metric"))
        elif base is None:
            checks.append(GateCheck(key, True, f"{key} {value:.4f}: no champion figure to compare with"))
        else:
            limit = base - allowed if higher_is_better else base * (1 + allowed)
            ok = value >= limit - _EPS if higher_is_better else value <= limit + _EPS
            detail = (
                f"{key} {value:.4f} vs champion {base:.4f} ({allowed:g} {rule} allowed, limit {limit:.4f})"
            )
            checks.append(GateCheck(key, ok, detail))
    p99 = _finite(candidate, P99_MS)
    if p99 is None:
        checks.append(GateCheck(P99_MS, False, f"candidate has no finite {P99_MS} metric"))
    else:
        ok = p99 <= settings.max_p99_ms + _EPS
        checks.append(GateCheck(P99_MS, ok, f"{P99_MS} {p99:.1f} ms (ceiling {settings.max_p99_ms:g} ms)"))
    return checks
