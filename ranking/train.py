"""`recsys train`: one command from the offline store to an evaluated model and the policy to serve.

Steps: read sessions/ratings/movies -> plan cut-offs -> tune the popularity half-life on the
validation cut-off -> build train/valid/test example sets through Feast (candidates from the
`CandidateIndex` the service uses) -> tune LightGBM with Optuna on valid (time-boxed) -> fit
LambdaRank -> choose the cost rule on valid -> compare every baseline policy, the ranker and the
oracle (when a ground truth exists) on test -> the verdict (`ranking.verdict`) -> write the
model, its candidate index and the reports. Registration and promotion follow the verdict
(`recsys.training`). This is the job a scheduler runs; it is idempotent apart from adding versions.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ranking import columns as C  # noqa: N812 (the Recommenders idiom)
from ranking.candidate_index import INDEX_DIR, CandidateIndex, IndexConfig
from ranking.compare import Comparison, compare
from ranking.cost_rule import CostChoice, choose_cost_rule, test_cost_cut
from ranking.dataset import ALS_USERS, ExampleSet, Split, build_split, plan_splits
from ranking.evaluate import OracleFn
from ranking.interactions import last_days, load_movies, load_ratings, load_sessions
from ranking.ranker import MODEL_FILE, Ranker, RankerParams
from ranking.reference_sample import sample_positions, write_reference_sample
from ranking.report import write_reports
from ranking.transforms import UNKNOWN_COST_QUANTILE, unknown_cost
from ranking.tuning import TuneResult, tune_half_life, tune_ranker


@dataclass
class PreparedSets:
    """Example sets of every cut-off plus what evaluation needs."""

    splits: list[Split]
    sets: dict[str, ExampleSet]
    truth: dict[str, pd.DataFrame]
    index_test: CandidateIndex | None
    cost: pd.Series
    seconds: float
    data_end: pd.Timestamp | None = None
    """End of the last session read: the as-of time of the candidate index shipped with the model."""
    unknown_cost_movies: int = 0
    """Movies whose license cost is unknown (priced at `transforms.unknown_cost` of the known ones)."""
    absent: list[str] = field(default_factory=list)
    """What the data lacks (`movie metadata`, `license costs`); the report says so."""
    half_life: tuple[float, dict[float, float]] = (7.0, {})
    """Chosen recency-popularity half-life (days) and the validation NDCG@20 of each tried."""
    config: IndexConfig = field(default_factory=IndexConfig)
    build: Callable[[str], None] | None = None
    """Builds a deferred split (`prepare(defer=...)`) into `sets`, `truth` and `index_test`."""

    def ensure(self, name: str) -> ExampleSet:
        """The named split, built now if `prepare` deferred it."""
        if name not in self.sets and self.build is not None:
            t0 = time.perf_counter()
            self.build(name)
            self.seconds_deferred = time.perf_counter() - t0
        return self.sets[name]

    seconds_deferred: float = 0.0
    """Time spent building deferred splits (evaluation's, not the training set's)."""


@dataclass
class TrainResult:
    """What a training run produced."""

    model_dir: Path
    report_dir: Path
    comparison: Comparison
    cost: CostChoice
    rows: dict[str, int]
    tuning: TuneResult | None
    half_life: float
    seconds: dict[str, float] = field(default_factory=dict)
    version: int | None = None

    @property
    def scores(self) -> list[Any]:
        """The comparison table's rows."""
        return self.comparison.scores

    @property
    def chosen_lambda(self) -> float:
        """The ranker's default cost penalty."""
        return self.cost.lam


