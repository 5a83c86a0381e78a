"""`recsys train` / `recsys evaluate`: the training job wired to Feast, the simulator's ground truth and MLflow.

Lives in the front door because it joins packages that must not import each other: the
oracle comes from `simulator.truth` (evaluation only), the model goes to `ranking.registry`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ranking import columns as C  # noqa: N812 (the Recommenders idiom)
from ranking.compare import compare
from ranking.cost_policy import CostRule
from ranking.evaluate import OracleFn
from ranking.promotion import Decision, register_and_promote
from ranking.provenance import DataSnapshot, Provenance, data_snapshot
from ranking.ranker import Ranker
from ranking.registry import KIND_BASELINE, ModelRegistry, read_kind, smoke_test
from ranking.report import comparison_table
from ranking.settings import RankSettings
from ranking.train import TrainResult, prepare, train_and_evaluate
from ranking.transforms import FEATURE_SERVICE

REPO_DIR = Path(__file__).resolve().parents[1]


def simulator_oracle(var: Path) -> OracleFn | None:
    """The ground truth's best k per user (already-watched excluded), or None when no simulated world exists."""
    from simulator.settings import SimSettings
    from simulator.truth import Truth

    settings = SimSettings(var_dir=var)
    if not (settings.sim_dir / "world.json").exists():
        return None
    truth = Truth.load(settings)
    movie_ids = np.asarray(truth.movie_ids, dtype=object)
    index = {m: i for i, m in enumerate(movie_ids)}

    n_users = len(truth.world.population)

    def oracle(
        users: npt.NDArray[np.int64], seen: dict[int, set[str]], k: int, at: pd.Timestamp
    ) -> pd.DataFrame:
        # Only the world's users have a ground truth (ids 1..n); others get no rows and are
        # left out of every model's evaluation when an oracle is used.
        users = users[(users >= 1) & (users <= n_users)]
        frames = [pd.DataFrame({C.USER: pd.Series(dtype="int64"), C.ITEM: pd.Series(dtype="object"),
                                C.RANK: pd.Series(dtype="int64")})]  # fmt: skip
        for start in range(0, len(users), 500):
            batch = users[start : start + 500]
            aff = truth.oracle_scores(batch, at).astype(np.float64)  # unreleased movies: -inf
            for row, user in enumerate(batch):
                for m in seen.get(int(user), ()):
                    j = index.get(m)
                    if j is not None:
                        aff[row, j] = -np.inf
            top = np.argsort(-aff, axis=1)[:, :k]
            frames.append(pd.DataFrame({
                C.USER: np.repeat(batch, top.shape[1]), C.ITEM: movie_ids[top.ravel()],
                C.RANK: np.tile(np.arange(1, top.shape[1] + 1), len(batch)),
            }))  # fmt: skip
        return pd.concat(frames, ignore_index=True)

    return oracle


def snapshot(offline: Path) -> DataSnapshot:
    """The training data: sessions, ratings and every feature view's files, with row counts and time ranges."""
    tables: dict[str, Path | list[Path]] = {
        "sessions": sorted((offline / "sessions").glob("date=*/*.parquet")),
        "ratings": sorted((offline / "raw" / "rate").glob("date=*/*.parquet")),
    }
    tables |= {f"features/{d.name}": d for d in sorted((offline / "features").glob("*")) if d.is_dir()}
    return data_snapshot(tables, offline, time_columns={"sessions": "start_ts", "ratings": "ts"})


