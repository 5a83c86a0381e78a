"""Renderings of an experiment's result: the terminal table (rich) and a PNG forest plot of effects with CIs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

if TYPE_CHECKING:  # experiment_analysis re-exports these helpers; only the type is needed here
    from monitoring.experiment_analysis import ExperimentResult


def _fmt(value: float, digits: int = 4) -> str:
    return "–" if not math.isfinite(value) else f"{value:.{digits}g}"


def render_table(result: ExperimentResult) -> Table:
    """One row per (treatment, metric): control, treatment, effect, CI, p-value; the caption holds the decision."""
    srm = "ok" if result.srm.ok else "MISMATCH"
    users = ", ".join(f"{a.arm} {a.users:,}" for a in result.arms)
    table = Table(
        title=f"{result.experiment}: {result.decision}",
        caption=f"users {users}; SRM {srm} (p={result.srm.p_value:.3g}); primary {result.primary_metric}",
    )
    for name in ("arm", "metric", "control", "treatment", "effect", "CI", "p", "always-valid p", "MDE"):
        table.add_column(name, justify="left" if name in ("arm", "metric") else "right")
    for comp in result.comparisons:
        for metric, est in comp.estimates.items():
            primary = metric == result.primary_metric
            table.add_row(
                comp.treatment, f"[bold]{metric}[/bold]" if primary else metric, _fmt(est.control),
                _fmt(est.treatment), _fmt(est.effect), f"[{_fmt(est.ci_low)}, {_fmt(est.ci_high)}]",
                _fmt(est.p_value, 3), _fmt(comp.always_valid_p, 3) if primary else "",
                _fmt(comp.mde) if primary else "",
            )  # fmt: skip
    return table


def plot_arms(result: ExperimentResult, path: Path) -> Path:
    """A forest plot (PNG): each metric's relative effect with its CI, one marker per treatment arm."""
    import matplotlib

    matplotlib.use("Agg")  # no display: written by a CLI, a test or the scheduler
    import matplotlib.pyplot as plt

    rows = [(c.treatment, m, e) for c in result.comparisons for m, e in c.estimates.items()]
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.45 * max(1, len(rows))))
    try:
        for y, (_, metric, est) in enumerate(reversed(rows)):
            # Relative to control so minutes, stars and dollars share one axis.
            scale = abs(est.control) if est.control else 1.0
            lo, mid, hi = est.ci_low / scale, est.effect / scale, est.ci_high / scale
            colour = "tab:red" if metric == result.primary_metric else "tab:blue"
            ax.errorbar([mid], [y], xerr=[[mid - lo], [hi - mid]], fmt="o", color=colour, capsize=3)
        ax.set_yticks(range(len(rows)), [f"{arm}: {m}" for arm, m, _ in reversed(rows)])
        ax.axvline(0, color="grey", linewidth=0.8)
        ax.set_xlabel(f"effect relative to {result.control} (95% CI)" if rows else "no comparison")
        srm = "SRM ok" if result.srm.ok else "SRM MISMATCH"
        ax.set_title(
            f"{result.experiment}: {result.decision}\n({srm}, p={result.srm.p_value:.3g})", fontsize=10
        )
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path
