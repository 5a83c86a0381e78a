"""Offline evaluation of the cold-start policies on users who joined after a cut-off (`recsys evaluate --cold-start`).

Who: every user whose account was created at or after `cutoff` and whose first `days` are
inside the data (a full first week observed). What they are judged on: what they did in those
days, graded as `ranking.interactions.labels` grades a label window. What they are shown: a
list of k as of their sign-up, with no history; the catalogue and the popularity prior are
those known at the cut-off (movies played before it, plays decayed with the popularity
generator's half-life), so nothing after the cut-off leaks in.

Policies, all through one `ColdStartPolicy` with the same cost penalty λ:
- `popularity`: the prior alone (every description treated as empty): today's cold start;
- `description`: the likes text, named genres and disliked genres, titles ignored;
- `description_titles`: the full policy, with titles named as liked/disliked and their neighbours.

Figures: NDCG@k and recall@k (`ranking.metrics`), mean licence cost of the served slots, the
share of the oracle's NDCG when a ground truth is given, for all users and per description kind;
a seeded bootstrap 95% interval (`ranking.verdict.bootstrap_ci`) of the per-user NDCG difference
of each description policy minus popularity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from ranking import columns as C  # noqa: N812 (the Recommenders idiom)
from ranking.cold_start import ColdStartPolicy
from ranking.interactions import labels
from ranking.metrics import DEFAULT_K, mean_cost_at_k, ndcg_per_user, recall_at_k
from ranking.verdict import bootstrap_ci
from textmodel.describe import EMPTY, KINDS, ParsedDescription

POPULARITY: Final = "popularity"
"""The popularity prior alone (cost-aware): the cold start served before descriptions."""
DESCRIPTION: Final = "description"
"""Description text and named genres, titles ignored."""
DESCRIPTION_TITLES: Final = "description_titles"
"""The full policy: description, named titles and their neighbours."""
POLICIES: Final = (POPULARITY, DESCRIPTION, DESCRIPTION_TITLES)
"""The compared policies, baseline first."""
FIRST_DAYS: Final = 7.0
"""Days after sign-up whose activity is the label window."""


@dataclass(frozen=True)
class Cohort:
    """Users who joined after the cut-off, when they joined, and their graded first-week activity."""

    users: npt.NDArray[np.int64]
    joined: pd.Series
    truth: pd.DataFrame


def cohort(
    accounts: pd.DataFrame,
    sessions: pd.DataFrame,
    ratings: pd.DataFrame,
    runtime: Mapping[str, float],
    cutoff: pd.Timestamp,
    data_end: pd.Timestamp,
    days: float = FIRST_DAYS,
) -> Cohort:
    """New users (account `ts` >= cutoff, first `days` before `data_end`) with their first-week labels."""
    window = pd.Timedelta(days=days)
    joined = accounts.groupby(C.USER)["ts"].min()
    joined = joined[(joined >= cutoff) & (joined + window <= data_end)].sort_index()
    starts = sessions[C.USER].map(joined)
    s = sessions[starts.notna().to_numpy()]
    start = s[C.USER].map(joined)
    s = s[((s[C.START_TS] >= start) & (s[C.START_TS] < start + window)).to_numpy()]
    r_start = ratings[C.USER].map(joined)
    r = ratings[r_start.notna().to_numpy()]
    r_start = r[C.USER].map(joined)
    r = r[((r["ts"] >= r_start) & (r["ts"] < r_start + window)).to_numpy()]
    truth = labels(s, r, dict(runtime), cutoff, data_end + window)
    return Cohort(joined.index.to_numpy(dtype=np.int64), joined, truth)


def decayed_popularity(
    sessions: pd.DataFrame, movie_ids: list[str], at: pd.Timestamp, half_life_days: float
) -> npt.NDArray[np.float64]:
    """Plays of each movie that ended before `at`, each weighted 0.5 ** (age / half-life)."""
    ended = sessions[(sessions[C.END_TS] < at).to_numpy()]
    age_s = (at - ended[C.END_TS]).dt.total_seconds().to_numpy()
    weight = np.exp2(-age_s / (half_life_days * 86_400.0))
    by_movie = pd.Series(weight, index=ended[C.ITEM].to_numpy()).groupby(level=0).sum()
    return by_movie.reindex(movie_ids, fill_value=0.0).to_numpy(dtype=np.float64)


def variant(d: ParsedDescription, policy: str) -> ParsedDescription:
    """The description as `policy` sees it: all of it, without titles, or nothing (popularity)."""
    if policy == POPULARITY:
        return replace(d, kind=EMPTY)
    if policy == DESCRIPTION:
        return replace(d, liked=(), disliked=())
    return d


def policy_lists(
    policy: ColdStartPolicy, parsed: Mapping[int, ParsedDescription], users: npt.NDArray[np.int64], k: int
) -> dict[str, pd.DataFrame]:
    """Each policy's top-k list per user (user_id, movie_id, rank), users without a description as empty ones."""
    empty = ParsedDescription(None, None, (), (), (), (), EMPTY)
    out: dict[str, pd.DataFrame] = {}
    for name in POLICIES:
        rows_u: list[int] = []
        rows_m: list[str] = []
        rows_r: list[int] = []
        cache: dict[tuple[object, ...], list[str]] = {}
        for u in users.tolist():
            d = variant(parsed.get(u, empty), name)
            # Popularity and empty descriptions give one list for everyone: computed once.
            key: tuple[object, ...] = ("prior",) if d.kind != "informative" else (u,)
            if key not in cache:
                cache[key] = policy.recommend(d, k)
            ranked = cache[key]
            rows_u.extend([u] * len(ranked))
            rows_m.extend(ranked)
            rows_r.extend(range(1, len(ranked) + 1))
        out[name] = pd.DataFrame(
            {
                C.USER: np.asarray(rows_u, dtype=np.int64),
                C.ITEM: pd.Series(rows_m, dtype=object),
                C.RANK: np.asarray(rows_r, dtype=np.int64),
            }
        )
    return out


