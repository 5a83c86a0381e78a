"""Fairness and exposure figures as pure functions: user groups, per-group rates with intervals, Gini, deciles.

Used by `benchmarks/risk.py` (docs/risk-analysis.md) on what the running platform logged: the
online job's impressions (one row per answered list, with its user and whether a listed movie was
watched within the hit window), the recommendation lines' result lists and the watch sessions.

Conventions:
- Groups come from the user's own metadata (age, gender, occupation) as the metadata API reports
  it; occupations (21 MovieLens values) are folded into six groups so each holds enough users.
- A rate over lists is clustered by user: the same user's lists are not independent (a user who
  likes what the platform shows hits again and again), so the interval is the delta-method
  interval of a ratio of per-user sums, the same estimator the experiment analysis uses for ratio
  metrics (`monitoring.experiment_stats.ratio_delta`).
- Popularity deciles rank the whole catalogue (movies never watched included) by a count, most
  popular first: decile 1 holds the top 10% of movies. Ties break by movie id, so deciles are
  reproducible.
- Gini is over the catalogue's movies, zeros included: 0 when every movie is recommended equally
  often, close to 1 when a few movies take every slot.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

Z95: Final = 1.959963984540054
"""Two-sided 95% normal quantile."""

AGE_BANDS: Final = ((0, 18, "<18"), (18, 25, "18-24"), (25, 35, "25-34"), (35, 50, "35-49"),
                    (50, 65, "50-64"), (65, 200, "65+"))  # fmt: skip
"""[low, high) age bands and their labels, in display order."""

OCCUPATION_GROUPS: Final[Mapping[str, str]] = {
    "K-12 student": "student", "college/grad student": "student",
    "academic/educator": "professional", "doctor/health care": "professional",
    "executive/managerial": "professional", "lawyer": "professional", "programmer": "professional",
    "scientist": "professional", "technician/engineer": "professional",
    "artist": "creative", "writer": "creative",
    "clerical/admin": "service/trade", "customer service": "service/trade", "sales/marketing": "service/trade",
    "tradesman/craftsman": "service/trade", "farmer": "service/trade", "self-employed": "service/trade",
    "homemaker": "not employed", "retired": "not employed", "unemployed": "not employed",
    "other or not specified": "other",
}  # fmt: skip
"""The 21 MovieLens occupations folded into six groups (an unknown value is `other`)."""

GROUPINGS: Final = ("age_group", "gender", "occupation_group")
"""The columns of `user_groups` that split users."""


def age_group(age: int) -> str:
    """The label of the age band holding `age` (`unknown` for a negative age)."""
    for low, high, label in AGE_BANDS:
        if low <= age < high:
            return label
    return "unknown"


def occupation_group(occupation: str) -> str:
    """The group of a MovieLens occupation; `other` for anything not in the list."""
    return OCCUPATION_GROUPS.get(occupation, "other")


def user_groups(users: pd.DataFrame) -> pd.DataFrame:
    """One row per user (index `user_id`): `age_group`, `gender`, `occupation_group` from age/gender/occupation."""
    return pd.DataFrame(
        {
            "age_group": [age_group(int(a)) for a in users["age"]],
            "gender": users["gender"].astype(str).to_numpy(),
            "occupation_group": [occupation_group(str(o)) for o in users["occupation"]],
        },
        index=pd.Index(users["user_id"].to_numpy(dtype=np.int64), name="user_id"),
    )


def group_order(grouping: str, labels: Iterable[str]) -> list[str]:
    """Display order of a grouping's labels: age bands youngest first, others alphabetical."""
    present = set(labels)
    if grouping == "age_group":
        return [b[2] for b in AGE_BANDS if b[2] in present] + sorted(present - {b[2] for b in AGE_BANDS})
    return sorted(present)


@dataclass(frozen=True)
class GroupRate:
    """A rate of one group with its 95% interval (clustered by user)."""

    group: str
    users: int
    trials: int
    successes: int
    rate: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def clustered_rate(successes: npt.ArrayLike, trials: npt.ArrayLike) -> tuple[float, float, float]:
    """sum(successes) / sum(trials) over users and its 95% delta-method interval, users as the units.

    `successes[i]` and `trials[i]` are user i's counts. NaNs when there are no trials; with a
    single user the interval is the rate itself (no spread to estimate). Clipped to [0, 1].
    """
    s, t = np.asarray(successes, dtype=np.float64), np.asarray(trials, dtype=np.float64)
    total = float(t.sum())
    if total <= 0:
        return math.nan, math.nan, math.nan
    rate = float(s.sum()) / total
    n = len(t)
    if n < 2:
        return rate, rate, rate
    # Var(sum(s) / sum(t)) ~ sum((s_i - r t_i)^2) / sum(t)^2, with the n / (n - 1) small-sample factor.
    var = float(np.sum((s - rate * t) ** 2)) / total**2 * n / (n - 1)
    half = Z95 * math.sqrt(var)
    return rate, max(0.0, rate - half), min(1.0, rate + half)


