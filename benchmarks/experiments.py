"""The business's three experiments, end to end in the closed loop: simulated users calling the live service.

From a clean var dir of its own (`var/bench-experiments`, deleted first) and a private stack
(Kafka and Redis on their own ports under that var dir: the shared broker's topics and the shared
Redis belong to the test suite and other runs, whose lines and features would mix with ours), the
demo's setup steps run: world, metadata API, history into Kafka, ingestion, training (LambdaRank,
registry, promotion), serving (`recsys serve`, 2 workers). Then three experiments, each started
with `ExperimentBook.start` (serving's workers pick the file up within seconds; the benchmark
waits until answers carry the experiment's `X-Experiment`), driven by `recsys.closed_loop`,
stopped, read by the online metrics job (`recsys monitor stream` until idle) and analysed:

- `cold_start`: `cold_start: popular` (control) vs `self_description`, read over the lists the
  cold-start path answered (users without history; the closed loop signs up `--cold-new-users`
  per hour). Primary metric: hit rate.
- `cost`: the trained LambdaRank (pinned `v<N>`) at λ = 0 without budget vs its chosen cost rule
  (λ and budget: `lam: null`). Primary: cost per watch; `cost_per_watch_change` (relative),
  `rating_change` (stars of credited ratings), completion of recommended watches.
- `ranker`: champion vs a deliberately different registered version as `challenger` (the trained
  LambdaRank when a baseline policy won the promotion, else the `--challenger-policy` baseline),
  once as A/B and once interleaved, on the same simulated population (same traffic seed and
  length). `users_needed_ab`: users per arm for 80% power at the A/B's observed hit-rate effect
  (`power.users_needed`); `users_needed_interleaving`: exposed users at the observed
  preference (`analyze_interleaving`).

Each experiment also states the simulator's ground truth of the lists served
(`recsys.experiment_truth`: expected take rate, cost per watch, rating, per arm, from the
provenance records and the simulated users' own acceptance rule). The analysis window is the
loop's simulated time (the log lines' clock).

- `operate`: the champion/challenger loop against drift (`recsys.operate_drift`): from the
  champion left by the experiments, an operated platform (`recsys operate` once per simulated
  day: guard rails, judge, promote or discard, retrain and challenge by interleaving) and a frozen
  one (a second API pinning that champion) share the world and its traffic, split by user, for
  `--operate-days` days with a genre surge and a taste shift from `--drift-day` on. Each
  platform's daily online hit rate, pooled over the days after the drift day with a
  two-proportion test, and a plot (`operate_drift.png`).

    flock /tmp/recsys-bench.lock .venv/bin/python benchmarks/experiments.py [--users N] [--hours H] ...

Writes `benchmarks/results/experiments.json` (or `--out`), forest plots and the operate plot
under `benchmarks/results/experiments/`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
PORTS = {
    "kafka": 19492,
    "controller": 19495,
    "redis": 16479,
    "metadata": 18480,
    "serving": 18482,
    "frozen": 18483,
}
"""The private stack's and services' ports (away from the shared stack's 9092/6379/8080/8082)."""
PROBE_USER = 10**9
"""A user id outside every world: the readiness probe's requests never enter an analysis."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Sizes and paths; the defaults fit the 45-minute budget on 2 shared cores."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=24_000, help="Users in the simulated world.")
    p.add_argument("--movies", type=int, default=1_000, help="Movies in the simulated catalogue.")
    p.add_argument("--days", type=float, default=1.5, help="Days of history before the experiments.")
    p.add_argument("--history-rate", type=float, default=800, help="History sessions per simulated hour.")
    p.add_argument(
        "--hours", type=float, default=4.0, help="Simulated hours of closed loop per experiment run."
    )
    p.add_argument("--rate", type=float, default=6_000, help="Closed-loop sessions per simulated hour.")
    p.add_argument(
        "--cold-new-users", type=float, default=1_500, help="Sign-ups per hour in the cold-start run."
    )
    p.add_argument("--challenger-policy", default="popularity", help="Baseline policy of the challenger "
                   "when the LambdaRank is champion (popularity, recency_popularity, als, item_item).")  # fmt: skip
    p.add_argument("--tune-seconds", type=float, default=30.0, help="Optuna time box of the training run.")
    p.add_argument(
        "--operate-days", type=int, default=14, help="Simulated days of the operate drift demo (0: skip)."
    )
    p.add_argument("--drift-day", type=int, default=3, help="Day of the demo (0-based) the drifts start.")
    p.add_argument("--operate-rate", type=float, default=200, help="Sessions per simulated hour in the demo.")
    p.add_argument(
        "--operate-tune-seconds", type=float, default=5.0, help="Optuna time box of operate's retrains."
    )
    p.add_argument(
        "--operate-history-days",
        type=float,
        default=7.0,
        help="Training window of operate's retrains in days (0: the whole log); keeps each day's retrain equally long.",
    )
    p.add_argument("--seed", type=int, default=7, help="Seed of the world, history and traffic.")
    p.add_argument(
        "--var", type=Path, default=ROOT / "var" / "bench-experiments", help="Var dir (wiped first)."
    )
    p.add_argument("--out", type=Path, default=RESULTS / "experiments.json", help="Where to write the JSON.")
    p.add_argument("--plots", type=Path, default=RESULTS / "experiments", help="Folder of the forest plots.")
    p.add_argument("--keep-stack", action="store_true", help="Leave the private Kafka and Redis running.")
    return p.parse_args(argv)


def private_env(var: Path, tune_seconds: float) -> dict[str, str]:
    """The variables that point every component at the benchmark's own var dir, stack and ports."""
    return {
        "RECSYS_VAR_DIR": str(var),
        "RECSYS_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{PORTS['kafka']}",
        "RECSYS_KAFKA_CONTROLLER_PORT": str(PORTS["controller"]),
        "RECSYS_REDIS_URL": f"redis://127.0.0.1:{PORTS['redis']}/0",
        "RECSYS_SIM_API_PORT": str(PORTS["metadata"]),
        "RECSYS_SERVING_PORT": str(PORTS["serving"]),
        "RECSYS_SERVING_EXPERIMENTS_FILE": str(var / "experiments.yaml"),
        "RECSYS_RANK_TUNE_SECONDS": str(tune_seconds),
    }


def clean_var(var: Path) -> None:
    """Delete and recreate the var dir; the shared Kafka jars are linked, not fetched again."""
    shutil.rmtree(var, ignore_errors=True)
    jars = ROOT / "var" / "kafka"
    libs = sorted(jars.glob("lib-*")) if jars.is_dir() else []
    (var / "kafka").mkdir(parents=True)
    for lib in libs:  # read-only use: the broker only loads them
        (var / "kafka" / lib.name).symlink_to(lib.resolve(), target_is_directory=True)
    (var / "experiments.yaml").write_text("experiments: []\n")


def clean(value: Any) -> Any:
    """JSON-ready: NaN and infinities -> None, dataclasses -> dicts."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return clean(asdict(value))
    return value


class Bench:
    """The benchmark's state: the demo context, the registry's versions and the results gathered."""

    def __init__(self, args: argparse.Namespace, var: Path, console: Any) -> None:
        from recsys.demo import DemoContext

        self.args, self.var, self.console = args, var, console
        runs = 4  # cold_start, cost, ranker A/B, ranker interleaved
        # The history ends this long (+1 h) before now: the unpaced loops stay behind the wall clock.
        self.ctx = DemoContext(users=args.users, movies=args.movies, days=args.days,
                               sessions_per_hour=args.history_rate, seed=args.seed,
                               closed_loop_hours=runs * args.hours + 24 * args.operate_days,
                               reports=var / "reports")  # fmt: skip
        self.phase = 0
        self.phases = 7 + runs + (args.operate_days > 0)
        self.t0 = time.monotonic()
        self.versions: dict[str, Any] = {}
        self.train_facts: dict[str, Any] = {}

    def step(self, title: str) -> None:
        """A rule line per phase: number, title and the time so far."""
        self.phase += 1
        self.console.rule(f"[bold]{self.phase}/{self.phases} {title}[/] ({time.monotonic() - self.t0:.0f} s)")

    # --- setup --------------------------------------------------------------------------------

    def setup(self) -> None:
        """The demo's setup steps on the private stack; then the challenger version."""
        from recsys.demo import _history, _ingest, _metadata_api, _serve, _stack, _world

        for title, fn in (("private stack (Kafka, Redis)", _stack), ("world", _world),
                          ("metadata API", _metadata_api), ("history into Kafka", _history),
                          ("ingest", _ingest), ("train, register, promote; challenger", self._train),
                          ("serve", _serve)):  # fmt: skip
            self.step(title)
            t = time.monotonic()
            fn(self.ctx)
            self.console.print(f"[green]done[/] in {time.monotonic() - t:.1f} s")
        for k, v in self.ctx.facts.items():
            self.console.print(f"[bold]{k}[/]: {v}")

    def _train(self, ctx: Any) -> None:
        from ranking.promotion import figures, write_baseline
        from ranking.ranker import Ranker
        from ranking.registry import ModelRegistry, smoke_test
        from ranking.settings import RankSettings
        from recsys.settings import get_settings
        from recsys.training import run_training

        s = get_settings()
        result, decision = run_training(s.var, s.redis_url, ctx.reports, progress=self.console.print)
        assert decision is not None
        registry = ModelRegistry.open(RankSettings())
        champion = registry.resolve("champion")
        assert champion is not None, "training promoted nobody"
        if decision.promoted == "ranker":
            # The LambdaRank serves: a baseline policy, registered as its own version, challenges it.
            policy = self.args.challenger_policy
            rows = {x.model: x for x in result.comparison.scores}
            folder = write_baseline(result.model_dir, result.model_dir.parent / f"challenger-{policy}", policy,
                                    Ranker.load(result.model_dir))  # fmt: skip
            info = registry.register(folder, registry.load_provenance(champion.version),
                                     figures(rows[policy]) if policy in rows else {})  # fmt: skip
            challenger = registry.set_challenger(info.version, smoke_test)
        else:
            # A baseline policy won the promotion: the trained LambdaRank is the new version that challenges it.
            challenger = registry.set_challenger(decision.ranker_version, smoke_test)
        self.versions = {
            "champion": {"version": champion.version, "kind": champion.kind, "policy": champion.policy},
            "challenger": {
                "version": challenger.version,
                "kind": challenger.kind,
                "policy": challenger.policy,
            },
            "ranker_version": decision.ranker_version,
        }
        self.train_facts = {"promotion": decision.summary(), "cost_rule": result.cost.rule.label,
                            "cost_lambda": result.cost.lam, "cost_budget": result.cost.budget,
                            "ndcg20": {x.model: x.ndcg20 for x in result.scores}}  # fmt: skip
        ctx.facts["promotion"] = decision.summary()
        ctx.facts["challenger"] = f"v{challenger.version} ({challenger.policy or challenger.kind})"
        ctx.facts["cost rule"] = result.cost.rule.label

    def close(self, keep_stack: bool) -> None:
        """Stop the services this run started, then (unless kept) its private Kafka and Redis, by their pid files."""
        for stop in reversed(self.ctx.cleanup):
            try:
                stop()
            except Exception as exc:  # the next one still has to stop
                self.console.print(f"[yellow]cleanup: {exc}")
        if not keep_stack:
            from recsys.stack.manager import Stack

            Stack().down(["kafka", "redis"])

    # --- experiments ----------------------------------------------------------------------------

    def run_all(self) -> dict[str, Any]:
        """The three experiments (the ranker twice) and their records."""
        from serving.experiments import Arm, Experiment

        a, v = self.args, self.versions
        ranker = f"v{v['ranker_version']}"
        out: dict[str, Any] = {"setup": {"seconds": round(time.monotonic() - self.t0, 1),
                                         "facts": dict(self.ctx.facts), "versions": v, "training": self.train_facts}}  # fmt: skip
        cold = Experiment(
            name="cold-start", salt="bench-cold-start", primary_metric="hit_rate",
            description="popularity vs self-description for users without history",
            arms=(Arm(name="popular", weight=1, cold_start="popular"),
                  Arm(name="self-description", weight=1, cold_start="self_description")),
        )  # fmt: skip
        out["cold_start"] = self.experiment(
            "cold_start", cold, a.seed + 11, a.cold_new_users, path="cold_start"
        )
        # Control: the same LambdaRank with no penalty and no budget (a huge budget: null means the model's own).
        cost = Experiment(
            name="cost", salt="bench-cost", primary_metric="cost_per_watch",
            description="cost-aware ranking (the model's chosen rule) vs lambda = 0",
            arms=(Arm(name="lam0", weight=1, model=ranker, lam=0.0, cost_budget=1e6),
                  Arm(name="chosen", weight=1, model=ranker)),
        )  # fmt: skip
        out["cost"] = self.experiment("cost", cost, a.seed + 12)
        arms = (
            Arm(name="champion", weight=1, model="champion"),
            Arm(name="challenger", weight=1, model="challenger"),
        )
        ab = Experiment(name="ranker-ab", salt="bench-ranker", arms=arms, primary_metric="hit_rate",
                        description="challenger vs champion, A/B")  # fmt: skip
        inter = Experiment(name="ranker-interleave", salt="bench-ranker-il", arms=arms, kind="interleave",
                           description="challenger vs champion, team-draft interleaving")  # fmt: skip
        # The same traffic seed and length: the same simulated population for both designs.
        out["ranker"] = self.experiment("ranker", ab, a.seed + 13)
        out["ranker"]["interleaving"] = self.experiment("ranker (interleaved)", inter, a.seed + 13)
        out["ranker"].update(users_needed(out["ranker"]))
        out["operate"] = self.operate_drift() if a.operate_days > 0 else None
        return out

    def operate_drift(self) -> dict[str, Any]:
        """The champion/challenger loop vs a frozen champion under drift (`recsys.operate_drift`)."""
        from recsys.operate_drift import DriftPlan
        from recsys.operate_drift_run import run_operate_drift

        a = self.args
        self.step(
            f"operate vs a frozen champion, {a.operate_days} simulated days with drift from day {a.drift_day}"
        )
        plan = DriftPlan(days=a.operate_days, drift_day=a.drift_day, sessions_per_hour=a.operate_rate,
                         seed=a.seed + 20)  # fmt: skip
        assert self.ctx.serving_url is not None
        record = run_operate_drift(self.var, str(self.ctx.serving_url), self.ctx.metadata_url, PORTS["frozen"], plan,
                                   a.plots / "operate_drift.png", a.operate_tune_seconds, self.console.print,
                                   history_days=a.operate_history_days or None)  # fmt: skip
        record["plot"] = os.path.relpath(record["plot"], ROOT)
        return record

    def experiment(
        self, title: str, experiment: Any, seed: int, new_users: float | None = None, path: str | None = None
    ) -> dict[str, Any]:
        """Run one experiment and turn its analysis, ground truth and plot into the JSON record."""
        from recsys.experiment_lifecycle import ExperimentBook
        from recsys.experiment_run import LoopPlan, run_experiment
        from recsys.experiment_truth import arm_truth, by_arm, read_provenance
        from serving.settings import get_serving_settings
        from simulator.truth import Truth

        self.step(f"experiment {title}")
        a = self.args
        book = ExperimentBook(get_serving_settings().experiments_file, self.var)
        plan = LoopPlan(a.hours, a.rate, seed, new_users_per_hour=new_users)
        t = time.monotonic()
        run = run_experiment(book, experiment, plan, str(self.ctx.serving_url), by="bench-experiments",
                             probe_user=PROBE_USER, path=path)  # fmt: skip
        self.console.print(f"closed loop: {run.loop.describe()} ({run.loop.seconds:.0f} s)")
        self.console.print(run.monitor)
        truth = Truth.load()
        at_ns = (run.loop.sim_start_ns + run.loop.sim_end_ns) // 2
        records = read_provenance(experiment.name)
        groups = by_arm(records, path)
        # Interleaving: the merged lists (cold-start and fallback answers stay control's).
        if experiment.kind == "interleave":
            groups = {arm: rows for arm, rows in groups.items() if arm == "interleave"}
        truths = {arm: arm_truth(truth, arm, rows, at_ns) for arm, rows in sorted(groups.items())}
        loop = {k: getattr(run.loop, k) for k in ("hours", "sessions", "accounts", "requests", "failed",
                                                   "accepted", "p50_ms", "p99_ms", "seconds")}  # fmt: skip
        record: dict[str, Any] = {
            "experiment": experiment.name, "kind": experiment.kind, "description": experiment.description,
            "arms": [arm.model_dump(mode="json") for arm in experiment.arms],
            "window": {"start": run.sim_start.isoformat(), "end": run.sim_end.isoformat()},
            "served_after_s": round(run.served_after_s, 1), "loop": loop,
            "truth": {arm: asdict(x) for arm, x in truths.items()}, "seconds": round(time.monotonic() - t, 1),
        }  # fmt: skip
        if experiment.kind == "interleave":
            return record | interleave_figures(run.result)
        from monitoring.experiment_analysis import render_table
        from monitoring.experiment_plot import plot_arms

        self.console.print(render_table(run.result))
        record |= ab_figures(run.result, path)
        record["plot"] = os.path.relpath(plot_arms(run.result, a.plots / f"{experiment.name}.png"), ROOT)
        if experiment.name == "cost":
            record |= cost_figures(run.result, self.var, run)
        return record

    def print_figures(self, record: dict[str, Any]) -> None:
        """The headline figures, one line each."""
        for key in ("cold_start", "cost", "ranker"):
            r = record[key]
            n = ", ".join(f"{k} {v:,}" for k, v in (r.get("n_per_arm") or {}).items())
            self.console.print(
                f"{key}: {r['primary_metric']} effect {fmt(r['effect'])} [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}] "
                f"p={fmt(r['p_value'])}, SRM ok {r['srm_ok']}, users {n}; decision: {r['decision']}; "
                f"truth: {truth_line(r['truth'])}"
            )
        c, k = record["cost"], record["ranker"]
        self.console.print(f"cost: cost_per_watch_change {fmt(c['cost_per_watch_change'])}, "
                           f"rating_change {fmt(c['rating_change'])}, completion_change {fmt(c['completion_change'])}")  # fmt: skip
        il = k["interleaving"]
        self.console.print(
            f"ranker: users_needed_ab {k['users_needed_ab']} per arm ({k['users_needed_ab_total']} in all), "
            f"users_needed_interleaving {k['users_needed_interleaving']} (ratio {fmt(k['interleaving_vs_ab'])}); "
            f"interleaving: {il['decision']}, delta {fmt(il['delta'])}, p={fmt(il['p_value'])}, "
            f"users {il['users']:,}; truth: {truth_line(il['truth'])}"
        )
        o = record.get("operate")
        if o is None:
            self.console.print("operate: null (no drift demonstration was run)")
            return
        self.console.print(
            f"operate: hit rate after the drift operated {fmt(o['hit_rate_after_drift_operated'])} "
            f"({o['lists_after_drift_operated']:,} lists) vs frozen {fmt(o['hit_rate_after_drift_frozen'])} "
            f"({o['lists_after_drift_frozen']:,} lists): difference {fmt(o.get('difference'))} "
            f"[{fmt(o.get('ci_low'))}, {fmt(o.get('ci_high'))}] p={fmt(o.get('p_value'))}; plot {o['plot']}"
        )


def fmt(value: Any) -> str:
    """A figure for the printed lines (4 significant digits; None as –)."""
    return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.4g}"


