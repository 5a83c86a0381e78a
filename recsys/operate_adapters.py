"""The real side effects of `recsys operate` (`recsys.operate.Ports`): training, MLflow, the experiment file, analysis.

`real_ports(var, redis_url, reports_dir, progress)` wires them; the state machine itself stays in
`recsys.operate`. Registration without promotion repeats what `recsys.training.run_training`
records with a version (its params and provenance) but leaves the aliases alone: the online
experiment, not the offline verdict, decides on the champion.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsys.operate import DECISIONS, DecisionLog, Ports, Readout, Trained
from serving.experiments import Experiment

if TYPE_CHECKING:
    from monitoring.experiment_analysis import ExperimentResult, InterleaveResult
    from ranking.registry import ModelRegistry
    from ranking.train import TrainResult
    from recsys.experiment_lifecycle import ExperimentBook


def interleave_summary(result: InterleaveResult) -> str:
    """The interleaving read-out in one sentence (team A = champion, B = challenger)."""
    p = result.preference
    return (f"{p.n:,} credited users of {result.users:,} exposed; challenger (B) preferred by {p.wins_b:,}, "
            f"champion (A) by {p.wins_a:,}, {p.ties:,} ties; ΔAB {p.delta:+.3f}, {1 - p.alpha:.0%} CI "
            f"[{p.ci_low:+.3f}, {p.ci_high:+.3f}], sign-test p = {p.p_value:.3g}: {result.decision}")  # fmt: skip


def ab_summary(result: ExperimentResult) -> str:
    """The A/B read-out on the primary metric in one sentence (control = champion)."""
    users = ", ".join(f"{a.arm} {a.users:,}" for a in result.arms)
    if not result.comparisons:
        return f"A/B users per arm: {users}: {result.decision}"
    c = result.comparisons[0]
    e = c.estimates.get(result.primary_metric)
    if e is None:
        return f"A/B users per arm: {users}; {result.primary_metric} not measured: {result.decision}"
    return (f"A/B on {result.primary_metric}: champion {e.control:.4f} vs challenger {e.treatment:.4f} "
            f"(users {users}), effect {e.effect:+.4f} ({e.relative:+.1%}), {1 - result.alpha:.0%} CI "
            f"[{e.ci_low:+.4f}, {e.ci_high:+.4f}], always-valid p = {c.always_valid_p:.3g}, "
            f"SRM p = {result.srm.p_value:.3g}: {result.decision}")  # fmt: skip


def read_out(var: Path, experiment: Experiment, since: datetime) -> Readout:
    """The analysis of a running operate experiment over [since, now) of log time."""
    from monitoring.experiment_analysis import analyze, analyze_interleaving
    from recsys.experiment_guard import control_of

    if experiment.kind == "interleave":
        inter = analyze_interleaving(var, experiment.name, since, None)
        return Readout(inter.preference.n, inter.decision, interleave_summary(inter), inter.to_dict())
    ab = analyze(var, experiment.name, [a.name for a in experiment.arms], experiment.shares(),
                 control_of(experiment), since, None, experiment.primary_metric)  # fmt: skip
    users = min((a.users for a in ab.arms), default=0)
    return Readout(users, ab.decision, ab_summary(ab), ab.to_dict())


def register_only(var: Path, registry: ModelRegistry, result: TrainResult) -> tuple[int, str]:
    """Register the offline verdict's pick of a training run, moving no alias: (version, what it is).

    The pick is the trained ranker when it beats the best baseline, else that baseline policy refit
    on the same data (its candidate index is this run's): a stale champion is challenged by a fresh
    version either way, which is what keeps the service up with drift.
    """
    from ranking.promotion import figures, write_baseline
    from ranking.ranker import Ranker
    from recsys.training import training_provenance

    # The same provenance `run_training` records, so versions from both paths compare in `recsys models`.
    provenance = training_provenance(var, result)
    verdict = result.comparison.verdict
    rows = {s.model: s for s in result.comparison.scores}
    folder, pick, what = result.model_dir, verdict.candidate, "the trained LambdaRank"
    if not verdict.wins:
        pick, what = verdict.baseline, f"baseline policy `{verdict.baseline}` refit on the latest data"
        folder = write_baseline(result.model_dir, result.model_dir.parent / f"baseline-{pick}", pick,
                                Ranker.load(result.model_dir))  # fmt: skip
    info = registry.register(folder, provenance, figures(rows[pick]), result.report_dir,
                             description=f"registered by recsys operate (challenger candidate: {what})")  # fmt: skip
    result.version = info.version
    return info.version, what


def _retrain(var: Path, redis_url: str, reports_dir: Path, registry: ModelRegistry, progress: Any) -> Any:
    from recsys.training import run_training

    def retrain(bootstrap: bool) -> Trained:
        result, decision = run_training(var, redis_url, reports_dir, register=bootstrap, progress=progress)
        verdict = result.comparison.verdict
        if decision is not None:  # bootstrap: training registered and promoted by its verdict
            return Trained(
                decision.ranker_version, verdict.wins, decision.summary(), decision.champion_version
            )
        version, what = register_only(var, registry, result)
        # The registered version is always the verdict's pick (ranker or refit baseline): it may challenge.
        return Trained(version, True, f"{what}: {verdict.reason()}")

    return retrain


def _guard(var: Path, book: ExperimentBook) -> Any:
    def guard(dry_run: bool) -> str | None:
        from recsys.experiment_guard import LOOKBACK, check, control_of, judged_arms, limits_of, windows_of

        if not dry_run:
            result = check(book)  # stops, journals and pages on a breach
            return result.stopped.reason if result is not None and result.stopped is not None else None
        from monitoring.guardrails import arm_health, breached

        experiment = book.running()
        if experiment is None:
            return None
        import pandas as pd

        since = pd.Timestamp(experiment.started_at or datetime.min.replace(tzinfo=UTC))
        health = arm_health(windows_of(var), judged_arms(experiment), since, LOOKBACK, limits_of(experiment))
        bad = breached(health, control_of(experiment))
        return "; ".join(f"{h.arm}: {', '.join(h.breaches)}" for h in bad) or None

    return guard


def _clock(redis_url: str) -> Any:
    def clock() -> datetime:
        from recsys.training import stream_clock

        try:
            return stream_clock(redis_url).to_pydatetime()
        except RuntimeError:  # nothing ingested yet: there is no log time, the wall clock stands in
            return datetime.now(UTC)

    return clock


def real_ports(var: Path, redis_url: str, reports_dir: Path, progress: Any = print) -> Ports:
    """The platform's own side effects: training, the MLflow registry, the experiment file, the analysis, alerts."""
    from ranking.registry import ModelRegistry
    from ranking.settings import RankSettings
    from recsys.experiment_guard import _send
    from recsys.experiment_lifecycle import ExperimentBook
    from serving.settings import get_serving_settings

    registry = ModelRegistry.open(RankSettings(var_dir=var))
    book = ExperimentBook(get_serving_settings().experiments_file, var)
    return Ports(
        retrain=_retrain(var, redis_url, reports_dir, registry, progress),
        registry=registry,
        book=book,
        guard=_guard(var, book),
        analyze=lambda experiment, since: read_out(var, experiment, since),
        clock=_clock(redis_url),
        alert=_send,
        journal=DecisionLog(var / DECISIONS),
    )
