"""Registration and promotion governed by the verdict (`ranking.verdict`), for the trained ranker and the baselines.

Every trained ranker is registered. It becomes champion only when the verdict says it beats the
best baseline (and, with a champion in place, the registry's gates against it pass). When it
loses and there is no champion yet, the best baseline policy is registered as a version of its
own (`kind: baseline` in its `meta.json`, the same candidate index beside it) and promoted: the
service then serves that policy through the same API, with the same provenance. When it loses
and the champion is itself a baseline, the best baseline refit on the latest data replaces it
the same way: a baseline version is a policy plus a candidate index fit when it was registered,
and the verdict has just measured every policy with a fresh index on the newest data, so keeping
the old one would serve a stale index forever (a daily `recsys train` never refreshed it). When
it loses to a ranker champion, the champion stays. The reason is recorded on the version and printed.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ranking.candidate_index import INDEX_DIR
from ranking.evaluate import ModelScores
from ranking.ranker import META_FILE, Ranker
from ranking.registry import KIND_BASELINE


@dataclass(frozen=True)
class Decision:
    """What training did with the registry, in one line for the CLI and the demo."""

    ranker_version: int
    champion_version: int | None
    promoted: str
    """`ranker`, `baseline:<policy>` or `none` (the champion stayed)."""
    reason: str

    def summary(self) -> str:
        """What was promoted and why."""
        if self.promoted == "ranker":
            head = f"v{self.ranker_version} (LambdaRank) promoted to champion"
        elif self.promoted.startswith("baseline:"):
            head = (f"v{self.ranker_version} (LambdaRank) registered, not promoted; baseline policy "
                    f"`{self.promoted.split(':', 1)[1]}` registered as v{self.champion_version} and promoted to champion")  # fmt: skip
        else:
            head = f"v{self.ranker_version} (LambdaRank) registered, not promoted; champion stays v{self.champion_version}"
        return f"{head}: {self.reason}"


def write_baseline(model_dir: Path, out_dir: Path, policy: str, ranker: Ranker) -> Path:
    """A baseline version's folder: `meta.json` naming the policy, and the model's own candidate index."""
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    shutil.copytree(model_dir / INDEX_DIR, out_dir / INDEX_DIR)
    meta = {"kind": KIND_BASELINE, "policy": policy, "features": [], "feature_service": ranker.meta.feature_service,
            "cost_scale": ranker.meta.cost_scale, "unknown_cost": ranker.meta.unknown_cost,
            "default_lambda": 0.0, "default_cost_budget": None}  # fmt: skip
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2))
    return out_dir


def figures(score: ModelScores) -> dict[str, float]:
    """The registered metrics of one comparison row (finite ones only)."""
    from math import isfinite

    values = {"ndcg20": score.ndcg20, "cost20": score.cost20, "p99_ms": score.p99_ms, "recall20": score.recall20,
              "map20": score.map20, "coverage": score.coverage, "share_of_oracle": score.share_of_oracle}  # fmt: skip
    return {k: float(v) for k, v in values.items() if v is not None and isfinite(v)}


def register_and_promote(
    registry: Any, result: Any, provenance: Any, smoke: Any, progress: Any = print
) -> Decision:
    """Register the trained ranker; promote it, or the best baseline, or nobody, as the verdict says."""
    cmp = result.comparison
    verdict = cmp.verdict
    rows = {s.model: s for s in cmp.scores}
    info = registry.register(
        result.model_dir, provenance, figures(rows[verdict.candidate]), result.report_dir
    )
    champion = registry.resolve("champion")
    reason = verdict.reason()
    if verdict.wins:
        outcome = registry.promote(info.version, smoke, force=champion is None, reason=reason)
        if outcome.accepted:
            return Decision(info.version, info.version, "ranker", reason)
        registry.set_challenger(info.version)
        return Decision(info.version, champion.version if champion else None, "none",
                        f"{reason}; but the gates against the champion refused it ({outcome.reason})")  # fmt: skip
    if champion is not None and getattr(champion, "kind", None) != KIND_BASELINE:
        return Decision(info.version, champion.version, "none", reason)
    if champion is not None:
        reason = (f"{reason}; the baseline champion v{champion.version} gives way to the best baseline "
                  f"`{verdict.baseline}` refit on the latest data")  # fmt: skip
    base_dir = write_baseline(result.model_dir, result.model_dir.parent / f"baseline-{verdict.baseline}",
                              verdict.baseline, Ranker.load(result.model_dir))  # fmt: skip
    binfo = registry.register(base_dir, provenance, figures(rows[verdict.baseline]), result.report_dir)
    registry.promote(binfo.version, smoke, force=True, reason=reason)
    return Decision(info.version, binfo.version, f"baseline:{verdict.baseline}", reason)
