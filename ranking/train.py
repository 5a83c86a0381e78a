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
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ranking import columns as C  # noqa: N812 (the Recommenders idiom)
from ranking.candidate_index import INDEX_DIR, CandidateIndex
from ranking.candidates import recall_at_k as candidate_recall_at_k
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
from ranking.transforms import FEATURE_SERVICE, UNKNOWN_COST_QUANTILE, unknown_cost

LAMBDAS = [0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0]
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


@dataclass
class PreparedSets:
    """Example sets of every cut-off plus what evaluation needs."""

    splits: list[Any]
    sets: dict[str, ExampleSet]
    truth: dict[str, pd.DataFrame]
    gens_test: Any
    cost: pd.Series
    n_items: int
    seconds: float
    data_end: pd.Timestamp | None = None
    """End of the last session read: the as-of time of the candidate index shipped with the model."""
    unknown_cost_movies: int = 0
    """Movies whose license cost is unknown (priced at `transforms.unknown_cost` of the known ones)."""


def prepare(
    var: Path, store: Any, max_users: int | None = None, progress: Any = print, only: set[str] | None = None
) -> PreparedSets:
    """Read the offline store, plan cut-offs and build the example sets (all, or just the named splits)."""
    offline = var / "offline"
    t0 = time.perf_counter()
    sessions, ratings, movies = load_sessions(offline), load_ratings(offline), load_movies(offline)
    runtime = dict(zip(movies[C.ITEM], movies["runtime"].astype("float64"), strict=True))
    cost = pd.Series(movies[C.COST].to_numpy(dtype=np.float64), index=movies[C.ITEM]).dropna()
    unknown = len(movies) - len(cost)
    if unknown:
        progress(f"license cost unknown for {unknown:,} of {len(movies):,} movies: priced at the "
                 f"p{UNKNOWN_COST_QUANTILE * 100:.0f} of known costs, {unknown_cost(cost):.3f} USD per play")  # fmt: skip
    splits = plan_splits(sessions)
    progress(f"{len(sessions):,} sessions, {len(ratings):,} ratings, {len(movies):,} movies; cut-offs: "
             + ", ".join(f"{s.name}@{s.cutoff:%m-%d %H:%M}" for s in splits))  # fmt: skip
    sets: dict[str, ExampleSet] = {}
    truths: dict[str, pd.DataFrame] = {}
    gens_test = None
    for split in splits:
        if only is not None and split.name not in only:
            continue
        ex, gens, truth = build_split(split, sessions, ratings, runtime, store, max_users=max_users)
        sets[split.name], truths[split.name] = ex, truth
        progress(
            f"  {split.name}: {len(ex.groups):,} users, {len(ex.y):,} rows, {int((ex.y > 0).sum()):,} positives"
        )
        if split.name == "test":
            gens_test = gens
    end = sessions[C.END_TS].max() if len(sessions) else None
    return PreparedSets(
        splits, sets, truths, gens_test, cost, max(1, len(movies)), time.perf_counter() - t0, end, unknown
    )