@dataclass
class Figures:
    """One policy's figures on one group of users."""

    policy: str
    group: str
    users: int
    ndcg: float
    recall: float
    mean_cost: float
    oracle_share: float = float("nan")


@dataclass
class ColdStartResult:
    """What the cold-start evaluation found."""

    cutoff: pd.Timestamp
    days: float
    k: int
    lam: float
    users: int
    kinds: dict[str, int]
    figures: list[Figures]
    ci: dict[str, tuple[float, float, float]]
    """Policy -> (mean NDCG difference vs popularity, 95% low, high), over all evaluated users."""
    ci_by_kind: dict[tuple[str, str], tuple[float, float, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def figure(self, policy: str, group: str = "all") -> Figures | None:
        """The figures of `policy` on `group` (all, or a description kind)."""
        return next((f for f in self.figures if f.policy == policy and f.group == group), None)


def evaluate(
    co: Cohort,
    parsed: Mapping[int, ParsedDescription],
    policy: ColdStartPolicy,
    cost_by_item: pd.Series,
    cutoff: pd.Timestamp,
    days: float = FIRST_DAYS,
    k: int = DEFAULT_K,
    oracle_recs: pd.DataFrame | None = None,
    seed: int = 7,
) -> ColdStartResult:
    """Score every policy for the cohort's users with a relevant first-week movie; see the module docstring."""
    truth = co.truth
    users = np.asarray(sorted(set(truth[C.USER].tolist())), dtype=np.int64)
    if oracle_recs is not None:
        users = np.intersect1d(users, oracle_recs[C.USER].to_numpy(dtype=np.int64))
    truth = truth[truth[C.USER].isin(users)]
    lists = policy_lists(policy, parsed, users, k)
    kind_of = pd.Series({u: (parsed[u].kind if u in parsed else EMPTY) for u in users.tolist()}, dtype=object)
    groups: dict[str, npt.NDArray[np.int64]] = {"all": users}
    groups |= {kd: users[(kind_of.reindex(users) == kd).to_numpy()] for kd in KINDS}
    per_user = {
        name: ndcg_per_user(recs, truth, k).reindex(users, fill_value=0.0) for name, recs in lists.items()
    }
    oracle_ndcg = None
    if oracle_recs is not None:
        oracle_ndcg = ndcg_per_user(oracle_recs, truth, k).reindex(users, fill_value=0.0)
    figures: list[Figures] = []
    for group, members in groups.items():
        if not len(members):
            continue
        t = truth[truth[C.USER].isin(members)]
        for name, recs in lists.items():
            r = recs[recs[C.USER].isin(members)]
            nd = float(per_user[name].reindex(members).mean())
            cost = mean_cost_at_k(r, cost_by_item, k, missing_cost=float(np.nanmax(cost_by_item.to_numpy())))
            fig = Figures(name, group, len(members), nd, recall_at_k(r, t, k), cost)
            if oracle_ndcg is not None:
                best = float(oracle_ndcg.reindex(members).mean())
                fig.oracle_share = nd / best if best > 0 else float("nan")
            figures.append(fig)
        if oracle_ndcg is not None:
            o = oracle_recs[oracle_recs[C.USER].isin(members)]  # type: ignore[index]
            cost = mean_cost_at_k(o, cost_by_item, k, missing_cost=float(np.nanmax(cost_by_item.to_numpy())))
            nd = float(oracle_ndcg.reindex(members).mean())
            figures.append(Figures("oracle", group, len(members), nd, recall_at_k(o, t, k), cost, 1.0))
    ci: dict[str, tuple[float, float, float]] = {}
    ci_by_kind: dict[tuple[str, str], tuple[float, float, float]] = {}
    base = per_user[POPULARITY]
    for name in (DESCRIPTION, DESCRIPTION_TITLES):
        for group, members in groups.items():
            if not len(members):
                continue
            diff = (per_user[name].reindex(members) - base.reindex(members)).to_numpy(dtype=np.float64)
            low, high = bootstrap_ci(diff, seed=seed)
            entry = (float(diff.mean()), low, high)
            if group == "all":
                ci[name] = entry
            else:
                ci_by_kind[(name, group)] = entry
    kinds = {kd: int((kind_of == kd).sum()) for kd in KINDS}
    return ColdStartResult(cutoff, days, k, policy.lam, len(users), kinds, figures, ci, ci_by_kind)
