"""`recsys demo`: the platform's main job at demo scale, step by step, ending with where to look."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.panel import Panel

from recsys.demo_cold_start import cold_start_step
from recsys.demo_experiment import analyze_experiment, start_experiment, stop_experiment
from recsys.demo_monitor import monitor_step

console = Console()


@dataclass
class DemoContext:
    """What earlier steps hand to later ones, and what the final summary prints."""

    users: int
    movies: int
    days: float = 4.0
    sessions_per_hour: float = 300.0
    seed: int = 7
    closed_loop_hours: float = 12.0
    """Simulated hours of closed loop after the history (the history ends this long, plus 1 h, before now)."""
    reports: Path = Path("reports")
    """Where training and evaluation write their comparison and plots."""
    lines_produced: int = 0
    metadata_url: str | None = None
    """Base URL of the metadata API the demo started (its ingestion enriches from it)."""
    serving_url: str | None = None
    """Base URL of the recommendation API the demo started (its closed loop calls it)."""
    loop_taken: tuple[int, int] | None = None
    """(sessions that took a listed movie, answered lists) of the closed loop, as the simulator recorded them."""
    facts: dict[str, str] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)
    cleanup: list[Callable[[], object]] = field(default_factory=list)


Step = Callable[[DemoContext], None]


def _stack(ctx: DemoContext) -> None:
    from recsys.stack.manager import CORE, Stack

    for s in Stack().up(list(CORE)):
        ctx.facts[s.name] = f"{s.address} ({s.state})"
    ctx.where["stack status"] = "recsys stack status"
    ctx.where["logs"] = "var/log/"


def _world(ctx: DemoContext) -> None:
    from datetime import UTC, datetime

    from simulator.settings import get_sim_settings
    from simulator.store import save_world
    from simulator.temporal import TemporalConfig
    from simulator.world import generate_world

    s = get_sim_settings()
    # The simulated period is centred on today: releases, hype and weekly rhythm fall in the demo's history.
    temporal = TemporalConfig().centred(datetime.now(UTC))
    world = generate_world(ctx.users, ctx.movies, seed=ctx.seed, temporal=temporal)
    save_world(world, s.sim_dir)
    ctx.facts["world"] = f"{ctx.users:,} users x {ctx.movies:,} movies (seed {ctx.seed}) in {s.sim_dir}"


def _metadata_api(ctx: DemoContext) -> None:
    from recsys.services import metadata_api
    from recsys.settings import get_settings

    # Listens on RECSYS_SIM_API_HOST/PORT; the demo's ingestion uses this address (not RECSYS_SIM_API_URL).
    api = metadata_api(get_settings().var)
    api.up()
    ctx.cleanup.append(api.down)
    ctx.metadata_url = api.base_url
    ctx.facts["metadata API"] = api.base_url


def _history(ctx: DemoContext) -> None:
    from events.kafka import ensure_topics
    from simulator.history import backfill, default_start
    from simulator.settings import get_sim_settings
    from simulator.store import load_world

    s = get_sim_settings().model_copy(
        update={"sessions_per_hour": ctx.sessions_per_hour, "malformed_rate": 0.001, "duplicate_rate": 0.001}
    )
    ensure_topics()
    # History ends early enough that the unpaced closed loop after it stays behind the wall clock:
    # ingestion refuses lines dated ahead of their Kafka message time (future_timestamp).
    end_ns = time.time_ns() - int((ctx.closed_loop_hours + 1) * 3600e9)
    start_ns = default_start(ctx.days, end_ns=end_ns)
    result, _ = backfill(
        load_world(s.sim_dir, texts=False), s, ctx.days, start_ns=start_ns, to_kafka=True, seed=ctx.seed
    )
    st = result.stats
    ctx.facts["history"] = (
        f"{ctx.days:g} days: {st.lines:,} lines ({st.sessions:,} sessions, {st.requests:,} requests, "
        f"{st.malformed:,} malformed) produced to `movielog`"
    )
    ctx.lines_produced = st.lines


def _ingest(ctx: DemoContext) -> None:
    from ingestion.factory import build_worker
    from ingestion.settings import get_ingest_settings

    update: dict[str, object] = {"metrics_port": 0}
    if ctx.metadata_url is not None:
        update["meta_url"] = ctx.metadata_url
    settings = get_ingest_settings().model_copy(update=update)
    worker = build_worker(settings)
    stats = worker.run(idle_exit_s=5)
    ctx.facts["ingestion"] = (
        f"{stats.messages:,} messages: {stats.landed:,} landed {dict(stats.by_kind)}, "
        f"{stats.dlq:,} to `movielog.dlq`; {stats.pushes_failed} failed online pushes"
    )
    ctx.where["offline store"] = str(settings.offline_dir)
    ctx.where["dead letters"] = "recsys events tail --topic movielog.dlq"


def _ingest_loop(ctx: DemoContext) -> None:
    before = ctx.facts.get("ingestion")
    _ingest(ctx)  # the consumer group resumes at its committed offsets: only the new lines
    ctx.facts["ingestion (closed loop)"] = ctx.facts.pop("ingestion")
    if before is not None:
        ctx.facts["ingestion"] = before


def _train(ctx: DemoContext) -> None:
    from recsys.settings import get_settings
    from recsys.training import run_training

    s = get_settings()
    report = ctx.reports
    result, decision = run_training(s.var, s.redis_url, report, progress=console.print)
    table = {x.model: x for x in result.scores}
    line = ", ".join(f"{name} {x.ndcg20:.4f}" for name, x in table.items())
    ctx.facts["training"] = f"NDCG@20 on the test cut-off: {line}; cost rule {result.cost.rule.label}"
    ctx.facts["promotion"] = decision.summary() if decision else "not registered"
    ctx.facts["registry"] = f"MLflow under {s.var / 'mlflow'} (`recsys models list`)"
    ctx.where["model comparison"] = str(report / "model_comparison.md")
    ctx.where["cost Pareto plots"] = f"{report / 'cost_pareto_valid.png'}, {report / 'cost_pareto.png'}"
    ctx.where["models"] = "recsys models list"


def _evaluate(ctx: DemoContext) -> None:
    from recsys.settings import get_settings
    from recsys.training import run_evaluation

    s = get_settings()
    selected = run_evaluation(s.var, s.redis_url, ctx.reports, progress=console.print)
    ctx.facts["evaluation"] = f"registered models compared with the baselines; selected: {selected}"


def _serve(ctx: DemoContext) -> None:
    from recsys.services import recommender_api
    from recsys.settings import get_settings

    # Listens on RECSYS_SERVING_HOST/PORT; the closed loop calls this address (not RECSYS_SERVING_URL).
    api = recommender_api(get_settings().var)
    # The simulated stream's clock is not the wall clock (the history ends hours before now), so the API
    # takes "now" from the latest event ingested, as for any replayed log: time features match training's.
    from recsys.demo_experiment import experiments_file

    # The demo's experiment file lives under var/ (the lifecycle edits it; deploy/ stays as shipped).
    env = {"RECSYS_SERVING_CLOCK": os.environ.get("RECSYS_SERVING_CLOCK", "stream"),
           "RECSYS_SERVING_EXPERIMENTS_FILE": str(experiments_file(get_settings().var))}  # fmt: skip
    if ctx.metadata_url is not None:  # a cold user whose description row has not landed yet is read inline
        env["RECSYS_SERVING_METADATA_URL"] = ctx.metadata_url
    api.up(env=env, timeout_s=300.0)
    ctx.cleanup.append(api.down)
    base = ctx.serving_url = api.base_url
    ctx.facts["recommendation API"] = f"{base} (2 workers; champion from the registry)"
    # The demo stops its API at the end: the hint starts one on the same state.
    ctx.where["try it"] = f"recsys serve &  then  curl -i {base}/recommend/1"
    ctx.where["API metrics"] = f"{base}/metrics (while it runs)"
    ctx.where["experiments (admin)"] = f"curl -H 'Authorization: Bearer <token>' {base}/admin/experiments"


def _closed_loop(ctx: DemoContext) -> None:
    from recsys.closed_loop import run_closed_loop

    loop = run_closed_loop(ctx.closed_loop_hours, ctx.sessions_per_hour, ctx.serving_url, ctx.seed + 1)
    ctx.loop_taken = (loop.accepted, loop.answered)
    ctx.facts["closed loop"] = loop.describe()


STEPS: list[tuple[str, Step]] = [
    ("start the local stack (Kafka, Redis)", _stack),
    ("generate the simulated world (catalogue, users, tastes)", _world),
    ("start the simulator's metadata API", _metadata_api),
    ("backfill history into Kafka (open loop, with injected faults)", _history),
    ("ingest: Kafka -> Parquet offline store + DLQ + Feast features", _ingest),
    ("train: Feast point-in-time sets -> LambdaRank + cost penalty -> MLflow", _train),
    ("evaluate: registered models vs popularity, ALS and the oracle", _evaluate),
    (
        "cold start: popularity vs self-descriptions for users who signed up during the history",
        cold_start_step,
    ),
    ("serve: the recommendation API loads the champion, its candidates and online features", _serve),
    ("experiment: start cost-aware ranking vs λ = 0, 50/50, without restarting the API", start_experiment),
    ("closed loop: simulated users call /recommend and watch what appeals to them", _closed_loop),
    ("experiment: stop (all traffic back to control)", stop_experiment),
    ("ingest the closed loop's events (the platform learns from its own answers)", _ingest_loop),
    ("monitor: hit rate, cost, availability from the streams; drift, skew; the dashboard", monitor_step),
    ("experiment: analyse the closed loop's split (effects, intervals, SRM, decision)", analyze_experiment),
]
"""The demo's steps in order; each issue adds its own."""


def run_demo(users: int, movies: int) -> None:
    """Run every step with timings, then print the facts gathered and where to look."""
    ctx = DemoContext(users=users, movies=movies)
    started = time.monotonic()
    try:
        for i, (title, step) in enumerate(STEPS, 1):
            t0 = time.monotonic()
            console.rule(f"[bold]{i}/{len(STEPS)} {title}")
            step(ctx)
            console.print(f"[green]done[/green] in {time.monotonic() - t0:.1f} s")
    finally:
        for stop in reversed(ctx.cleanup):
            stop()
    facts = "\n".join(f"[bold]{k}[/bold]: {v}" for k, v in ctx.facts.items())
    where = "\n".join(f"[bold]{k}[/bold]: {v}" for k, v in ctx.where.items())
    console.print(Panel(facts, title=f"demo finished in {time.monotonic() - started:.0f} s"))
    console.print(Panel(where, title="where to look"))
