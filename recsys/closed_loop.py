"""The closed loop as a reusable job: simulated users call the live `/recommend` and their log lines go to Kafka.

The demo's closed-loop step and the experiment benchmark both run it. The loop continues the
simulator's saved state (simulated time, next new user) left by the history or an earlier loop,
runs unpaced (as fast as the service answers) for `hours` of simulated time, and saves the state
again, so consecutive loops follow one another on the simulated clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simulator.drift import Drift
from simulator.recommend import RecommendClient

DEFAULT_CONCURRENCY = 4
"""Calls in flight: unpaced, a larger burst only measures queueing on a 2-core machine."""


@dataclass(frozen=True)
class LoopStats:
    """What one closed-loop run did, as the simulator recorded it."""

    hours: float
    sim_start_ns: int
    """Simulated time the loop started at (the saved state's)."""
    sim_end_ns: int
    """Simulated time it reached (the next loop starts here)."""
    sessions: int
    accounts: int
    requests: int
    failed: int
    """Calls that failed or missed the deadline (the front end's status 0 or 5xx)."""
    accepted: int
    """Sessions that watched a recommended movie."""
    p50_ms: float
    p99_ms: float
    """Answer times seen by the front end (timeouts count as the deadline)."""
    seconds: float

    @property
    def answered(self) -> int:
        """Calls answered in time."""
        return self.requests - self.failed

    def describe(self) -> str:
        """One line for a summary: calls, failures, answer times and the take rate."""
        taken = self.accepted / self.sessions if self.sessions else 0.0
        return (
            f"{self.hours:g} simulated hours: {self.requests:,} /recommend calls, {self.failed:,} failed "
            f"or late; answer time seen by the front end p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms; "
            f"{self.accepted:,} of {self.sessions:,} sessions ({taken:.1%}) watched a recommended movie"
        )


def percentile(times: list[float], q: float) -> float:
    """The q-quantile (0..1) of answer times; NaN when there are none."""
    return float(np.percentile(np.asarray(times, dtype=np.float64), q * 100)) if times else float("nan")


def run_closed_loop(
    hours: float,
    sessions_per_hour: float,
    serving_url: str | None,
    seed: int,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    new_users_per_hour: float | None = None,
    progress: bool = True,
    recommender: RecommendClient | None = None,
    drifts: Sequence[Drift] | None = None,
) -> LoopStats:
    """Run `hours` of simulated closed-loop traffic against `serving_url` (None: the settings') into `movielog`.

    `recommender` replaces the client built from `serving_url` (it is closed at the end);
    `drifts` replaces the settings' scheduled drifts (`simulator.drift`).
    """
    from events.kafka import ensure_topics
    from simulator.clock import SimClock
    from simulator.run import drive
    from simulator.settings import get_sim_settings
    from simulator.sinks import KafkaSink
    from simulator.state import read_state
    from simulator.store import load_world
    from simulator.traffic import Traffic

    update: dict[str, object] = {
        "sessions_per_hour": sessions_per_hour,
        "speed": 0.0,
        "closed_loop_concurrency": concurrency,
    }
    if serving_url is not None:
        update["serving_url"] = serving_url
    if new_users_per_hour is not None:
        update["new_users_per_hour"] = new_users_per_hour
    if drifts is not None:
        update["drifts"] = list(drifts)
    s = get_sim_settings().model_copy(update=update)
    world = load_world(s.sim_dir, texts=False)
    state = read_state(s.sim_dir)
    if state is None:
        raise RuntimeError("no simulator state: the history must run first")
    ensure_topics()
    rec = recommender or RecommendClient(s.serving_url, s.request_timeout_ms, s.closed_loop_concurrency)
    gen = Traffic(world, s, "closed", state.sim_now_ns, next_user=state.next_user, recommender=rec,
                  clock=SimClock(state.sim_now_ns, 0.0), seed=seed)  # fmt: skip
    try:
        result = drive(gen, [KafkaSink(s.topic)], until_ns=state.sim_now_ns + int(hours * 3600e9),
                       sim_dir=s.sim_dir, progress=progress)  # fmt: skip
    finally:
        rec.close()
    st = result.stats
    return LoopStats(
        hours, state.sim_now_ns, result.sim_end_ns, st.sessions, st.accounts, st.requests, st.requests_failed,
        st.accepted, percentile(rec.answer_ms, 0.5), percentile(rec.answer_ms, 0.99), result.seconds,
    )  # fmt: skip
