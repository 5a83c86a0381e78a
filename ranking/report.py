"""The training report: `model_comparison.md` and `.json`, and the cost Pareto plots when costs are known.

A figure that does not apply is shown as "—" (JSON null), never as `nan`: baselines have no
training time of their own, a bare log has no oracle, a log without costs has no trade-off.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ranking.evaluate import ModelScores
from ranking.pareto import BUSINESS_RULE, plot_fronts
from ranking.verdict import RULE


def _f(value: float, fmt: str) -> str:
    return "—" if value is None or not math.isfinite(value) else format(value, fmt)


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def comparison_table(scores: list[ModelScores], oracle: bool) -> list[str]:
    """Markdown rows of the comparison (share of oracle only when an oracle exists)."""
    cols = ["model", "NDCG@20", *(["share of oracle"] if oracle else []), "recall@20", "MAP@20",
            "coverage", "cost@20 (USD)", "train s", "p50 ms", "p99 ms", "size KB"]  # fmt: skip
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for s in scores:
        cells = [s.model, _f(s.ndcg20, ".4f"), *([_f(s.share_of_oracle, ".0%")] if oracle else []),
                 _f(s.recall20, ".4f"), _f(s.map20, ".4f"), _f(s.coverage, ".1%"), _f(s.cost20, ".3f"),
                 _f(s.train_seconds, ".1f"), _f(s.p50_ms, ".2f"), _f(s.p99_ms, ".2f"),
                 _f(s.size_bytes / 1024 if s.size_bytes else float("nan"), ",.0f")]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_reports(result: Any, prep: Any) -> None:
    """Write model_comparison.md/.json (and lambda_tradeoff.png when costs are known) to the report dir."""
    cmp, cost, out = result.comparison, result.cost, result.report_dir
    out.mkdir(parents=True, exist_ok=True)
    oracle = "oracle" not in cmp.absent
    test = prep.splits[-1]
    v = cmp.verdict
    md = [
        "# Model comparison",
        "",
        f"Test cut-off {test.cutoff} (labels until {test.end}); {cmp.users:,} test users. Every list is the "
        "one the service would serve at the cut-off (same candidates, features, seen filtering, cost rule).",
        "",
        *comparison_table(cmp.scores, oracle),
        "",
        f"**Verdict:** {v.reason()}. Policy to serve: `{v.winner}`.",
        "",
        f"Rule: {RULE}",
        "",
        f"**Cost rule:** {cost.reason}."
        + (
            " Operating points on validation: `cost_pareto_valid.png`; on test: `cost_pareto.png`."
            if cost.valid
            else ""
        ),
        f"Business rule: {BUSINESS_RULE}",
        *(
            [
                f"On the test cut-off the same rule cuts the mean list cost by "
                f"{cmp.cost_test['cost_cut_at_5pct_ndcg_loss']:.0%} against λ = 0 "
                f"(chosen there: {cmp.cost_test['chosen']['rule']})."
            ]
            if cmp.cost_test
            else []
        ),
        "",
        "**Candidate recall** (share of held-out positives each generator's candidates hold): "
        + ", ".join(f"{k} {_f(x, '.3f')}" for k, x in cmp.candidate_recall.items())
        + ". The merged set is their union, so it never holds less than its best member.",
        "",
        f"**Recency popularity half-life:** {prep.half_life[0]:g} days, the best on the validation cut-off of "
        + ", ".join(f"{h:g} d ({_f(x, '.4f')})" for h, x in prep.half_life[1].items())
        + ".",
    ]
    if result.tuning is not None:
        t = result.tuning
        md += ["", f"**Tuning:** Optuna TPE (seed 7), {t.trials} trials in {t.seconds:.0f} s, best validation "
               f"NDCG@20 {t.best_valid_ndcg:.4f}: learning_rate {t.params.learning_rate:.4f}, num_leaves "
               f"{t.params.num_leaves}, min_child_samples {t.params.min_child_samples}, feature_fraction "
               f"{t.params.feature_fraction:.2f}."]  # fmt: skip
    if cmp.absent:
        md += ["", "**Absent from the data:** " + ", ".join(cmp.absent) + "."]
    md += ["", "Splits: " + ", ".join(f"{s.name} {s.cutoff:%Y-%m-%d %H:%M}" for s in prep.splits),
           "", "Rows: " + ", ".join(f"{k} {n:,}" for k, n in result.rows.items()), ""]  # fmt: skip
    (out / "model_comparison.md").write_text("\n".join(md))
    if cost.choice is not None:
        plot_fronts(cost.valid, cost.choice, out / "cost_pareto_valid.png")
    else:
        (out / "cost_pareto_valid.png").unlink(missing_ok=True)
        (out / "cost_pareto.png").unlink(missing_ok=True)
    doc = {
        "scores": [s.as_dict() for s in cmp.scores],
        "verdict": v.as_dict(),
        "chosen_lambda": cost.lam,
        "chosen_cost_budget": cost.budget,
        "cost_rule": cost.reason,
        "business_rule": BUSINESS_RULE,
        "cost_valid": None if cost.choice is None else cost.choice.as_dict(),
        "cost_points_valid": [p.as_dict() for p in cost.valid],
        "cost_test": cmp.cost_test or None,
        "candidate_recall": cmp.candidate_recall,
        "half_life_days": prep.half_life[0],
        "half_life_valid_ndcg20": prep.half_life[1],
        "tuning": None if result.tuning is None else {
            "trials": result.tuning.trials, "seconds": result.tuning.seconds,
            "best_valid_ndcg20": result.tuning.best_valid_ndcg, "params": vars(result.tuning.params)},
        "absent": cmp.absent,
        "splits": [{"name": s.name, "cutoff": str(s.cutoff), "end": str(s.end)} for s in prep.splits],
        "rows": result.rows,
        "seconds": result.seconds,
        "unknown_cost": {"movies": prep.unknown_cost_movies},
    }  # fmt: skip
    (out / "model_comparison.json").write_text(json.dumps(_clean(doc), indent=2, default=str))