def truth_line(truth: dict[str, Any]) -> str:
    """Each arm's expected take rate, cost per watch and rating."""
    return "; ".join(f"{arm} take {fmt(t['take_rate'])}, cost/watch {fmt(t['cost_per_watch'])}, "
                     f"rating {fmt(t['rating'])}" + (f", B share {fmt(t['take_share_b'])}" if t.get("take_share_b") else "")
                     for arm, t in truth.items())  # fmt: skip


def ab_figures(result: Any, path: str | None) -> dict[str, Any]:
    """The issue's fields of an A/B result: users per arm, primary effect with CI and p, SRM, decision."""
    comp = result.comparisons[0] if result.comparisons else None
    est = comp.estimates.get(result.primary_metric) if comp else None
    return {
        "primary_metric": result.primary_metric, "path": path,
        "n_per_arm": {arm.arm: arm.users for arm in result.arms},
        "effect": est.effect if est else None, "relative_effect": est.relative if est else None,
        "control_value": est.control if est else None, "treatment_value": est.treatment if est else None,
        "ci_low": est.ci_low if est else None, "ci_high": est.ci_high if est else None,
        "p_value": est.p_value if est else None, "always_valid_p": comp.always_valid_p if comp else None,
        "mde": comp.mde if comp else None, "srm_ok": result.srm.ok, "srm_p": result.srm.p_value,
        "decision": result.decision, "analysis": result.to_dict(),
    }  # fmt: skip


