"""`recsys operate` against drift: an operated platform and a frozen one, side by side, over simulated days.

Benchmarks only. On a running platform (history ingested, a champion serving at `serving_url`),
a second recommendation API serves the *frozen* platform: the champion of day 0 pinned by a
one-arm experiment (`frozen-champion`) in a file of its own, so no promotion reaches it. The
simulated front end (`SplitClient`) sends a stable hashed share of users to it and the rest to
the operated API, whose routing follows `recsys operate`. Both platforms share the world, the
drift, the event log and the online features (the frozen platform gets fresh features, not a
fresh model). Then, per simulated day:

1. a day of closed-loop traffic with the scheduled drift (`drift_schedule`: from `drift_day` on,
   a genre surge and a taste shift of young users toward another genre);
2. ingestion of the day's lines (offline store and online features, as a nightly job would);
3. the online metrics job until idle;
4. `operate_once` until it has started an experiment or is waiting: a judged experiment
   (promotion or discard) is followed the same day by the next retrain and challenge.

The daily online hit rate of each platform (lists answered 200 of which a listed movie was
watched within 30 minutes, `monitoring`) is what the JSON and the plot compare.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from simulator.drift import Drift, GenreSurge, TasteShift
from simulator.recommend import RecommendClient

FROZEN_EXPERIMENT = "frozen-champion"
"""The one-arm experiment pinning the frozen platform's version; its lists are the frozen platform's."""
MAX_STEPS_PER_DAY = 3
"""operate_once calls per day at most: judge, then start the next challenger (a third never needed)."""


class SplitClient(RecommendClient):
    """The front end of two platforms: a stable hashed `share` of users is sent to `other_url`."""

    def __init__(
        self, base_url: str, other_url: str, share: float, salt: str, timeout_ms: int, concurrency: int
    ) -> None:
        super().__init__(base_url, timeout_ms, concurrency)
        self.other_url, self.share, self.salt = other_url.rstrip("/"), share, salt

    def to_other(self, user_id: int) -> bool:
        """Whether `user_id` is the other platform's (a salted hash, as serving's routing does)."""
        digest = hashlib.sha256(f"{self.salt}:{user_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.share

    def url_for(self, user_id: int) -> str:
        """The frozen platform's address for its users, else the operated one's."""
        base = self.other_url if self.to_other(user_id) else self.base_url
        return f"{base}/recommend/{user_id}"


@dataclass(frozen=True)
class DriftPlan:
    """The demonstration's size and drift."""

    days: int = 14
    drift_day: int = 3
    """Day (0-based) from whose start the drifts apply."""
    sessions_per_hour: float = 400.0
    frozen_share: float = 0.5
    seed: int = 31
    surge_genre: str = "Horror"
    surge_factor: float = 4.0
    shift_genre: str = "Animation"
    shift_delta: float = 1.5


@dataclass
class DayRecord:
    """One simulated day: each platform's online hit rate and what operate did."""

    day: int
    start: str
    drift: bool
    lists_operated: int
    hits_operated: int
    lists_frozen: int
    hits_frozen: int
    champion: int | None
    actions: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def hit_rate_operated(self) -> float:
        """Hits per list answered by the operated platform."""
        return self.hits_operated / self.lists_operated if self.lists_operated else float("nan")

    @property
    def hit_rate_frozen(self) -> float:
        """Hits per list answered by the frozen platform."""
        return self.hits_frozen / self.lists_frozen if self.lists_frozen else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, hit rates included."""
        return asdict(self) | {
            "hit_rate_operated": self.hit_rate_operated,
            "hit_rate_frozen": self.hit_rate_frozen,
        }


def drift_schedule(start: datetime, plan: DriftPlan) -> list[Drift]:
    """A lasting genre surge and a taste shift of 18-29 year olds, both from the start of `plan.drift_day`."""
    at = start + timedelta(days=plan.drift_day)
    return [
        GenreSurge(start=at, genre=plan.surge_genre, factor=plan.surge_factor),
        TasteShift(start=at, genre=plan.shift_genre, delta=plan.shift_delta, min_age=18, max_age=29),
    ]


def daily_hits(impressions: Any, start: datetime, end: datetime) -> tuple[int, int, int, int]:
    """(lists, hits) of the operated, then of the frozen platform, over answered lists in [start, end)."""
    import pandas as pd

    frame = impressions[(impressions["ts"] >= pd.Timestamp(start)) & (impressions["ts"] < pd.Timestamp(end))]
    frame = frame[frame["status"] == 200]
    frozen = (frame["experiment"] == FROZEN_EXPERIMENT).to_numpy()
    hit = frame["hit"].to_numpy() > 0
    return int((~frozen).sum()), int(hit[~frozen].sum()), int(frozen.sum()), int(hit[frozen].sum())


def after_drift(days: Sequence[DayRecord], plan: DriftPlan) -> dict[str, float | int]:
    """Pooled hit rates of both platforms over the days after the drift's first full day of adaptation."""
    late = [d for d in days if d.day > plan.drift_day]
    lo, ho = sum(d.lists_operated for d in late), sum(d.hits_operated for d in late)
    lf, hf = sum(d.lists_frozen for d in late), sum(d.hits_frozen for d in late)
    out: dict[str, float | int] = {
        "hit_rate_after_drift_operated": ho / lo if lo else float("nan"),
        "hit_rate_after_drift_frozen": hf / lf if lf else float("nan"),
        "lists_after_drift_operated": lo,
        "lists_after_drift_frozen": lf,
    }
    if lo and lf:
        from monitoring.experiment_stats import two_proportions

        est = two_proportions(hf, lf, ho, lo, "hit_rate")
        out |= {
            "difference": est.effect,
            "ci_low": est.ci_low,
            "ci_high": est.ci_high,
            "p_value": est.p_value,
        }
    return out