def group_rates(rows: pd.DataFrame, groups: pd.Series, success: str = "hit") -> list[GroupRate]:
    """Per group of `groups` (user_id -> label): share of `rows` (one per trial, `user_id`, `success`) that succeeded.

    Rows of users without a group are left out.
    """
    per_user = rows.groupby("user_id")[success].agg(["sum", "count"])
    label = groups.reindex(per_user.index)
    per_user = per_user[label.notna().to_numpy()]
    label = label.dropna()
    out = []
    for g in sorted(set(label)):
        part = per_user[(label == g).to_numpy()]
        rate, low, high = clustered_rate(part["sum"].to_numpy(), part["count"].to_numpy())
        out.append(
            GroupRate(str(g), len(part), int(part["count"].sum()), int(part["sum"].sum()), rate, low, high)
        )
    return out


def mean_interval(values: npt.ArrayLike) -> tuple[float, float, float]:
    """Mean and its 95% normal interval (NaNs when empty; the mean itself when one value)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if len(v) < 2:
        return mean, mean, mean
    half = Z95 * float(v.std(ddof=1)) / math.sqrt(len(v))
    return mean, mean - half, mean + half


def gini(counts: npt.ArrayLike) -> float:
    """Gini coefficient of non-negative counts (0: all equal; (n-1)/n: one item has everything); NaN if all 0."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    if len(x) == 0 or x.sum() <= 0:
        return math.nan
    if (x < 0).any():
        raise ValueError("gini needs non-negative counts")
    n = len(x)
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(2.0 * np.sum(ranks * x) / (n * x.sum()) - (n + 1.0) / n)


def catalogue_counts(items: pd.Series | Iterable[str], catalogue: Iterable[str]) -> pd.Series:
    """How often each catalogue movie occurs in `items` (0 for those that never do); items outside it are dropped."""
    index = pd.Index(sorted(set(catalogue)), name="movie_id")
    counts = pd.Series(items, dtype=object).value_counts()
    return counts.reindex(index, fill_value=0).astype(np.int64)


def popularity_deciles(counts: pd.Series) -> pd.Series:
    """Decile (1 = the most popular 10% of movies, 10 = the least) of every movie in `counts` (index: movie id)."""
    if counts.empty:
        return pd.Series(dtype=np.int64)
    frame = pd.DataFrame({"movie_id": counts.index.astype(str), "n": counts.to_numpy()})
    frame = frame.sort_values(["n", "movie_id"], ascending=[False, True], kind="stable")
    position = np.arange(len(frame))
    deciles = position * 10 // len(frame) + 1
    return pd.Series(deciles.astype(np.int64), index=frame["movie_id"].to_numpy(), name="decile")


def decile_exposure(slots: pd.Series, watches: pd.Series, deciles: pd.Series) -> pd.DataFrame:
    """Per popularity decile: movies, share of recommendation slots, share of watches (movies outside `deciles` dropped).

    `slots` holds one movie id per recommended slot, `watches` one per watch.
    """
    out = pd.DataFrame(index=pd.Index(range(1, 11), name="decile"))
    out["movies"] = deciles.value_counts().reindex(out.index, fill_value=0)
    for name, items in (("slot_share", slots), ("watch_share", watches)):
        d = pd.Series(items, dtype=object).map(deciles).dropna().astype(np.int64)
        counts = d.value_counts().reindex(out.index, fill_value=0)
        out[name] = counts / counts.sum() if counts.sum() else np.nan
    return out.reset_index()


@dataclass(frozen=True)
class Concentration:
    """How concentrated a set of recommendations is on the catalogue."""

    slots: int
    movies_recommended: int
    catalogue: int
    coverage: float
    """Share of the catalogue recommended at least once."""
    gini: float
    top_decile_share: float
    """Share of slots taken by the 10% of the catalogue recommended most."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def concentration(slots: pd.Series | Iterable[str], catalogue: Iterable[str]) -> Concentration:
    """Coverage, Gini and top-decile share of `slots` (one movie id per recommended slot) over `catalogue`."""
    counts = catalogue_counts(slots, catalogue)
    n, total = len(counts), int(counts.sum())
    top = np.sort(counts.to_numpy())[::-1][: max(1, math.ceil(n / 10))] if n else np.zeros(0)
    return Concentration(
        slots=total,
        movies_recommended=int((counts > 0).sum()),
        catalogue=n,
        coverage=float((counts > 0).sum() / n) if n else math.nan,
        gini=gini(counts.to_numpy()),
        top_decile_share=float(top.sum() / total) if total else math.nan,
    )
