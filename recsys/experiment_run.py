"""One experiment run end to end in the closed loop: start, wait for serving, drive traffic, stop, read, analyse.

The steps an operator (or a benchmark) takes by hand with `recsys experiment start`, the
simulator and `recsys experiment analyze`, in one call:

1. `ExperimentBook.start` writes the experiment file; serving's workers reload it within seconds.
   The run waits until answers (to a user outside the world) carry the experiment's
   `X-Experiment` header and every worker's check interval has passed since the edit: traffic
   served by a worker still on the previous file would be credited to the previous experiment.
2. `run_closed_loop` drives simulated hours of sessions against the service into `movielog`.
3. `ExperimentBook.stop` sends all traffic back to control.
4. The online metrics job reads `movielog` and `recsys.provenance` until idle and drains
   (every list final), writing the impressions the analysis reads.
5. The analysis (A/B or interleaving) over the loop's simulated window: the log lines' clock. The
   start and stop are stamped with that clock too (`ExperimentBook.start(at=...)`), as
   `recsys experiment start --stream-clock` does for a replayed stream.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recsys.closed_loop import DEFAULT_CONCURRENCY, LoopStats, run_closed_loop
from recsys.experiment_lifecycle import ExperimentBook
from serving.experiments import Experiment


class ExperimentNotServedError(RuntimeError):
    """Serving did not answer with the experiment within the wait."""


@dataclass(frozen=True)
class LoopPlan:
    """How much traffic an experiment run gets."""

    hours: float
    sessions_per_hour: float
    seed: int
    new_users_per_hour: float | None = None
    """Sign-ups per simulated hour (None: the simulator's setting)."""
    concurrency: int = DEFAULT_CONCURRENCY


@dataclass(frozen=True)
class ExperimentRun:
    """What one run did: the traffic, its simulated window, the monitor's summary and the analysis."""

    experiment: Experiment
    loop: LoopStats
    sim_start: datetime
    sim_end: datetime
    served_after_s: float
    """Seconds from the start until every probe answer carried the experiment."""
    monitor: str
    result: Any
    """`ExperimentResult` (A/B) or `InterleaveResult` (interleave)."""


def sim_time(ns: int) -> datetime:
    """Simulated nanoseconds since the epoch as an aware UTC datetime."""
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def wait_for_experiment(
    serving_url: str, name: str, probe_user: int, settle_s: float, probes: int = 8, timeout_s: float = 60.0
) -> float:
    """Seconds until answers carry `X-Experiment: name` and `settle_s` have passed; ExperimentNotServedError after `timeout_s`.

    Each probe opens a new connection (a kept-alive one stays with one worker); but which worker
    accepts is the kernel's choice, so the probes only show that the file is valid and loaded by
    some worker. Every worker re-reads the file within its check interval: `settle_s` (longer
    than that interval) from the edit is what makes the switch complete on all of them.
    """
    import httpx

    t0 = time.monotonic()
    streak = 0
    while time.monotonic() - t0 < timeout_s:
        try:
            answer = httpx.get(
                f"{serving_url}/recommend/{probe_user}", headers={"Connection": "close"}, timeout=5.0
            )
            streak = streak + 1 if answer.headers.get("X-Experiment") == name else 0
        except httpx.HTTPError:
            streak = 0
        if streak >= probes and time.monotonic() - t0 >= settle_s:
            return time.monotonic() - t0
        time.sleep(0.1 if streak else 0.5)
    raise ExperimentNotServedError(
        f"serving at {serving_url} did not answer with experiment {name!r} in {timeout_s:g} s"
    )


def wait_for_models(
    serving_url: str, name: str, version: int, settle_s: float, probes: int = 8, timeout_s: float = 60.0
) -> float:
    """Seconds until the API runs experiment `name` with model v`version` loaded and `settle_s` passed; ExperimentNotServedError after `timeout_s`.

    Reads `GET /admin/experiments` (no answer, so no impression, is produced), each probe on a new
    connection; an interleaved experiment is the case `wait_for_experiment` cannot probe, since
    its probe user is cold and cold answers are never interleaved. As there, the probes reach
    whichever worker accepts: `settle_s`, longer than the workers' file check interval, is what
    makes the switch complete on all of them.
    """
    import httpx

    from serving.settings import get_serving_settings

    token = get_serving_settings().check_admin_token().get_secret_value()
    headers = {"Authorization": f"Bearer {token}", "Connection": "close"}
    t0, streak = time.monotonic(), 0
    while time.monotonic() - t0 < timeout_s:
        try:
            view = httpx.get(f"{serving_url}/admin/experiments", headers=headers, timeout=5.0).json()
            ready = view.get("experiment") == name and not view.get("stopped")
            streak = streak + 1 if ready and version in view.get("models", {}).values() else 0
        except (httpx.HTTPError, ValueError):
            streak = 0
        if streak >= probes and time.monotonic() - t0 >= settle_s:
            return time.monotonic() - t0
        time.sleep(0.1 if streak else 0.5)
    raise ExperimentNotServedError(
        f"serving at {serving_url} did not run experiment {name!r} with v{version} in {timeout_s:g} s"
    )


def run_experiment(
    book: ExperimentBook,
    experiment: Experiment,
    plan: LoopPlan,
    serving_url: str,
    *,
    by: str,
    probe_user: int,
    path: str | None = None,
    progress: bool = False,
) -> ExperimentRun:
    """Start `experiment`, drive `plan`'s traffic, stop it, run the monitor until idle and analyse it."""
    from monitoring import experiment_analysis as ea
    from monitoring.settings import get_monitor_settings
    from monitoring.stream import run_stream
    from simulator.settings import get_sim_settings
    from simulator.state import read_state

    state = read_state(get_sim_settings().sim_dir)
    if state is None:
        raise RuntimeError("no simulator state: the history must run first")
    # Stamped with the simulated clock the loop starts and ends at: the analysis reads log time.
    book.start(
        experiment, by, replace=True, reason="closed-loop experiment run", at=sim_time(state.sim_now_ns)
    )
    from serving.settings import get_serving_settings

    # Workers re-read the file every `movie_check_s`; 2 s more for the reload itself.
    settle = get_serving_settings().movie_check_s + 2.0
    served = wait_for_experiment(serving_url, experiment.name, probe_user, settle)
    end_ns = state.sim_now_ns
    try:
        loop = run_closed_loop(
            plan.hours, plan.sessions_per_hour, serving_url, plan.seed, concurrency=plan.concurrency,
            new_users_per_hour=plan.new_users_per_hour, progress=progress,
        )  # fmt: skip
        end_ns = loop.sim_end_ns
    finally:
        book.stop(experiment.name, by, "closed-loop run finished", at=sim_time(end_ns))
    settings = get_monitor_settings()
    monitor = run_stream(settings, until_idle_s=3.0, serve_metrics=False).describe()
    start, end = sim_time(loop.sim_start_ns), sim_time(loop.sim_end_ns + 1)
    var: Path = settings.var_dir
    result: Any
    if experiment.kind == "interleave":
        result = ea.analyze_interleaving(var, experiment.name, start, end)
    else:
        result = ea.analyze(
            var, experiment.name, [a.name for a in experiment.arms], experiment.shares(),
            experiment.control_arm.name, start, end, experiment.primary_metric, path=path,
        )  # fmt: skip
    return ExperimentRun(experiment, loop, start, end, served, monitor, result)
