"""The demo's experiment: cost-aware ranking (the champion's λ) against λ = 0, split 50/50 over the closed loop.

Started through the lifecycle before the closed loop and stopped after it, both stamped with the
simulator's clock (the analysis reads log time; the loop saves its clock when it ends), and analysed once the monitoring step has turned the
streams into impressions: the terminal table, `var/experiments/<name>/analysis.json` and `arms.png`.
Both arms read self-descriptions for cold users, so the two differ in λ alone.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from recsys.demo import DemoContext
    from recsys.experiment_lifecycle import ExperimentBook

NAME: Final = "demo-cost-aware"
"""The demo experiment's name (on every answer of the closed loop)."""
BY: Final = "demo"


def experiments_file(var: Path) -> Path:
    """The experiment file the demo's API watches (under var/, not the repository's deploy/ file)."""
    return var / "experiments.yaml"


def _book(var: Path) -> ExperimentBook:
    from recsys.experiment_lifecycle import ExperimentBook

    return ExperimentBook(experiments_file(var), var)


def _sim_now() -> datetime:
    """The simulator's clock, where the closed loop starts (its log lines carry this time, not the wall's)."""
    from recsys.experiment_run import sim_time
    from simulator.settings import get_sim_settings
    from simulator.state import read_state

    state = read_state(get_sim_settings().sim_dir)
    if state is None:
        raise RuntimeError("no simulator state: the history step must run first")
    return sim_time(state.sim_now_ns)


def start_experiment(ctx: DemoContext) -> None:
    """Start the 50/50 λ experiment (the API picks it up within seconds); before the closed loop."""
    from recsys.experiment_lifecycle import parse_arm
    from recsys.settings import get_settings
    from serving.experiments import Experiment

    var = get_settings().var
    arms = [parse_arm("name=control,model=champion,weight=50,lam=0,cold_start=self_description"),
            parse_arm("name=treatment,model=champion,weight=50,cold_start=self_description")]  # fmt: skip
    experiment = Experiment.model_validate({"name": NAME, "salt": f"{NAME}-{ctx.seed}", "arms": arms,
                                            "primary_metric": "hit_rate",
                                            "description": "the champion's cost penalty vs none"})  # fmt: skip
    book = _book(var)
    book.start(experiment, BY, replace=True, reason="demo: cost-aware ranking vs λ = 0", at=_sim_now())
    if ctx.serving_url is not None:  # every worker follows the file before the loop's first call
        from recsys.experiment_run import wait_for_experiment

        wait_for_experiment(ctx.serving_url, NAME, probe_user=1, settle_s=6.0)
    ctx.facts["experiment"] = f"{NAME}: control λ = 0 vs treatment the champion's λ, 50/50 (file {book.path})"


def stop_experiment(ctx: DemoContext) -> None:
    """Stop it at the simulated time the closed loop reached (all traffic back to control)."""
    from recsys.settings import get_settings

    _book(get_settings().var).stop(NAME, BY, "demo: closed loop over", at=_sim_now())


def analyze_experiment(ctx: DemoContext) -> None:
    """Analyse the experiment from the monitoring step's impressions; the decision goes in the summary."""
    from monitoring.experiment_analysis import analyze
    from monitoring.experiment_plot import plot_arms
    from recsys.settings import get_settings

    var = get_settings().var
    experiment = _book(var).get(NAME)
    result = analyze(var, NAME, [a.name for a in experiment.arms], experiment.shares(), "control",
                     experiment.started_at, experiment.stopped_at, experiment.primary_metric)  # fmt: skip
    folder = var / "experiments" / NAME
    folder.mkdir(parents=True, exist_ok=True)
    import json

    (folder / "analysis.json").write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    png = plot_arms(result, folder / "arms.png")
    users = ", ".join(f"{a.arm} {a.users:,} users" for a in result.arms)
    line = f"{result.decision} ({users}; SRM {'ok' if result.srm.ok else 'FAILED'})"
    for comparison in result.comparisons:
        for metric in ("hit_rate", "cost_per_watch"):
            est = comparison.estimates.get(metric)
            if est is not None:
                line += (f"; {metric} {est.control:.4g} -> {est.treatment:.4g}, effect {est.effect:+.4g} "
                         f"[{est.ci_low:+.4g}, {est.ci_high:+.4g}], p {est.p_value:.3g}")  # fmt: skip
    ctx.facts["experiment result"] = line
    ctx.where["experiment"] = f"{png} and {folder / 'analysis.json'}; recsys experiment analyze {NAME}"