def cost_figures(result: Any, var: Path, run: Any) -> dict[str, Any]:
    """Relative change of cost per watch, change of the credited ratings' stars, and of completion."""
    from monitoring import experiment_stats as S  # noqa: N812
    from monitoring.experiment_data import read_impressions_of

    est = result.comparisons[0].estimates if result.comparisons else {}
    cpw, rating = est.get("cost_per_watch"), est.get("rating")
    imp = read_impressions_of(var, "cost", run.sim_start, run.sim_end)
    arm = imp.groupby("user_id")["arm"].first()
    # Per user: mean completion of their recommended watches (users with a hit only), by first arm.
    done = imp[imp["hit"] > 0].groupby("user_id")["hit_completion"].mean().dropna()
    control, treatment = (done[arm.reindex(done.index) == name] for name in (result.control, "chosen"))
    completion = (
        S.welch(control, treatment, "completion") if len(control) > 1 and len(treatment) > 1 else None
    )
    return {
        "cost_per_watch_change": cpw.relative if cpw else None,
        "cost_per_watch": {"control": cpw.control, "treatment": cpw.treatment, "ci_low": cpw.ci_low,
                           "ci_high": cpw.ci_high, "p_value": cpw.p_value} if cpw else None,
        "rating_change": rating.effect if rating else None,
        "rating": rating.to_dict() if rating else None,
        "completion_change": completion.effect if completion else None,
        "completion": completion.to_dict() if completion else None,
    }  # fmt: skip


