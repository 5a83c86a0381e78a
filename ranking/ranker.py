"""The cost-aware LambdaRank ranker: training, the license-cost penalty at ranking time, text-format persistence.

The penalty is part of the model's contract: final score = model score − λ · cost / cost_scale,
where `cost_scale` is the catalogue's median license cost per play, fixed at training time and
stored with the model, so λ reads as "how many units of relevance one median-cost play is
worth". λ is chosen per experiment arm at serving time; the model stores its default.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from ranking.transforms import FEATURE_COLUMNS, FEATURE_SERVICE, fill_unknown_cost

F32 = npt.NDArray[np.float32]
MODEL_FILE = "model.txt"
META_FILE = "meta.json"


@dataclass
class RankerParams:
    """LightGBM knobs of the ranker (documented defaults from the λ and size sweeps)."""

    n_estimators: int = 200
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_child_samples: int = 20
    feature_fraction: float = 0.9
    label_gain: tuple[float, ...] = (0.0, 1.0, 3.0, 7.0, 15.0)
    """Gain per graded label 0..4 (2^g − 1, as NDCG uses)."""
    num_threads: int = 2
    seed: int = 7


@dataclass
class RankerMeta:
    """What serving needs besides the trees: feature order, feature service, cost scale, default λ."""

    features: list[str] = field(default_factory=lambda: list(FEATURE_COLUMNS))
    feature_service: str = FEATURE_SERVICE
    cost_scale: float = 1.0
    unknown_cost: float | None = None
    """Cost assumed where a movie's is unknown (`transforms.unknown_cost` of the training catalogue);
    None in models trained before it existed, which assume the median (`cost_scale`)."""
    default_lambda: float | None = 0.0
    """λ applied when the caller gives none (None only between training and the λ sweep)."""
    default_cost_budget: float | None = None
    """Cap on the mean license cost of a served list (USD per play) when the caller gives none; None: no cap."""
    params: dict[str, Any] = field(default_factory=dict)
    trained_at: float = field(default_factory=time.time)


class Ranker:
    """A trained booster plus its metadata; scoring is `score` (relevance) and `rank` (with the penalty)."""

    def __init__(self, booster: lgb.Booster, meta: RankerMeta) -> None:
        self.booster = booster
        self.meta = meta

    @classmethod
    def train(
        cls,
        x: F32,
        y: npt.NDArray[np.int64],
        groups: npt.NDArray[np.int64],
        cost_scale: float,
        params: RankerParams | None = None,
        valid: tuple[F32, npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None,
        default_lambda: float = 0.0,
        unknown_cost: float | None = None,
    ) -> Ranker:
        """Fit LambdaRank on rows grouped by (user, cut-off); `groups` are group sizes in row order."""
        p = params or RankerParams()
        lgb_params = {
            "objective": "lambdarank",
            "metric": "ndcg",
            "ndcg_eval_at": [20],
            "learning_rate": p.learning_rate,
            "num_leaves": p.num_leaves,
            "min_child_samples": p.min_child_samples,
            "feature_fraction": p.feature_fraction,
            "label_gain": list(p.label_gain),
            "num_threads": p.num_threads,
            "seed": p.seed,
            "deterministic": True,
            "verbosity": -1,
        }
        train = lgb.Dataset(x, label=y, group=groups, feature_name=list(FEATURE_COLUMNS), free_raw_data=False)
        sets: list[lgb.Dataset] = [train]
        names = ["train"]
        callbacks: list[Callable[..., Any]] = []
        if valid is not None:
            sets.append(lgb.Dataset(valid[0], label=valid[1], group=valid[2], reference=train))
            names.append("valid")
            callbacks.append(lgb.early_stopping(30, verbose=False))
        booster = lgb.train(lgb_params, train, num_boost_round=p.n_estimators, valid_sets=sets,
                            valid_names=names, callbacks=callbacks)  # fmt: skip
        meta = RankerMeta(
            cost_scale=cost_scale, unknown_cost=unknown_cost, default_lambda=default_lambda, params=asdict(p)
        )
        return cls(booster, meta)

    def score(self, x: F32) -> npt.NDArray[np.float64]:
        """Relevance scores (higher is better) for rows in FEATURE_COLUMNS order."""
        out: npt.NDArray[np.float64] = np.asarray(self.booster.predict(x, num_threads=1), dtype=np.float64)
        return out

    def penalised(
        self, scores: npt.NDArray[np.float64], cost: npt.NDArray[np.float64], lam: float | None
    ) -> npt.NDArray[np.float64]:
        """Scores minus λ · cost / cost_scale; an unknown cost counts as `meta.unknown_cost` (no bonus for missing data)."""
        lam = (self.meta.default_lambda or 0.0) if lam is None else lam
        assumed = self.meta.cost_scale if self.meta.unknown_cost is None else self.meta.unknown_cost
        c, _ = fill_unknown_cost(cost, assumed)
        result: npt.NDArray[np.float64] = scores - lam * c / self.meta.cost_scale
        return result

    def save(self, directory: Path) -> Path:
        """Write `model.txt` (LightGBM text format — no pickle) and `meta.json`."""
        directory.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(directory / MODEL_FILE))
        (directory / META_FILE).write_text(json.dumps(asdict(self.meta), indent=2))
        return directory

    @classmethod
    def load(cls, directory: Path) -> Ranker:
        """Load a saved ranker and check its feature list matches this code's transforms."""
        meta = RankerMeta(**json.loads((directory / META_FILE).read_text()))
        booster = lgb.Booster(model_file=str(directory / MODEL_FILE))
        if meta.features != list(FEATURE_COLUMNS) or booster.num_feature() != len(meta.features):
            raise ValueError(
                f"model in {directory} was trained on {len(meta.features)} features that differ from this code's "
                f"{len(FEATURE_COLUMNS)}: retrain or serve it with the code version that trained it"
            )
        return cls(booster, meta)