def compare(
    prep: PreparedSets,
    rankers: dict[str, Ranker],
    report_dir: Path,
    oracle: OracleFn | None = None,
    train_seconds: dict[str, float] | None = None,
    sizes: dict[str, int] | None = None,
) -> tuple[list[ModelScores], float, str]:
    """Score baselines, each ranker (λ=0 and its default λ) and the oracle on test; sweep λ for the first ranker.

    Writes model_comparison.md/.json and lambda_tradeoff.png; returns (scores, default λ of the first ranker, selected).
    """
    test, valid = prep.sets["test"], prep.sets["valid"]
    truth_test, truth_valid = prep.truth["test"], prep.truth["valid"]
    users = np.asarray(sorted(set(test.frame[C.USER])), dtype=np.int64)
    oracle_recs = oracle(users, prep.gens_test.seen, K) if oracle is not None else None
    if oracle_recs is not None:
        # Every model is judged on the users the ground truth knows, so shares of the oracle compare like with like.
        users = np.asarray(sorted(set(oracle_recs[C.USER])), dtype=np.int64)
    truth_eval = truth_test[truth_test[C.USER].isin(users)]
    cost, n_items = prep.cost, prep.n_items
    scores = [
        score_lists("popularity", generator_lists(prep.gens_test, users, "pop"), truth_eval, n_items, cost),
        score_lists("als", generator_lists(prep.gens_test, users, "als"), truth_eval, n_items, cost),
    ]
    first = next(iter(rankers))
    sweep_valid = lambda_sweep(rankers[first], valid, truth_valid, cost, LAMBDAS)
    chosen = choose_lambda(sweep_valid)
    sweep_test = lambda_sweep(rankers[first], test, truth_test, cost, LAMBDAS)
    for name, ranker in rankers.items():
        lam = chosen if name == first and ranker.meta.default_lambda is None else ranker.meta.default_lambda
        p50, p99 = request_latency_ms(ranker, test, lam)
        extra = {"train_seconds": (train_seconds or {}).get(name, float("nan")), "p50_ms": p50, "p99_ms": p99,
                 "size_bytes": (sizes or {}).get(name, 0)}  # fmt: skip
        scores.append(
            score_lists(f"{name} (λ=0)", model_lists(ranker, test, 0.0), truth_eval, n_items, cost, **extra)
        )
        scores.append(
            score_lists(
                f"{name} (λ={lam:g})", model_lists(ranker, test, lam), truth_eval, n_items, cost, **extra
            )
        )
    if oracle_recs is not None:
        scores.append(score_lists("oracle", oracle_recs, truth_eval, n_items, cost))
        best = scores[-1].ndcg20
        for s in scores:
            s.share_of_oracle = s.ndcg20 / best if best > 0 else float("nan")
    selected = select(scores)
    cands = test.frame[test.frame[C.USER].isin(users)]
    candidate_recall = {
        "merged": candidate_recall_at_k(cands, truth_eval),
        "pop": candidate_recall_at_k(generator_lists(prep.gens_test, users, "pop", 100), truth_eval),
        "als": candidate_recall_at_k(generator_lists(prep.gens_test, users, "als", 100), truth_eval),
    }
    rows = {f"{k}_rows": len(v.y) for k, v in prep.sets.items()} | {"test_users": len(users)}
    report_dir.mkdir(parents=True, exist_ok=True)
    _plot_tradeoff(sweep_valid, sweep_test, chosen, report_dir / "lambda_tradeoff.png")
    md = _markdown(scores, chosen, selected, rows, prep.splits)
    md += (
        f"\nCandidate recall (share of held-out positives the ranker could surface): merged set of "
        f"{int(cands.groupby(C.USER).size().max()) if len(cands) else 0} per user {candidate_recall['merged']:.3f}; "
        f"popularity top 100 {candidate_recall['pop']:.3f}; ALS top 100 {candidate_recall['als']:.3f}.\n"
        f"\nLicense cost unknown for {prep.unknown_cost_movies:,} of {n_items:,} movies; they are priced at "
        f"the p{UNKNOWN_COST_QUANTILE * 100:.0f} of known costs ({unknown_cost(cost):.3f} USD per play) "
        "in the penalty and in cost@20.\n"
    )
    (report_dir / "model_comparison.md").write_text(md)
    (report_dir / "model_comparison.json").write_text(
        json.dumps(
            {
                "scores": [s.as_dict() for s in scores],
                "selected": selected,
                "selection_rule": SELECTION_RULE,
                "chosen_lambda": chosen,
                "lambda_sweep_valid": sweep_valid.to_dict(orient="records"),
                "lambda_sweep_test": sweep_test.to_dict(orient="records"),
                "splits": [{"name": s.name, "cutoff": str(s.cutoff), "end": str(s.end)} for s in prep.splits],
                "rows": rows,
                "candidate_recall": candidate_recall,
                "feature_service": FEATURE_SERVICE,
                "unknown_cost": {"movies": prep.unknown_cost_movies, "assumed_usd": unknown_cost(cost)},
            },
            indent=2,
            default=str,
        )
    )
    return scores, chosen, selected


def _save_candidate_index(var: Path, model_dir: Path, data_end: pd.Timestamp | None, progress: Any) -> bool:
    """Fit the generators on all history and save them beside the model (serving's candidates)."""
    if data_end is None:
        return False
    as_of = data_end + pd.Timedelta(seconds=1)  # history() keeps sessions that ended strictly before
    index = CandidateIndex.build(load_sessions(var / "offline"), as_of)
    shutil.rmtree(model_dir / INDEX_DIR, ignore_errors=True)
    index.save(model_dir / INDEX_DIR)
    progress(
        f"candidate index as of {as_of:%Y-%m-%d %H:%M}: {len(index.items):,} movies, {index.n_users:,} users"
    )
    return True


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
    prep = prepare(var, store, max_users, progress)
    train = ExampleSet.concat([prep.sets[s.name] for s in prep.splits if s.name.startswith("train")])
    valid = prep.sets["valid"]
    t0 = time.perf_counter()
    cost_scale = float(prep.cost.median()) if len(prep.cost) else 1.0
    ranker = Ranker.train(
        train.x, train.y, train.groups, cost_scale, params, (valid.x, valid.y, valid.groups),
        unknown_cost=unknown_cost(prep.cost),
    )  # fmt: skip
    train_s = time.perf_counter() - t0
    ranker.meta.default_lambda = None  # chosen by the sweep inside compare()
    t1 = time.perf_counter()
    model_dir = out_dir
    scores, chosen, selected = compare(
        prep, {"lambdarank": ranker}, report_dir, oracle, {"lambdarank": train_s}
    )
    ranker.meta.default_lambda = chosen
    ranker.save(model_dir)
    t2 = time.perf_counter()
    index_s = _save_candidate_index(var, model_dir, prep.data_end, progress)
    seconds_index = time.perf_counter() - t2 if index_s else 0.0
    size = (model_dir / MODEL_FILE).stat().st_size
    for s in scores:
        if s.model.startswith("lambdarank"):
            s.size_bytes = size
    rows = {"train_rows": len(train.y), "train_groups": len(train.groups)} | {
        f"{k}_rows": len(v.y) for k, v in prep.sets.items() if not k.startswith("train")
    }
    seconds = {"trainset": prep.seconds, "train": train_s, "evaluate": time.perf_counter() - t1 - seconds_index,
               "candidate_index": seconds_index}  # fmt: skip
    return TrainResult(model_dir, report_dir, scores, chosen, selected, rows, seconds)
