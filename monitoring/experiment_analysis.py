"""The analysis of one A/B experiment from the online job's impressions: per-arm metrics, effects, SRM, MDE, decision.

Every treatment arm is compared with control on per-user values (`monitoring.experiment_data`):

- `hit_rate`: users with any hit / users exposed (per user, not per request: requests of one user
  are not independent), two-proportion z-test with a Newcombe CI.
- `watch_minutes`: minutes of recommended watches per user, Welch p-value and bootstrap CI; and
  `watch_minutes_cuped`, the same adjusted by each user's pre-period minutes (when sessions exist).
- `rating`: mean stars per rating user of credited ratings, Welch.
- `cost_per_recommendation` (USD per priced list) and `cost_per_watch` (USD per hit), ratios of
  per-user sums: delta method.

Decision, on the primary metric: "too few users" while an arm has fewer than `min_users`; then
"invalid (SRM)" when the users per arm do not fit the weights (chi-square, p < 0.001); then a
treatment wins (or loses) when the always-valid mSPRT p-value is below alpha and the CI lies on
one side of 0 (a cost metric wins downwards). Several treatments: a win of any is reported.

Looks: each call is one look on the cumulative data. The mSPRT p-value 1/Λ_n of the current data
is valid at any stopping time (Ville's inequality), so `status` may run as often as wanted; it is
not the running minimum over past looks (no state is kept), which only makes it conservative.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from monitoring import experiment_stats as S  # noqa: N812
from monitoring import power
from monitoring.experiment_data import ExperimentData, load, window_of
from monitoring.experiment_plot import render_table
from monitoring.interleave_analysis import InterleaveResult, analyze_interleaving
from monitoring.sequential import msprt_p_value

__all__ = ["ExperimentResult", "InterleaveResult", "analyze", "analyze_interleaving", "render_table"]

METRICS: Final = (
    "hit_rate", "watch_minutes", "watch_minutes_cuped", "rating", "cost_per_recommendation", "cost_per_watch",
)  # fmt: skip
"""Metrics compared per treatment arm (keys of `Comparison.estimates`)."""
LOWER_IS_BETTER: Final = frozenset({"cost_per_recommendation", "cost_per_watch"})
MIN_USERS: Final = 100
"""Users per arm below which no decision is made: the normal approximations need some mass."""
EXPECTED_LIFT: Final = 0.1
"""mSPRT mixing scale: τ = 10% of the control value, the size of effect the test is tuned to find."""
F64 = npt.NDArray[np.float64]


def _clean(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


@dataclass(frozen=True)
class ArmSummary:
    """One arm's users and per-user means."""

    arm: str
    users: int
    requests: int
    hit_rate: float
    watch_minutes: float
    rating_users: int
    rating: float
    cost_per_recommendation: float
    cost_per_watch: float


@dataclass(frozen=True)
class Comparison:
    """One treatment against control: every metric's estimate, and the primary metric's sequential p and MDE."""

    treatment: str
    estimates: Mapping[str, S.Estimate]
    always_valid_p: float
    mde: float
    """Smallest absolute effect on the primary metric these arm sizes detect with 80% power."""
    decision: str