def plot_days(days: Sequence[DayRecord], plan: DriftPlan, path: Path) -> Path:
    """Daily online hit rate of both platforms with 95% intervals; the drift's start and each end-of-day promotion marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    x = np.array([d.day for d in days])
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for label, rate, n, style, color in (
        ("operated (recsys operate daily)", [d.hit_rate_operated for d in days], [d.lists_operated for d in days],
         "o-", "tab:blue"),
        ("frozen champion of day 0", [d.hit_rate_frozen for d in days], [d.lists_frozen for d in days],
         "s--", "tab:gray"),
    ):  # fmt: skip
        p, lists = np.asarray(rate, dtype=float), np.maximum(np.asarray(n, dtype=float), 1)
        # 95% normal intervals of each day's rate: how much of a day's gap is noise.
        ax.errorbar(
            x, p, yerr=1.96 * np.sqrt(p * (1 - p) / lists), fmt=style, color=color, capsize=3, label=label
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.axvline(plan.drift_day - 0.5, color="tab:red", lw=1)
    ax.text(plan.drift_day - 0.45, ax.get_ylim()[1], f" drift: {plan.surge_genre} x{plan.surge_factor:g}, "
            f"{plan.shift_genre} +{plan.shift_delta:g} (18-29)", color="tab:red", va="top", fontsize=8)  # fmt: skip
    for d in days:
        if any(a.startswith("promoted") for a in d.actions):
            ax.annotate(f"→ v{d.champion}", (d.day, d.hit_rate_operated), textcoords="offset points",
                        xytext=(16, 6), ha="center", fontsize=8, color="tab:blue")  # fmt: skip
    ax.set_xlabel("simulated day")
    ax.set_ylabel("online hit rate (listed movie watched within 30 min)")
    ax.set_title("Champion/challenger loop vs a frozen champion under drift")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


@dataclass(frozen=True)
class DriftHooks:
    """The platform steps a day runs, injected by the caller (the benchmark wires the real ones)."""

    loop: Callable[[float, list[Drift], int], Any]
    """Run hours of closed loop with the drifts and a seed; returns `recsys.closed_loop.LoopStats`."""
    ingest: Callable[[], str]
    monitor: Callable[[], str]
    operate: Callable[[], Any]
    """One `operate_once` step; returns its `recsys.operate.Decision`."""
    impressions: Callable[[], Any]
    champion: Callable[[], int | None]
    log: Callable[[str], None] = print
    settle: Callable[[Any], str | None] = lambda decision: None
    """After the day's operate steps: wait until serving runs what the last decision started."""


def run_days(hooks: DriftHooks, plan: DriftPlan, start: datetime) -> list[DayRecord]:
    """The demonstration's days: traffic, ingestion, monitoring, operate; a record per day."""
    import time

    drifts = drift_schedule(start, plan)
    days: list[DayRecord] = []
    for day in range(plan.days):
        t0 = time.monotonic()
        loop = hooks.loop(24.0, drifts, plan.seed + day)
        hooks.log(f"day {day}: {loop.describe()}")
        hooks.log(f"day {day}: {hooks.ingest()}")
        hooks.log(f"day {day}: {hooks.monitor()}")
        actions: list[str] = []
        for _ in range(MAX_STEPS_PER_DAY):
            decision = hooks.operate()
            actions.append(f"{decision.action}: {decision.reason}")
            hooks.log(f"day {day}: operate: {decision.summary()}")
            if decision.action not in ("promoted", "discarded", "guard_stopped"):
                break
        # A simulated day runs in seconds of wall time: without this wait a new challenger can miss
        # the whole next day (serving picks the file up within 5 s and loads the model after).
        if (settled := hooks.settle(decision)) is not None:
            hooks.log(f"day {day}: {settled}")
        lo, ho, lf, hf = daily_hits(hooks.impressions(), _utc(loop.sim_start_ns), _utc(loop.sim_end_ns))
        record = DayRecord(day, _utc(loop.sim_start_ns).isoformat(), day >= plan.drift_day, lo, ho, lf, hf,
                           hooks.champion(), actions, round(time.monotonic() - t0, 1))  # fmt: skip
        hooks.log(f"day {day}: hit rate operated {record.hit_rate_operated:.4f} ({lo:,} lists), "
                  f"frozen {record.hit_rate_frozen:.4f} ({lf:,} lists); champion v{record.champion}")  # fmt: skip
        days.append(record)
    return days


def _utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)
