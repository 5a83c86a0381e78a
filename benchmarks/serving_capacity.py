"""Capacity sweep figures for benchmarks/serving.py: one row per request rate, and the latency-vs-rate plot.

benchmarks/serving.py measures the target rate, then drives the same running service at
higher rates (`--capacity-rates`) for a shorter window each and hands the shots here. The
sweep stops at the first rate that breaks the SLA (errors, or p99 over 600 ms): beyond it the
figures only measure queueing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

SLA_MS = 600.0
"""The service's answer-time SLA."""


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def row(rate: float, shots: Any, server_cpu: dict[int, float], client_cpu: float) -> dict[str, Any]:
    """Figures of one rate: achieved rate, latency percentiles (from the scheduled send), errors, CPU."""
    lat = np.asarray(shots.latency_ms, dtype=np.float64)
    n = len(shots.errors)
    errors = sum(e is not None for e in shots.errors)
    return {
        "rate_rps": rate,
        "requests": n,
        "achieved_rps": n / shots.wall_seconds if shots.wall_seconds else float("nan"),
        "errors": errors,
        "p50_ms": _pct(lat, 50),
        "p95_ms": _pct(lat, 95),
        "p99_ms": _pct(lat, 99),
        "max_ms": float(np.max(lat)) if len(lat) else float("nan"),
        "server_cpu_percent": sum(server_cpu.values()),
        "client_cpu_percent": client_cpu,
        "within_sla": bool(errors == 0 and _pct(lat, 99) <= SLA_MS),
    }


def describe(r: dict[str, Any]) -> str:
    """One printed line per rate."""
    return (f"capacity    : {r['rate_rps']:>5g} req/s -> achieved {r['achieved_rps']:.0f}, p50 {r['p50_ms']:.2f} ms, "
            f"p95 {r['p95_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, {r['errors']} errors, server CPU "
            f"{r['server_cpu_percent']:.0f}%, client CPU {r['client_cpu_percent']:.0f}%")  # fmt: skip


def plot(rows: list[dict[str, Any]], targets: dict[str, float], cores: int, path: Path) -> Path:
    """Latency percentiles and server CPU against the offered rate (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [r["rate_rps"] for r in rows]
    fig, (ax, cpu) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, style in (("p50_ms", "o-"), ("p95_ms", "s-"), ("p99_ms", "^-")):
        ax.plot(rates, [r[key] for r in rows], style, label=key.removesuffix("_ms"))
    ax.axhline(
        targets["p50_ms"], color="tab:blue", ls=":", lw=1, label=f"p50 target {targets['p50_ms']:g} ms"
    )
    ax.axhline(
        targets["p99_ms"], color="tab:green", ls=":", lw=1, label=f"p99 target {targets['p99_ms']:g} ms"
    )
    ax.set_yscale("log")
    ax.set_xlabel("offered rate (requests/s, open loop)")
    ax.set_ylabel("latency from scheduled send (ms)")
    ax.set_title("GET /recommend latency vs load")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    cpu.plot(rates, [r["server_cpu_percent"] for r in rows], "o-", label="service (all workers)")
    cpu.plot(rates, [r["client_cpu_percent"] for r in rows], "s--", label="load generator")
    cpu.axhline(100 * cores, color="grey", ls=":", lw=1, label=f"{cores} cores")
    cpu.set_xlabel("offered rate (requests/s)")
    cpu.set_ylabel("CPU (% of one core)")
    cpu.set_title("CPU on the same machine")
    cpu.legend(fontsize=8)
    cpu.grid(True, alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