@dataclass(frozen=True)
class ExperimentResult:
    """The analysis of one experiment: arms, SRM check, comparisons with control, and the decision."""

    experiment: str
    control: str
    primary_metric: str
    alpha: float
    started_at: datetime | None
    stopped_at: datetime | None
    arms: tuple[ArmSummary, ...]
    srm: S.SampleRatio
    comparisons: tuple[Comparison, ...]
    decision: str
    winner: str | None
    several_arms: int
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (NaN -> None, times ISO)."""
        record: dict[str, Any] = {
            "experiment": self.experiment, "control": self.control, "primary_metric": self.primary_metric,
            "alpha": self.alpha, **window_of(self.started_at, self.stopped_at),
            "decision": self.decision, "winner": self.winner, "several_arms": self.several_arms,
            "srm": {"ok": self.srm.ok, "p_value": self.srm.p_value, "chi2": self.srm.chi2,
                    "counts": dict(self.srm.counts), "expected_share": dict(self.srm.expected)},
            "arms": [asdict(a) for a in self.arms],
            "comparisons": [
                {"treatment": c.treatment, "decision": c.decision, "always_valid_p": c.always_valid_p,
                 "mde": c.mde, "estimates": {k: e.to_dict() for k, e in c.estimates.items()}}
                for c in self.comparisons
            ],
            "notes": list(self.notes),
        }  # fmt: skip
        out = _clean(record)
        assert isinstance(out, dict)
        return out


def _ratio(num: pd.Series, den: pd.Series) -> float:
    total = float(den.sum())
    return float(num.sum()) / total if total else math.nan


def _summary(arm: str, u: pd.DataFrame) -> ArmSummary:
    rated = u["rating"].dropna()
    return ArmSummary(
        arm, len(u), int(u["requests"].sum()), float(u["hit"].mean()) if len(u) else math.nan,
        float(u["watch_minutes"].mean()) if len(u) else math.nan, len(rated),
        float(rated.mean()) if len(rated) else math.nan, _ratio(u["list_cost"], u["lists_priced"]),
        _ratio(u["hit_cost"], u["hits"]),
    )  # fmt: skip


def _linearised(num: F64, den: F64) -> F64:
    """Per-user values whose mean is the ratio and whose variance is its delta-method variance (x n)."""
    ratio, mean_den = num.sum() / den.sum(), den.mean()
    out: F64 = ratio + (num - ratio * den) / mean_den
    return out


def _values(u: pd.DataFrame, metric: str) -> F64:
    """Per-user observations of a metric, the input of the mSPRT and the MDE."""
    if metric == "hit_rate":
        return u["hit"].to_numpy(np.float64)
    if metric in ("watch_minutes", "watch_minutes_cuped"):
        return u["watch_minutes"].to_numpy(np.float64)
    if metric == "rating":
        return u["rating"].dropna().to_numpy(np.float64)
    num, den = ("list_cost", "lists_priced") if metric == "cost_per_recommendation" else ("hit_cost", "hits")
    return _linearised(u[num].to_numpy(np.float64), u[den].to_numpy(np.float64))


def _pair(c: pd.DataFrame, t: pd.DataFrame, metric: str) -> tuple[F64, F64]:
    cv, tv = _values(c, metric), _values(t, metric)
    if metric == "watch_minutes_cuped":  # the same shared θ and centre as `experiment_stats.cuped`
        cx, tx = c["pre_minutes"].to_numpy(np.float64), t["pre_minutes"].to_numpy(np.float64)
        xs = np.concatenate([cx, tx])
        theta, centre = S.cuped_theta(np.concatenate([cv, tv]), xs), float(xs.mean())
        cv, tv = cv - theta * (cx - centre), tv - theta * (tx - centre)
    return cv, tv


def _estimates(c: pd.DataFrame, t: pd.DataFrame, data: ExperimentData, alpha: float) -> dict[str, S.Estimate]:
    out: dict[str, S.Estimate] = {}
    out["hit_rate"] = S.two_proportions(int(c["hit"].sum()), len(c), int(t["hit"].sum()), len(t), alpha=alpha)
    cm, tm = c["watch_minutes"].to_numpy(np.float64), t["watch_minutes"].to_numpy(np.float64)
    out["watch_minutes"] = S.bootstrap_diff(cm, tm, "watch_minutes", alpha=alpha)
    if data.pre_period:
        cx, tx = c["pre_minutes"].to_numpy(np.float64), t["pre_minutes"].to_numpy(np.float64)
        out["watch_minutes_cuped"] = S.cuped(cm, cx, tm, tx, "watch_minutes_cuped", alpha=alpha)
    cr, tr = c["rating"].dropna(), t["rating"].dropna()
    if len(cr) >= 2 and len(tr) >= 2:
        out["rating"] = S.welch(cr, tr, "rating", alpha=alpha)
    for metric, num, den in (("cost_per_recommendation", "list_cost", "lists_priced"),
                             ("cost_per_watch", "hit_cost", "hits")):  # fmt: skip
        if c[den].sum() > 0 and t[den].sum() > 0:
            out[metric] = S.ratio_delta(c[num], c[den], t[num], t[den], metric, alpha=alpha)
    return out


def _mde(metric: str, est: S.Estimate, c: F64, t: F64, alpha: float) -> float:
    if metric == "hit_rate" and 0 < est.control < 1:
        return power.mde(len(c), len(t), baseline_rate=est.control, alpha=alpha)
    if metric in ("watch_minutes", "rating") and len(c) > 1 and len(t) > 1:
        sd = math.sqrt((np.var(c, ddof=1) + np.var(t, ddof=1)) / 2)
        return power.mde(len(c), len(t), sd=sd, alpha=alpha) if sd > 0 else math.nan
    # CUPED and ratios: from the estimate's own standard error (its CI is ±z·se).
    z = float(stats.norm.ppf(1 - alpha / 2))
    se = (est.ci_high - est.ci_low) / (2 * z)
    return (z + float(stats.norm.ppf(0.8))) * se


def _always_valid_p(c: F64, t: F64) -> float:
    if len(c) < 2 or len(t) < 2:
        return 1.0
    var_c, var_t = float(np.var(c, ddof=1)), float(np.var(t, ddof=1))
    per_arm = var_c / len(c) + var_t / len(t)
    var = var_c + var_t
    n = var / per_arm if per_arm > 0 else float(min(len(c), len(t)))
    scale = abs(float(c.mean())) or math.sqrt(var)  # a control at 0: scale τ by the spread instead
    tau2 = (EXPECTED_LIFT * scale) ** 2 if scale > 0 else 1.0
    return msprt_p_value(float(t.mean() - c.mean()), var, n, tau2)


def _decide(metric: str, est: S.Estimate | None, p: float, alpha: float) -> str:
    if est is None or not p < alpha:
        return "no significant difference"
    up = est.ci_low > 0
    down = est.ci_high < 0
    if not (up or down):
        return "no significant difference"
    better = down if metric in LOWER_IS_BETTER else up
    return "treatment wins" if better else "control wins"


def analyze(
    var: Path,
    experiment: str,
    arms: Sequence[str],
    weights: Mapping[str, float],
    control: str,
    started_at: datetime | None,
    stopped_at: datetime | None,
    primary_metric: str = "hit_rate",
    alpha: float = 0.05,
    pre_days: float = 14.0,
    min_users: int = MIN_USERS,
    path: str | None = None,
) -> ExperimentResult:
    """Analyse `experiment` over [started_at, stopped_at) (None: open end) from the files under `var`.

    `path` (e.g. `cold_start`) restricts the analysis to the lists that path answered (None: all).
    """
    if primary_metric not in METRICS:
        raise ValueError(f"primary_metric must be one of {METRICS}, got {primary_metric!r}")
    if control not in arms:
        raise ValueError(f"control {control!r} is not one of the arms {list(arms)}")
    data = load(var, experiment, started_at, stopped_at, pre_days, path)
    users = data.users
    by_arm = {a: users[users["arm"] == a] for a in arms}
    counts = {str(a): int(n) for a, n in users["arm"].value_counts().items()}
    srm = S.srm_check({a: counts.get(a, 0) for a in arms} | counts, weights)
    notes = [] if data.pre_period else ["no session files for the pre-period: CUPED skipped"]
    if path is not None:
        notes.append(f"only lists answered by path {path!r}")
    comparisons: list[Comparison] = []
    c = by_arm[control]
    enough = all(len(u) >= min_users for u in by_arm.values())
    for arm in arms:
        if arm == control or not enough:
            continue
        t = by_arm[arm]
        est = _estimates(c, t, data, alpha)
        primary = est.get(primary_metric)
        cv, tv = _pair(c, t, primary_metric)
        p = _always_valid_p(cv, tv) if primary is not None else 1.0
        mde = _mde(primary_metric, primary, cv, tv, alpha) if primary is not None else math.nan
        comparisons.append(Comparison(arm, est, p, mde, _decide(primary_metric, primary, p, alpha)))
    winner: str | None = None
    if not enough:
        decision = "too few users"
    elif not srm.ok:
        decision = "invalid (SRM)"
    elif wins := [x.treatment for x in comparisons if x.decision == "treatment wins"]:
        decision, winner = "treatment wins", wins[0]
    elif any(x.decision == "control wins" for x in comparisons):
        decision, winner = "control wins", control
    else:
        decision = "no significant difference"
    return ExperimentResult(
        experiment, control, primary_metric, alpha, data.started_at, data.stopped_at,
        tuple(_summary(a, by_arm[a]) for a in arms), srm, tuple(comparisons), decision, winner,
        data.several_arms, tuple(notes),
    )  # fmt: skip