def prepare(
    var: Path, store: Any, max_users: int | None = None, progress: Any = print, only: set[str] | None = None,
    index_test: CandidateIndex | None = None, defer: frozenset[str] = frozenset(), test_users: int | None = None,
    history_days: float | None = None,
) -> PreparedSets:  # fmt: skip
    """Read the offline store, plan cut-offs, tune the half-life and build the example sets (all, or the named ones).

    `index_test`: score the test cut-off with this index (a shipped model's) instead of fitting one.
    `defer`: splits built only when asked for (`PreparedSets.ensure`): the test set belongs to evaluation.
    `test_users`: users sampled on the test cut-off (default `max_users`): more users, a tighter verdict.
    `history_days`: only the log's last days (`interactions.last_days`); None: all of it.
    """
    offline = var / "offline"
    t0 = time.perf_counter()
    sessions, ratings, movies = load_sessions(offline), load_ratings(offline), load_movies(offline)
    if sessions.empty:
        raise ValueError(f"no watch sessions under {offline}: replay and ingest a log first")
    if history_days is not None:
        before = len(sessions)
        sessions, ratings = last_days(sessions, ratings, history_days)
        progress(f"training window: the last {history_days:g} days, {len(sessions):,} of {before:,} sessions")
    runtime = dict(zip(movies[C.ITEM], movies["runtime"].astype("float64"), strict=True))
    genres = dict(zip(movies[C.ITEM], movies["genres"], strict=True))
    cost = pd.Series(movies[C.COST].to_numpy(dtype=np.float64), index=movies[C.ITEM]).dropna()
    absent = [
        what for what, missing in (("movie metadata", movies.empty), ("license costs", cost.empty)) if missing
    ]
    unknown = max(0, len(movies) - len(cost))
    if unknown and len(cost):
        progress(f"license cost unknown for {unknown:,} of {len(movies):,} movies: priced at the "
                 f"p{UNKNOWN_COST_QUANTILE * 100:.0f} of known costs, {unknown_cost(cost):.3f} USD per play")  # fmt: skip
    if absent:
        progress("absent from the data: " + ", ".join(absent) + " (the features and cost rule do without)")
    splits = plan_splits(sessions)
    progress(f"{len(sessions):,} sessions, {len(ratings):,} ratings, {len(movies):,} movies with metadata; "
             "cut-offs: " + ", ".join(f"{s.name}@{s.cutoff:%Y-%m-%d %H:%M}" for s in splits))  # fmt: skip
    valid = next(s for s in splits if s.name == "valid")
    hl, tried = tune_half_life(sessions, ratings, runtime, valid.cutoff, valid.end)
    progress(f"recency popularity half-life {hl:g} days (validation NDCG@20 "
             + ", ".join(f"{h:g}d {v:.4f}" for h, v in tried.items()) + ")")  # fmt: skip
    config = IndexConfig(half_life_days=hl)
    end = sessions[C.END_TS].max()
    prep = PreparedSets(splits, {}, {}, None, cost, 0.0, end, unknown, absent, (hl, tried), config)

    def build(name: str) -> None:
        split = next(s for s in splits if s.name == name)
        # The test cut-off's index is fit on everyone, as the service's is: the lists judged are the lists served.
        test = name == "test"
        cap = (test_users or max_users) if test else max_users
        ex, index, truth = build_split(split, sessions, ratings, runtime, store, genres, max_users=cap,
                                       config=config, index=index_test if test else None,
                                       als_users=None if test else ALS_USERS)  # fmt: skip
        prep.sets[name], prep.truth[name] = ex, truth
        progress(
            f"  {name}: {len(ex.groups):,} users, {len(ex.y):,} rows, {int((ex.y > 0).sum()):,} positives"
        )
        if test:
            prep.index_test = index

    prep.build = build
    for split in splits:
        if (only is None or split.name in only) and split.name not in defer:
            build(split.name)
    prep.seconds = time.perf_counter() - t0
    return prep


def _save_candidate_index(
    var: Path, model_dir: Path, data_end: pd.Timestamp | None, config: IndexConfig, progress: Any
) -> None:
    """Fit the generators on all history and save them beside the model (serving's candidates)."""
    if data_end is None:
        return
    as_of = data_end + pd.Timedelta(seconds=1)  # history() keeps sessions that ended strictly before
    index = CandidateIndex.build(load_sessions(var / "offline"), as_of, config=config)
    shutil.rmtree(model_dir / INDEX_DIR, ignore_errors=True)
    index.save(model_dir / INDEX_DIR)
    progress(
        f"candidate index as of {as_of:%Y-%m-%d %H:%M}: {len(index.items):,} movies, {index.n_users:,} users"
    )


