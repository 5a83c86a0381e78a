"""The real platform steps of the operate drift demonstration (`recsys.operate_drift`): services, loop, jobs, operate.

`run_operate_drift(var, serving_url, metadata_url, frozen_port, plan, ...)` runs on a platform
already set up (history ingested, champion serving at `serving_url`): it stops any running
experiment and challenger, pins today's champion in a second API (the frozen platform), runs the
days and returns the JSON record with the daily figures, the pooled after-drift hit rates and
the plot's path. The frozen API is stopped at the end.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recsys.operate_drift import (
    FROZEN_EXPERIMENT,
    DriftHooks,
    DriftPlan,
    SplitClient,
    after_drift,
    plot_days,
    run_days,
)

BY = "operate-drift-demo"
"""The `by` of the demonstration's experiment changes in the lifecycle journal."""


def _frozen_api(var: Path, port: int, version: int, metadata_url: str | None) -> Any:
    """A second recommendation API serving version `version` to everyone, whatever the aliases say."""
    from recsys.experiment_lifecycle import ExperimentBook
    from recsys.services import ServiceProcess
    from serving.experiments import Arm, Experiment

    path = var / "frozen-experiments.yaml"
    path.write_text("experiments: []\n")
    arm = Arm(name="frozen", weight=1, model=f"v{version}")
    pinned = Experiment(name=FROZEN_EXPERIMENT, salt=FROZEN_EXPERIMENT, arms=(arm,),
                        description=f"the frozen platform: v{version} pinned, never retrained")  # fmt: skip
    ExperimentBook(path, var).start(pinned, by=BY, reason="operate drift demonstration: the frozen platform")
    api = ServiceProcess("recommender-api-frozen", var,
                         ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                         f"http://127.0.0.1:{port}", "/readyz")  # fmt: skip
    env = {"RECSYS_SERVING_CLOCK": "stream", "RECSYS_SERVING_EXPERIMENTS_FILE": str(path)}
    if metadata_url is not None:
        env["RECSYS_SERVING_METADATA_URL"] = metadata_url
    api.up(env=env, timeout_s=300.0)
    return api


def _reset(var: Path) -> int:
    """Stop a running experiment and clear the challenger: the demo starts from the champion alone; its version."""
    from ranking.registry import ModelRegistry
    from ranking.settings import RankSettings
    from recsys.experiment_lifecycle import ExperimentBook
    from serving.settings import get_serving_settings

    book = ExperimentBook(get_serving_settings().experiments_file, var)
    running = book.running()
    if running is not None:
        book.stop(running.name, by=BY, reason="operate drift demonstration starts from the champion alone")
    registry = ModelRegistry.open(RankSettings(var_dir=var))
    registry.clear_challenger()
    champion = registry.aliases().get("champion")
    if champion is None:
        raise RuntimeError("no champion: the demonstration needs a trained platform")
    return champion


def _hooks(
    var: Path, serving_url: str, frozen_url: str, plan: DriftPlan, log: Callable[[str], None]
) -> DriftHooks:
    from ingestion.factory import build_worker
    from ingestion.settings import get_ingest_settings
    from monitoring.layout import MonitorLayout
    from monitoring.settings import get_monitor_settings
    from monitoring.stream import run_stream
    from monitoring.tables import read_impressions
    from ranking.registry import ModelRegistry
    from ranking.settings import RankSettings
    from recsys.closed_loop import run_closed_loop
    from recsys.operate import Plan, operate_once
    from recsys.operate_adapters import real_ports
    from recsys.settings import get_settings
    from simulator.settings import get_sim_settings

    s, sim = get_settings(), get_sim_settings()
    ports = real_ports(var, s.redis_url, var / "reports" / "operate", progress=lambda *a, **k: None)
    # Judged once a simulated day: the plan is a day of log time (a little less: the clock is the
    # latest event ingested, which stops a few minutes short of the day's end).
    operate_plan = Plan(kind="interleave", planned_users=None, planned_days=0.9)
    registry = ModelRegistry.open(RankSettings(var_dir=var))

    def loop(hours: float, drifts: list[Any], seed: int) -> Any:
        client = SplitClient(serving_url, frozen_url, plan.frozen_share, "operate-drift",
                             sim.request_timeout_ms, sim.closed_loop_concurrency)  # fmt: skip
        return run_closed_loop(hours, plan.sessions_per_hour, serving_url, seed, recommender=client,
                               drifts=drifts, progress=False)  # fmt: skip

    def ingest() -> str:
        # A daily catch-up, like a nightly batch: the movie job (sessions, movie features) runs once at
        # the end instead of every 30 wall seconds while the day's lines are consumed.
        update = {"metrics_port": 0, "movie_refresh_s": 1e9}
        stats = build_worker(get_ingest_settings().model_copy(update=update)).run(idle_exit_s=5)
        return f"ingestion: {stats.messages:,} messages, {stats.landed:,} landed, {stats.dlq:,} to the DLQ"

    def settle(decision: Any) -> str | None:
        if decision.action != "started" or decision.challenger is None:
            return None
        from recsys.experiment_run import wait_for_models
        from serving.settings import get_serving_settings

        settle_s = get_serving_settings().movie_check_s + 1.0  # every worker re-read the file
        waited = wait_for_models(serving_url, decision.experiment, decision.challenger, settle_s)
        return f"serving runs {decision.experiment} with v{decision.challenger} after {waited:.1f} s"

    return DriftHooks(
        loop=loop,
        ingest=ingest,
        monitor=lambda: run_stream(get_monitor_settings(), until_idle_s=3.0, serve_metrics=False).describe(),
        operate=lambda: operate_once(ports, operate_plan),
        impressions=lambda: read_impressions(MonitorLayout(var)),
        champion=lambda: registry.aliases().get("champion"),
        log=log,
        settle=settle,
    )


def run_operate_drift(
    var: Path,
    serving_url: str,
    metadata_url: str | None,
    frozen_port: int,
    plan: DriftPlan,
    plot: Path,
    tune_seconds: float,
    log: Callable[[str], None] = print,
    history_days: float | None = None,
) -> dict[str, Any]:
    """Run the demonstration on the set-up platform; the record for the benchmark's `operate` key."""
    from simulator.settings import get_sim_settings
    from simulator.state import read_state

    t0 = time.monotonic()
    frozen = _reset(var)
    os.environ["RECSYS_RANK_TUNE_SECONDS"] = str(tune_seconds)  # every training run reads RankSettings anew
    if history_days is not None:  # a window keeps each day's retrain as long as the first one's
        os.environ["RECSYS_RANK_HISTORY_DAYS"] = str(history_days)
    state = read_state(get_sim_settings().sim_dir)
    if state is None:
        raise RuntimeError("no simulator state: the history must run first")
    start = datetime.fromtimestamp(state.sim_now_ns / 1e9, UTC)
    api = _frozen_api(var, frozen_port, frozen, metadata_url)
    try:
        days = run_days(_hooks(var, serving_url, api.base_url, plan, log), plan, start)
    finally:
        api.down()
    record: dict[str, Any] = {
        "plan": plan.__dict__, "frozen_version": frozen, "start": start.isoformat(),
        "train_history_days": history_days, "tune_seconds": tune_seconds,
        **after_drift(days, plan), "days": [d.to_dict() for d in days],
        "plot": str(plot_days(days, plan, plot)), "seconds": round(time.monotonic() - t0, 1),
    }  # fmt: skip
    return record