def run_training(
    var: Path, redis_url: str, report_dir: Path, register: bool = True, progress: Any = print
) -> tuple[TrainResult, Decision | None]:
    """Train, evaluate and (optionally) register; what becomes champion follows the verdict (`ranking.promotion`)."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from ingestion.feast_bridge import open_feature_store

    settings = RankSettings(var_dir=var)
    store = open_feature_store(var, redis_url)
    model_dir = var / "models" / "latest"
    result = train_and_evaluate(
        var, store, model_dir, report_dir, oracle=simulator_oracle(var), progress=progress,
        tune_seconds=settings.tune_seconds, tune_trials=settings.tune_trials, history_days=settings.history_days,
    )  # fmt: skip
    if not register:
        return result, None
    provenance = training_provenance(var, result)
    decision = register_and_promote(ModelRegistry.open(settings), result, provenance, smoke_test, progress)
    result.version = decision.ranker_version
    progress(decision.summary())
    return result, decision


def run_evaluation(var: Path, redis_url: str, report_dir: Path, progress: Any = print) -> str:
    """Compare the registered champion and challenger with the baselines and the oracle on the current data.

    The test cut-off's candidate index is fit as of the cut-off (the shipped index saw the test
    window); each ranker is judged under its own default cost rule. Returns the verdict's line.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from ingestion.feast_bridge import open_feature_store

    registry = ModelRegistry.open(RankSettings(var_dir=var))
    rankers: dict[str, tuple[Ranker, CostRule]] = {}
    for alias in ("champion", "challenger"):
        info = registry.resolve(alias)
        if info is None:
            continue
        if read_kind(path := registry.download(info.version))[0] == KIND_BASELINE:
            progress(
                f"{alias} v{info.version} is the baseline policy `{info.policy}`: in the table as a baseline"
            )
            continue
        try:
            ranker = Ranker.load(path)
        except ValueError as exc:  # trained by an older code version on other features
            progress(f"{alias} v{info.version} not evaluated: {exc}")
            continue
        rule = CostRule(lam=ranker.meta.default_lambda or 0.0, max_mean_cost=ranker.meta.default_cost_budget)
        rankers[f"{alias} v{info.version}"] = (ranker, rule)
    if not rankers:
        return (
            "no registered ranker this code can score (champion and challenger are baselines or older models)"
        )
    prep = prepare(var, open_feature_store(var, redis_url), progress=progress, only={"test"})
    assert prep.index_test is not None
    oracle = simulator_oracle(var)
    cmp = compare(prep.sets["test"], prep.truth["test"], prep.index_test, rankers, prep.cost,
                  prep.absent + ([] if oracle else ["oracle"]), oracle)  # fmt: skip
    report_dir.mkdir(parents=True, exist_ok=True)
    lines = ["# Evaluation of the registered rankers", "", *comparison_table(cmp.scores, oracle is not None), "",
             f"**Verdict:** {cmp.verdict.reason()}.", ""]  # fmt: skip
    (report_dir / "evaluation.md").write_text("\n".join(lines))
    return cmp.verdict.reason()


def training_provenance(var: Path, result: TrainResult) -> Provenance:
    """The provenance a trained ranker is registered with: code, features, data snapshot and its training params."""
    params = {"default_lambda": result.cost.lam, "default_cost_budget": result.cost.budget,
              "half_life_days": result.half_life, **{f"rows_{k}": v for k, v in result.rows.items()}}  # fmt: skip
    if result.tuning is not None:
        params |= {f"tuned_{k}": v for k, v in vars(result.tuning.params).items() if k != "label_gain"}
        params |= {"tune_trials": result.tuning.trials, "tune_seconds": round(result.tuning.seconds, 1)}
    return Provenance.collect(
        REPO_DIR, FEATURE_SERVICE, var / "feast" / "registry.db", snapshot(var / "offline"), params=params
    )


def stream_clock(redis_url: str) -> pd.Timestamp:
    """The latest event time ingested (the service's `stream` clock), as a UTC timestamp."""
    import redis

    from feature_repo.online_signal import read_clock

    value = read_clock(redis.Redis.from_url(redis_url, socket_timeout=5.0))
    if value is None:
        raise RuntimeError("no stream clock in Redis yet: ingest some events first")
    return pd.Timestamp(value, unit="s", tz="UTC")


def run_served_lists(
    var: Path,
    redis_url: str,
    users: npt.NDArray[np.int64] | None,
    sample: int,
    as_of: str = "stream",
    ref: str = "champion",
) -> dict[int, list[str]]:
    """What `ref` serves as of the stream clock (or an ISO time) to `users` (default: a seeded sample with history)."""
    from ingestion.feast_bridge import open_feature_store
    from ranking.interactions import load_movies, load_sessions
    from ranking.served_lists import lists_as_of

    registry = ModelRegistry.open(RankSettings(var_dir=var))
    info = registry.show(ref)
    when = stream_clock(redis_url) if as_of == "stream" else pd.Timestamp(as_of, tz="UTC")
    if users is None:
        known = pd.unique(load_sessions(var / "offline")[C.USER].to_numpy(dtype=np.int64))
        rng = np.random.default_rng(7)
        users = np.sort(rng.choice(known, min(sample, len(known)), replace=False))
    movies = load_movies(var / "offline")
    genres = dict(zip(movies[C.ITEM], movies["genres"], strict=True))
    store = open_feature_store(var, redis_url)
    return lists_as_of(registry.download(info.version), store, users, when, genres)