def interleave_figures(result: Any) -> dict[str, Any]:
    """An interleaving read-out: users, preference (ΔAB, CI, sign-test p), users needed, decision."""
    pref = result.preference
    return {"users": result.users, "credited_users": pref.n, "wins_a": pref.wins_a, "wins_b": pref.wins_b,
            "ties": pref.ties, "delta": pref.delta, "ci_low": pref.ci_low, "ci_high": pref.ci_high,
            "p_value": pref.p_value, "users_needed": result.users_needed, "decision": result.decision,
            "analysis": result.to_dict()}  # fmt: skip


def users_needed(ranker: dict[str, Any]) -> dict[str, Any]:
    """Users each design needs at its observed effect: A/B per arm (and both arms), interleaving in all."""
    from monitoring import power

    per_arm: int | None = None
    base, effect = ranker.get("control_value"), ranker.get("effect")
    if base is not None and effect:
        try:
            per_arm = power.users_needed(effect, baseline_rate=base)
        except ValueError:  # an effect that leaves (0, 1): no finite answer
            per_arm = None
    inter = ranker["interleaving"].get("users_needed")
    total = 2 * per_arm if per_arm is not None else None
    return {"users_needed_ab": per_arm, "users_needed_ab_total": total, "users_needed_interleaving": inter,
            "interleaving_vs_ab": inter / total if inter and total else None}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Set up, run the three experiments, print the figures and write the JSON and plots."""
    args = parse_args(argv)
    var = args.var.resolve()
    clean_var(var)
    os.environ.update(private_env(var, args.tune_seconds))
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from rich.console import Console

    console = Console()
    bench = Bench(args, var, console)
    started = time.monotonic()
    try:
        bench.setup()
        results = bench.run_all()
    finally:
        bench.close(keep_stack=args.keep_stack)
    record = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        **results,
        "seconds": round(time.monotonic() - started, 1),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(clean(record), indent=2) + "\n")
    bench.print_figures(record)
    console.print(f"wrote {args.out} in {record['seconds']:.0f} s")


if __name__ == "__main__":
    main()