def train_and_evaluate(
    var: Path,
    store: Any,
    out_dir: Path,
    report_dir: Path,
    oracle: OracleFn | None = None,
    params: RankerParams | None = None,
    max_users: int | None = None,
    progress: Any = print,
    tune_seconds: float = 60.0,
    tune_trials: int = 20,
    test_users: int | None = None,
    history_days: float | None = None,
) -> TrainResult:
    """Build the sets, tune, train, choose the cost rule, compare on test; write the model and the reports."""
    prep = prepare(var, store, max_users, progress, defer=frozenset({"test"}), test_users=test_users,
                   history_days=history_days)  # fmt: skip
    train = ExampleSet.concat([prep.sets[s.name] for s in prep.splits if s.name.startswith("train")])
    valid = prep.sets["valid"]
    cost_scale = float(prep.cost.median()) if len(prep.cost) else 1.0
    tuning = None
    t_tune = time.perf_counter()
    if tune_seconds > 0 and tune_trials > 0:
        tuning = tune_ranker((train.x, train.y, train.groups), (valid.x, valid.y, valid.groups), cost_scale,
                             params, tune_seconds, tune_trials)  # fmt: skip
        params = tuning.params
        progress(f"tuned LightGBM in {tuning.seconds:.0f} s, {tuning.trials} trials: validation NDCG@20 "
                 f"{tuning.best_valid_ndcg:.4f} with {tuning.params}")  # fmt: skip
    tune_s = time.perf_counter() - t_tune
    t0 = time.perf_counter()
    if tuning is not None and tuning.best is not None:
        # The best trial is the model: same data, same parameters, same seed; its fit time is the training time.
        ranker, train_s = tuning.best, tuning.best_fit_seconds
        ranker.meta.unknown_cost = unknown_cost(prep.cost)
    else:
        ranker = Ranker.train(
            train.x, train.y, train.groups, cost_scale, params, (valid.x, valid.y, valid.groups),
            unknown_cost=unknown_cost(prep.cost),
        )  # fmt: skip
        train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    choice = choose_cost_rule(ranker, valid, prep.truth["valid"], prep.cost, "license costs" in prep.absent)
    ranker.meta.default_lambda, ranker.meta.default_cost_budget = choice.lam, choice.budget
    rows = {"train_rows": len(train.y), "train_groups": len(train.groups)}
    # The skew check's reference (monitoring.skew): a sample of the rows as trained on, before they are freed.
    keep = sample_positions(len(train.y))
    write_reference_sample(out_dir, train.x[keep], ranker.score(train.x[keep]), train.y[keep])
    # Training is over: free its rows (and LightGBM's copy of them) before the test set is built.
    ranker.booster.free_dataset()
    del train
    for split in prep.splits:
        if split.name.startswith("train"):
            prep.sets.pop(split.name, None)
    test = prep.ensure("test")  # evaluation data: built here, timed with the evaluation
    assert prep.index_test is not None
    comparison = compare(test, prep.truth["test"], prep.index_test, {"lambdarank": (ranker, choice.rule)},
                         prep.cost, prep.absent + ([] if oracle else ["oracle"]), oracle,
                         {"lambdarank": {"train_seconds": train_s}})  # fmt: skip
    if "license costs" not in prep.absent:
        report_dir.mkdir(parents=True, exist_ok=True)
        comparison.cost_test = test_cost_cut(ranker, test, prep.truth["test"], prep.cost,
                                             report_dir / "cost_pareto.png")  # fmt: skip
    eval_s = time.perf_counter() - t1
    ranker.save(out_dir)
    t2 = time.perf_counter()
    _save_candidate_index(var, out_dir, prep.data_end, prep.config, progress)
    index_s = time.perf_counter() - t2
    size = (out_dir / MODEL_FILE).stat().st_size
    for s in comparison.scores:
        if s.model.startswith("lambdarank"):
            s.size_bytes = size
    rows |= {f"{k}_rows": len(v.y) for k, v in prep.sets.items() if not k.startswith("train")}
    result = TrainResult(out_dir, report_dir, comparison, choice, rows, tuning, prep.half_life[0],
                         {"trainset": prep.seconds, "tune": tune_s, "train": train_s, "evaluate": eval_s,
                          "testset": prep.seconds_deferred,
                          "candidate_index": index_s})  # fmt: skip
    write_reports(result, prep)
    return result
