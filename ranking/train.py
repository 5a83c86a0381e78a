"""`recsys train`: one command from the offline store to an evaluated, registered model version.

Steps: read sessions/ratings/movies -> plan cut-offs -> build train/valid/test example sets
through Feast -> fit LambdaRank (early stopping on valid) -> sweep the cost penalty λ on
valid and choose the default -> compare popularity, ALS, LambdaRank (and the oracle when a
ground truth is given) on test -> write reports -> register the version with provenance and
make it the challenger (and the champion if there is none). This is the job a scheduler
(cron, a Kubernetes CronJob) runs; it is idempotent apart from adding a version.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ranking import columns as C  # noqa: N812 (the Recommenders idiom)
from ranking.dataset import ExampleSet, build_split, plan_splits
from ranking.evaluate import (
    SELECTION_RULE,
    K,
    ModelScores,
    OracleFn,
    choose_lambda,
    generator_lists,
    lambda_sweep,
    model_lists,
    request_latency_ms,
    score_lists,
    select,
)
from ranking.interactions import load_movies, load_ratings, load_sessions
from ranking.ranker import MODEL_FILE, Ranker, RankerParams
from ranking.transforms import FEATURE_SERVICE

LAMBDAS = [0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0]
"""Cost-penalty weights swept on the validation cut-off."""


@dataclass
class TrainResult:
    """What a training run produced."""

    model_dir: Path
    report_dir: Path
    scores: list[ModelScores]
    chosen_lambda: float
    selected: str
    rows: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)
    version: int | None = None


def _plot_tradeoff(sweep_valid: pd.DataFrame, sweep_test: pd.DataFrame, chosen: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for frame, label, style in ((sweep_valid, "validation", "o-"), (sweep_test, "test", "s--")):
        ax.plot(frame["cost20"], frame["ndcg20"], style, label=label)
        for _, r in frame.iterrows():
            ax.annotate(f"λ={r['lambda']:g}", (r["cost20"], r["ndcg20"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")  # fmt: skip
    pick = sweep_valid[sweep_valid["lambda"] == chosen].iloc[0]
    ax.scatter([pick["cost20"]], [pick["ndcg20"]], s=160, facecolors="none", edgecolors="red",
               label=f"chosen default λ={chosen:g}")  # fmt: skip
    ax.set_xlabel("mean license cost of the top 20 (USD per play)")
    ax.set_ylabel("NDCG@20")
    ax.set_title("Relevance vs license cost as the penalty λ grows")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _markdown(
    scores: list[ModelScores], chosen: float, selected: str, rows: dict[str, int], splits: list[Any]
) -> str:
    head = "| model | NDCG@20 | share of oracle | recall@20 | MAP@20 | coverage | cost@20 (USD) | train s | p50 ms | p99 ms | size KB |"
    lines = [
        "# Model comparison",
        "",
        f"Test cut-off {splits[-1].cutoff} (labels until {splits[-1].end}); {rows.get('test_users', 0):,} test users.",
        "",
        head,
        "|" + "---|" * 11,
    ]
    for s in scores:
        lines.append(
            f"| {s.model} | {s.ndcg20:.4f} | {s.share_of_oracle:.0%} | {s.recall20:.4f} | {s.map20:.4f} | "
            f"{s.coverage:.3f} | {s.cost20:.3f} | {s.train_seconds:.1f} | {s.p50_ms:.2f} | {s.p99_ms:.2f} | "
            f"{s.size_bytes / 1024:.0f} |"
        )
    lines += [
        "",
        f"**Selected:** `{selected}`. Rule: {SELECTION_RULE}",
        "",
        f"**Cost penalty:** default λ = {chosen:g}, the largest λ on the validation cut-off whose NDCG@20 stays "
        "within 3% of the best λ's: most of the relevance, the lowest license cost. See `lambda_tradeoff.png`.",
        "",
        "Splits: " + ", ".join(f"{s.name} {s.cutoff:%Y-%m-%d %H:%M}" for s in splits),
        "",
        "Rows: " + ", ".join(f"{k} {v:,}" for k, v in rows.items()),
        "",
    ]
    return "\n".join(lines)


def train_and_evaluate(
    var: Path,
    store: Any,
    out_dir: Path,
    report_dir: Path,
    oracle: OracleFn | None = None,
    params: RankerParams | None = None,
    max_users: int | None = None,
    progress: Any = print,
) -> TrainResult:
    """Build the sets, train, sweep λ, compare on test; write the model to `out_dir` and reports to `report_dir`."""
    offline = var / "offline"
    t = {"start": time.perf_counter()}
    sessions, ratings, movies = load_sessions(offline), load_ratings(offline), load_movies(offline)
    runtime = dict(zip(movies[C.ITEM], movies["runtime"].astype("float64"), strict=True))
    cost = pd.Series(movies[C.COST].to_numpy(dtype=np.float64), index=movies[C.ITEM]).dropna()
    splits = plan_splits(sessions)
    progress(f"{len(sessions):,} sessions, {len(ratings):,} ratings, {len(movies):,} movies; cut-offs: "
             + ", ".join(f"{s.name}@{s.cutoff:%m-%d %H:%M}" for s in splits))  # fmt: skip
    sets: dict[str, ExampleSet] = {}
    truth_test = pd.DataFrame()
    gens_test = None
    for split in splits:
        ex, gens, truth = build_split(split, sessions, ratings, runtime, store, max_users=max_users)
        sets[split.name] = ex
        progress(
            f"  {split.name}: {len(ex.groups):,} users, {len(ex.y):,} rows, {int((ex.y > 0).sum()):,} positives"
        )
        if split.name == "test":
            truth_test, gens_test = truth, gens
        if split.name == "valid":
            truth_valid = truth
    t["sets"] = time.perf_counter()
    train = ExampleSet.concat([sets[s.name] for s in splits if s.name.startswith("train")])
    valid, test = sets["valid"], sets["test"]
    cost_scale = float(cost.median()) if len(cost) else 1.0
    ranker = Ranker.train(
        train.x, train.y, train.groups, cost_scale, params, (valid.x, valid.y, valid.groups)
    )
    t["train"] = time.perf_counter()
    train_s = t["train"] - t["sets"]

    sweep_valid = lambda_sweep(ranker, valid, truth_valid, cost, LAMBDAS)
    chosen = choose_lambda(sweep_valid)
    ranker.meta.default_lambda = chosen
    sweep_test = lambda_sweep(ranker, test, truth_test, cost, LAMBDAS)
    model_dir = ranker.save(out_dir)

    assert gens_test is not None
    users = np.asarray(sorted(set(test.frame[C.USER])), dtype=np.int64)
    truth_eval = truth_test[truth_test[C.USER].isin(users)]
    n_items = max(1, len(movies))
    p50, p99 = request_latency_ms(ranker, test, chosen)
    size = (model_dir / MODEL_FILE).stat().st_size
    scores = [
        score_lists("popularity", generator_lists(gens_test, users, "pop"), truth_eval, n_items, cost),
        score_lists("als", generator_lists(gens_test, users, "als"), truth_eval, n_items, cost),
        score_lists("lambdarank (λ=0)", model_lists(ranker, test, 0.0), truth_eval, n_items, cost,
                    train_seconds=train_s, p50_ms=p50, p99_ms=p99, size_bytes=size),
        score_lists(f"lambdarank (λ={chosen:g})", model_lists(ranker, test, chosen), truth_eval, n_items, cost,
                    train_seconds=train_s, p50_ms=p50, p99_ms=p99, size_bytes=size),
    ]  # fmt: skip
    if oracle is not None:
        oracle_recs = oracle(users, gens_test.seen, K)
        scores.append(score_lists("oracle", oracle_recs, truth_eval, n_items, cost))
        best = scores[-1].ndcg20
        for s in scores:
            s.share_of_oracle = s.ndcg20 / best if best > 0 else float("nan")
    selected = select(scores)
    rows = {
        "train_rows": len(train.y),
        "train_groups": len(train.groups),
        "valid_rows": len(valid.y),
        "test_rows": len(test.y),
        "test_users": len(users),
    }
    report_dir.mkdir(parents=True, exist_ok=True)
    _plot_tradeoff(sweep_valid, sweep_test, chosen, report_dir / "lambda_tradeoff.png")
    (report_dir / "model_comparison.md").write_text(_markdown(scores, chosen, selected, rows, splits))
    (report_dir / "model_comparison.json").write_text(
        json.dumps(
            {
                "scores": [s.as_dict() for s in scores],
                "selected": selected,
                "selection_rule": SELECTION_RULE,
                "chosen_lambda": chosen,
                "lambda_sweep_valid": sweep_valid.to_dict(orient="records"),
                "lambda_sweep_test": sweep_test.to_dict(orient="records"),
                "splits": [{"name": s.name, "cutoff": str(s.cutoff), "end": str(s.end)} for s in splits],
                "rows": rows,
                "feature_service": FEATURE_SERVICE,
            },
            indent=2,
            default=str,
        )
    )
    t["eval"] = time.perf_counter()
    seconds = {"trainset": t["sets"] - t["start"], "train": train_s, "evaluate": t["eval"] - t["train"]}
    return TrainResult(model_dir, report_dir, scores, chosen, selected, rows, seconds)
