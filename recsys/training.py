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
from ranking.evaluate import OracleFn
from ranking.provenance import DataSnapshot, Provenance, data_snapshot
from ranking.ranker import Ranker
from ranking.registry import COST20, NDCG20, P99_MS, ModelRegistry, ModelVersionInfo, smoke_test
from ranking.settings import RankSettings
from ranking.train import TrainResult, compare, prepare, train_and_evaluate
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

    def oracle(users: npt.NDArray[np.int64], seen: dict[int, set[str]], k: int) -> pd.DataFrame:
        # Only the world's users have a ground truth (ids 1..n); others get no rows and are
        # left out of every model's evaluation when an oracle is used.
        users = users[(users >= 1) & (users <= n_users)]
        frames = [pd.DataFrame({C.USER: pd.Series(dtype="int64"), C.ITEM: pd.Series(dtype="object"),
                                C.RANK: pd.Series(dtype="int64")})]  # fmt: skip
        for start in range(0, len(users), 500):
            batch = users[start : start + 500]
            aff = truth.affinity(batch).astype(np.float64)
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
) -> tuple[TrainResult, ModelVersionInfo | None]:
    """Train, evaluate and (optionally) register; the new version becomes challenger, or champion if there is none."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from ingestion.feast_bridge import open_feature_store

    store = open_feature_store(var, redis_url)
    model_dir = var / "models" / "latest"
    result = train_and_evaluate(
        var, store, model_dir, report_dir, oracle=simulator_oracle(var), progress=progress
    )
    if not register:
        return result, None
    # The registered figures are the model's at its default λ (the last LambdaRank row).
    best = [s for s in result.scores if s.model.startswith("lambdarank")][-1]
    provenance = Provenance.collect(
        REPO_DIR, FEATURE_SERVICE, var / "feast" / "registry.db", snapshot(var / "offline"),
        params={"default_lambda": result.chosen_lambda, **{f"rows_{k}": v for k, v in result.rows.items()}},
    )  # fmt: skip
    metrics = {NDCG20: best.ndcg20, COST20: best.cost20, P99_MS: best.p99_ms, "recall20": best.recall20,
               "map20": best.map20, "coverage": best.coverage, "train_seconds": best.train_seconds}  # fmt: skip
    if np.isfinite(best.share_of_oracle):
        metrics["share_of_oracle"] = best.share_of_oracle
    registry = ModelRegistry.open(RankSettings(var_dir=var))
    info = registry.register(model_dir, provenance, metrics, report_dir)
    if registry.resolve("champion") is None:
        outcome = registry.promote(info.version, smoke_test)
        progress(f"v{info.version}: first version, promoted to champion: {outcome.accepted}")
    else:
        registry.set_challenger(info.version)
        progress(
            f"v{info.version}: registered as challenger (promote with `recsys models promote {info.version}`)"
        )
    result.version = info.version
    return result, info


def run_evaluation(var: Path, redis_url: str, report_dir: Path, progress: Any = print) -> str:
    """Compare the registered champion and challenger with the baselines and the oracle on the current data."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from ingestion.feast_bridge import open_feature_store

    registry = ModelRegistry.open(RankSettings(var_dir=var))
    rankers: dict[str, Ranker] = {}
    for alias in ("champion", "challenger"):
        info = registry.resolve(alias)
        if info is not None:
            rankers[f"{alias} v{info.version}"] = Ranker.load(registry.download(info.version))
    if not rankers:
        raise RuntimeError("no champion or challenger in the registry: run `recsys train` first")
    prep = prepare(var, open_feature_store(var, redis_url), progress=progress, only={"valid", "test"})
    _, _, selected = compare(prep, rankers, report_dir, simulator_oracle(var))
    return selected
