"""Tuning on the validation cut-off: the popularity half-life (a grid) and LightGBM's knobs (Optuna, time-boxed).

Both look only at the validation cut-off (its label window ends before the test cut-off), so the
test comparison stays a fair out-of-time verdict. The half-life grid is relative to the data's
span as well as absolute (hours of data and years of data both get sensible candidates). Optuna's
TPE sampler is seeded; the study stops at `budget_s` seconds or `trials` trials, whichever comes
first, and the best parameters, the trial count and the time spent go to the report and MLflow.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ranking import columns as C  # noqa: N812 (the Recommenders idiom)
from ranking.candidates import PopularityConfig, PopularityGenerator, seen_items
from ranking.interactions import history, labels
from ranking.metrics import ndcg_at_k
from ranking.ranker import Ranker, RankerParams

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


def half_life_grid(span: pd.Timedelta) -> list[float]:
    """Candidate half-lives in days: fractions of the span plus 1 hour, 6 hours, 1, 7 and 30 days, within [1 hour, 10 years]."""
    days = span.total_seconds() / 86_400
    grid = {days / 300, days / 100, days / 30, days / 10, days / 3, days, 1 / 24, 0.25, 1.0, 7.0, 30.0}
    return sorted(round(g, 4) for g in grid if 1 / 24 <= g <= 3650 and g <= 3 * days)


def tune_half_life(
    sessions: pd.DataFrame,
    ratings: pd.DataFrame,
    runtime: dict[str, float],
    cutoff: pd.Timestamp,
    end: pd.Timestamp,
    max_users: int = 5000,
    seed: int = 7,
) -> tuple[float, dict[float, float]]:
    """The half-life (days) whose recency-popularity list has the best NDCG@20 on the validation window."""
    hist = history(sessions, cutoff)
    truth = labels(sessions, ratings, runtime, cutoff, end)
    users = np.intersect1d(truth[C.USER].to_numpy(dtype=np.int64), pd.unique(hist[C.USER].to_numpy()))
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    seen = seen_items(hist[hist[C.USER].isin(users)])
    truth = truth[truth[C.USER].isin(users)]
    span = sessions[C.END_TS].max() - sessions[C.START_TS].min()
    results: dict[float, float] = {}
    for hl in half_life_grid(span):
        gen = PopularityGenerator(PopularityConfig(half_life_days=hl)).fit(hist, now=cutoff, cutoff=cutoff)
        results[hl] = ndcg_at_k(gen.recommend(users, 20, exclude=seen), truth, 20) if len(users) else 0.0
    best = max(results, key=lambda h: (np.nan_to_num(results[h]), -h))
    return best, results


@dataclass
class TuneResult:
    """What the LightGBM study chose."""

    params: RankerParams
    best_valid_ndcg: float
    trials: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    best: Ranker | None = None
    """The best trial's fitted ranker (no need to fit it again)."""
    best_fit_seconds: float = float("nan")
    """How long that fit took."""


def tune_ranker(
    train: tuple[F32, I64, I64],
    valid: tuple[F32, I64, I64],
    cost_scale: float,
    base: RankerParams | None = None,
    budget_s: float = 60.0,
    trials: int = 20,
    seed: int = 7,
) -> TuneResult:
    """Optuna TPE over learning rate, leaves, leaf size, feature fraction; objective: validation NDCG@20."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    start = base or RankerParams()
    t0 = time.perf_counter()

    kept: dict[str, Any] = {"score": -np.inf}

    def objective(trial: Any) -> float:
        t_fit = time.perf_counter()
        params = replace(
            start,
            learning_rate=trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
            num_leaves=trial.suggest_int("num_leaves", 15, 127, log=True),
            min_child_samples=trial.suggest_int("min_child_samples", 10, 200, log=True),
            feature_fraction=trial.suggest_float("feature_fraction", 0.5, 1.0),
        )
        ranker = Ranker.train(*train, cost_scale, params, valid)
        score = float(ranker.booster.best_score.get("valid", {}).get("ndcg@20", float("nan")))
        if score > kept["score"]:
            kept.update(score=score, ranker=ranker, seconds=time.perf_counter() - t_fit)
        return score

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    # The defaults first: tuning can only keep them or find better.
    study.enqueue_trial({"learning_rate": start.learning_rate, "num_leaves": start.num_leaves,
                         "min_child_samples": start.min_child_samples,
                         "feature_fraction": start.feature_fraction})  # fmt: skip
    study.optimize(objective, n_trials=max(1, trials), timeout=max(budget_s, 1e-3))
    best = replace(start, **study.best_params)
    hist = [{"number": t.number, "value": t.value, **t.params} for t in study.trials]
    return TuneResult(best, float(study.best_value), len(study.trials), time.perf_counter() - t0, hist,
                      kept.get("ranker"), float(kept.get("seconds", float("nan"))))  # fmt: skip
