"""One arm of the risk benchmark (`benchmarks/risk.py --child`): a platform from scratch, its days, its figures.

Setup reuses the demo's steps on the private stack; each simulated day is the closed loop
(`recsys.closed_loop`), the day's ingestion (as a nightly catch-up, like the operate demo's) and
a retrain exactly as `recsys train` runs it (`recsys.training.run_training`: register, promote
what the verdict prefers), after which the script waits until the API answers with the new
champion. The main arm (share 0) also measures offline quality per group right after the setup's
training and runs the incident drill after its days. Figures are computed from what the platform
logged: the online job's impressions, the recommendation lines' result lists and the plays.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from monitoring import fairness as F  # noqa: N812

DAY_NS = 86_400 * 10**9
K = 20


def _quiet(*_a: Any, **_k: Any) -> None:
    return None


def _utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


class Arm:
    """The arm's state: demo context, registry facts, day records."""

    def __init__(self, args: argparse.Namespace, ports: dict[str, int], var: Path, console: Console) -> None:
        from recsys.demo import DemoContext

        self.args, self.ports, self.var, self.console = args, ports, var, console
        self.ctx = DemoContext(users=args.users, movies=args.movies, days=args.days,
                               sessions_per_hour=args.history_rate, seed=args.seed,
                               closed_loop_hours=24.0 * args.loop_days,
                               reports=var / "reports")  # fmt: skip
        self.record: dict[str, Any] = {"share": args.share, "facts": {}, "seconds": {}}
        self.t0 = time.monotonic()

    def timed(self, name: str, fn: Any, *a: Any) -> Any:
        """Run a step under a rule line; its seconds go to the record."""
        self.console.rule(f"[bold]share {self.args.share:g}: {name}[/] ({time.monotonic() - self.t0:.0f} s)")
        t = time.monotonic()
        out = fn(*a)
        self.record["seconds"][name] = round(time.monotonic() - t, 1)
        return out

    # --- setup ------------------------------------------------------------------------------

    def setup(self) -> None:
        """The demo's setup steps; training keeps its decision."""
        from recsys.demo import _history, _ingest, _metadata_api, _serve, _stack, _world

        for name, fn in (("stack", _stack), ("world", _world), ("metadata API", _metadata_api),
                         ("history", _history), ("ingest", _ingest), ("train", self.train),
                         ("serve", _serve)):  # fmt: skip
            self.timed(name, fn, self.ctx)
        self.record["facts"] = dict(self.ctx.facts)

    def train(self, _ctx: Any = None) -> dict[str, Any]:
        """`recsys train`: train, evaluate, register, promote what the verdict prefers."""
        from recsys.settings import get_settings
        from recsys.training import run_training

        s = get_settings()
        result, decision = run_training(s.var, s.redis_url, self.var / "reports", progress=_quiet)
        assert decision is not None
        from ranking.registry import ModelRegistry
        from ranking.settings import RankSettings

        registry = ModelRegistry.open(RankSettings(var_dir=s.var))
        # `recsys train` itself refits a baseline champion the ranker did not beat (ranking.promotion).
        promoted = decision.promoted
        champion = registry.resolve("champion")
        out = {"ranker_version": decision.ranker_version, "promoted": promoted,
               "champion": champion.version if champion else None,
               "champion_policy": (champion.policy or champion.kind) if champion else None,
               "cost_rule": result.cost.rule.label, "summary": decision.summary()}  # fmt: skip
        self.record.setdefault("training", out)  # the setup's training: the offline fairness is of it
        self.ctx.facts["promotion"] = decision.summary()
        return out

    # --- offline fairness -------------------------------------------------------------------

    def offline_fairness(self, groups: pd.DataFrame) -> dict[str, Any]:
        """NDCG@20 / recall@20 per group on the test cut-off for the ranker, the champion and the oracle."""
        from ingestion.feast_bridge import open_feature_store
        from ranking import columns as C  # noqa: N812
        from ranking.compare import compare
        from ranking.cost_policy import CostRule
        from ranking.metrics import ndcg_at_k, ndcg_per_user, recall_at_k
        from ranking.ranker import Ranker
        from ranking.registry import ModelRegistry
        from ranking.settings import RankSettings
        from ranking.train import prepare
        from recsys.settings import get_settings
        from recsys.training import simulator_oracle

        s = get_settings()
        train = self.record["training"]
        registry = ModelRegistry.open(RankSettings(var_dir=s.var))
        ranker = Ranker.load(registry.download(train["ranker_version"]))
        rule = CostRule(lam=ranker.meta.default_lambda or 0.0, max_mean_cost=ranker.meta.default_cost_budget)
        prep = prepare(s.var, open_feature_store(s.var, s.redis_url), progress=_quiet, only={"test"})
        assert prep.index_test is not None
        truth = prep.truth["test"]
        cmp = compare(prep.sets["test"], truth, prep.index_test, {"lambdarank": (ranker, rule)}, prep.cost,
                      prep.absent, simulator_oracle(s.var))  # fmt: skip
        served = f"lambdarank ({rule.label})" if rule != CostRule() else "lambdarank (λ=0)"
        models = {"lambdarank": served, "oracle": "oracle"}
        if train["champion_policy"] in cmp.lists:
            models["champion"] = str(train["champion_policy"])
        users = pd.Index(cmp.lists[served][C.USER].unique())
        out: dict[str, Any] = {"users": len(users), "models": models, "groups": {}}
        for grouping in F.GROUPINGS:
            label = groups[grouping].reindex(users)
            rows = []
            for g in F.group_order(grouping, label.dropna()):
                members = set(label.index[(label == g).to_numpy()])
                t = truth[truth[C.USER].isin(members)]
                row: dict[str, Any] = {"group": g, "users": len(members)}
                for key, name in models.items():
                    recs = cmp.lists[name]
                    recs = recs[recs[C.USER].isin(members)]
                    per_user = ndcg_per_user(recs, t, K)
                    _, low, high = F.mean_interval(per_user.to_numpy())
                    row[key] = {"ndcg20": ndcg_at_k(recs, t, K), "ndcg20_ci": [low, high],
                                "recall20": recall_at_k(recs, t, K), "evaluable_users": len(per_user)}  # fmt: skip
                rows.append(row)
            out["groups"][grouping] = rows
        out["overall"] = {key: {"ndcg20": ndcg_at_k(cmp.lists[name], truth[truth[C.USER].isin(users)], K),
                                "recall20": recall_at_k(cmp.lists[name], truth[truth[C.USER].isin(users)], K)}
                          for key, name in models.items()}  # fmt: skip
        return out

    # --- the days ---------------------------------------------------------------------------

    def days(self) -> list[dict[str, Any]]:
        """Per simulated day: closed loop, ingestion, retrain, wait for the new champion."""
        from ingestion.factory import build_worker
        from ingestion.settings import get_ingest_settings
        from recsys.closed_loop import run_closed_loop

        a = self.args
        records: list[dict[str, Any]] = []
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.console) as bar:
            task = bar.add_task(f"share {a.share:g}: simulated days", total=a.loop_days)
            for day in range(a.loop_days):
                t = time.monotonic()
                loop = run_closed_loop(24.0, a.rate, self.ctx.serving_url, a.seed + 100 + day, progress=False)
                t_loop = time.monotonic()
                update = {"metrics_port": 0, "movie_refresh_s": 1e9}
                stats = build_worker(get_ingest_settings().model_copy(update=update)).run(idle_exit_s=3)
                t_ingest = time.monotonic()
                trained = self.train()
                t_train = time.monotonic()
                swapped = self.wait_for_champion(int(trained["champion"]))
                rec = {"day": day, "start": _utc(loop.sim_start_ns).isoformat(), "end": _utc(loop.sim_end_ns).isoformat(),
                       "sessions": loop.sessions, "requests": loop.requests, "failed": loop.failed,
                       "accepted": loop.accepted, "ingested": stats.messages, "champion": trained["champion"],
                       "champion_policy": trained["champion_policy"], "ranker_version": trained["ranker_version"],
                       "promoted": trained["promoted"], "served_new_champion": swapped,
                       "seconds": {"loop": round(t_loop - t, 1), "ingest": round(t_ingest - t_loop, 1),
                                   "train": round(t_train - t_ingest, 1),
                                   "total": round(time.monotonic() - t, 1)}}  # fmt: skip
                records.append(rec)
                bar.console.print(
                    f"day {day}: {loop.requests:,} calls, {loop.accepted:,}/{loop.sessions:,} sessions took a listed "
                    f"movie; champion v{trained['champion']} ({trained['champion_policy']}); {rec['seconds']}"
                )
                bar.advance(task)
        return records

    def wait_for_champion(self, version: int, timeout_s: float = 45.0) -> bool:
        """Until three answers in a row for a warm user come from `v<version>` (both workers polled the registry)."""
        url, want, streak = f"{self.ctx.serving_url}/recommend/{self.probe_user()}", f"v{version}", 0
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=5) as client:
            while time.monotonic() < deadline:
                try:
                    got = client.get(url).headers.get("X-Model-Version")
                except httpx.HTTPError:
                    got = None
                streak = streak + 1 if got == want else 0
                if streak >= 3:
                    return True
                time.sleep(0.3)
        self.console.print(f"[yellow]the API did not answer from {want} within {timeout_s:g} s")
        return False

    def probe_user(self) -> int:
        """A user of the history with many plays (warm: answered by the model, not cold start)."""
        if not hasattr(self, "_probe"):
            plays = read_raw(self.var, "play", ["user_id"])
            self._probe = int(plays["user_id"].value_counts().index[0])
        return self._probe

    def warm_users(self, n: int) -> list[int]:
        """The `n` users with the most plays in the log (answered by the model, not cold start)."""
        counts = read_raw(self.var, "play", ["user_id"])["user_id"].value_counts()
        return [int(u) for u in counts.index[:n]]

    def poison(self, start_ns: int, end_ns: int) -> dict[str, Any]:
        """The poisoning probe (`benchmarks/risk_poison.py`) on the least-watched released movie nobody was shown."""
        from benchmarks.risk_poison import run_poison
        from ingestion.factory import build_worker
        from ingestion.settings import get_ingest_settings
        from simulator.settings import get_sim_settings

        start, end = pd.Timestamp(start_ns, unit="ns", tz="UTC"), pd.Timestamp(end_ns, unit="ns", tz="UTC")
        plays = read_raw(self.var, "play", ["ts", "movie_id"])
        plays = plays[(plays["ts"] >= start) & (plays["ts"] < end)]
        recs = read_raw(self.var, "recommendation", ["ts", "status", "results"])
        recs = recs[(recs["ts"] >= end - pd.Timedelta(days=1)) & (recs["status"] == 200)]
        shown = set(recs["results"].explode().dropna().astype(str))
        movies = pd.read_parquet(
            get_sim_settings().sim_dir / "movies.parquet", columns=["id", "release_date"]
        )
        released = movies["id"][
            (pd.to_datetime(movies["release_date"], utc=True, errors="coerce") < end).to_numpy()
        ]
        counts = F.catalogue_counts(plays["movie_id"], released.astype(str))
        quiet = counts[~counts.index.isin(shown)].sort_values(kind="stable")
        target = str(quiet.index[0])

        def retrain() -> None:
            update = {"metrics_port": 0, "movie_refresh_s": 1e9}
            build_worker(get_ingest_settings().model_copy(update=update)).run(idle_exit_s=3)
            self.wait_for_champion(int(self.train()["champion"]))

        users = self.warm_users(200)
        first_fake = 10 * max(self.args.users, 10_000)  # outside the world's ids
        rec = run_poison(str(self.ctx.serving_url), target, users, end_ns, retrain, first_fake,
                         log=self.console.print)  # fmt: skip
        return rec.to_dict() | {"plays_in_window_before": int(counts[target])}

    # --- figures from the logs --------------------------------------------------------------

    def monitor(self) -> str:
        """The online metrics job over everything logged, until idle."""
        from monitoring.settings import get_monitor_settings
        from monitoring.stream import run_stream

        return str(run_stream(get_monitor_settings(), until_idle_s=3.0, serve_metrics=False).describe())

    def figures(
        self, start_ns: int, end_ns: int, groups: pd.DataFrame, days: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Online group rates, exposure by decile, Gini, and per-day coverage / concentration / hit rate."""
        from monitoring.layout import MonitorLayout
        from monitoring.tables import read_impressions
        from simulator.settings import get_sim_settings

        start, end = pd.Timestamp(start_ns, unit="ns", tz="UTC"), pd.Timestamp(end_ns, unit="ns", tz="UTC")
        imp = read_impressions(MonitorLayout(self.var))
        imp = imp[(imp["ts"] >= start) & (imp["ts"] < end) & (imp["status"] == 200)]
        imp = imp.assign(hit=(imp["hit"] > 0).astype(np.int64))
        online = {}
        for g in F.GROUPINGS:
            rates = {r.group: r.to_dict() for r in F.group_rates(imp, groups[g])}
            online[g] = [rates[label] for label in F.group_order(g, rates)]
        overall = F.clustered_rate(*(imp.groupby("user_id")["hit"].agg(["sum", "count"]).to_numpy().T))
        recs = read_raw(self.var, "recommendation", ["ts", "user_id", "status", "results"])
        recs = recs[(recs["ts"] >= start) & (recs["ts"] < end) & (recs["status"] == 200)]
        plays = read_raw(self.var, "play", ["ts", "user_id", "movie_id"])
        plays = plays[(plays["ts"] >= start) & (plays["ts"] < end)]
        movies = pd.read_parquet(
            get_sim_settings().sim_dir / "movies.parquet", columns=["id", "release_date"]
        )
        released = pd.to_datetime(movies["release_date"], utc=True, errors="coerce")
        slots = recs.explode("results")
        slots = slots[slots["results"].notna()]
        catalogue = movies["id"][(released < end).to_numpy()].astype(str)
        deciles = F.popularity_deciles(F.catalogue_counts(plays["movie_id"], catalogue))
        exposure = F.decile_exposure(slots["results"], plays["movie_id"], deciles)
        whole = F.concentration(slots["results"], catalogue)
        per_day = []
        day_of = ((slots["ts"] - start) // pd.Timedelta(days=1)).to_numpy()
        imp_day = ((imp["ts"] - start) // pd.Timedelta(days=1)).to_numpy()
        for d in days:
            i = int(d["day"])
            day_end = start + pd.Timedelta(days=i + 1)
            cat = movies["id"][(released < day_end).to_numpy()].astype(str)
            c = F.concentration(slots["results"][day_of == i], cat)
            day_imp = imp[imp_day == i]
            rate, low, high = F.clustered_rate(
                *(day_imp.groupby("user_id")["hit"].agg(["sum", "count"]).to_numpy().T)
            )
            per_day.append({"day": i, **c.to_dict(), "hit_rate": rate, "hit_rate_ci": [low, high],
                            "lists": len(day_imp)})  # fmt: skip
        return {
            "window": {"start": start.isoformat(), "end": end.isoformat()},
            "lists": len(imp), "users": int(imp["user_id"].nunique()), "plays": len(plays),
            "hit_rate": {"rate": overall[0], "ci": [overall[1], overall[2]]},
            "online_groups": online, "exposure_deciles": exposure.to_dict(orient="records"),
            "concentration": whole.to_dict(), "per_day": per_day,
        }  # fmt: skip

    def close(self) -> None:
        """Stop the services this arm started, then its private Kafka and Redis (by their pid files)."""
        for stop in reversed(self.ctx.cleanup):
            try:
                stop()
            except Exception as exc:  # the next one still has to stop
                self.console.print(f"[yellow]cleanup: {exc}")
        from recsys.stack.manager import Stack

        Stack().down(["kafka", "redis"])


def read_raw(var: Path, kind: str, columns: list[str]) -> pd.DataFrame:
    """A raw event table of the offline store (`offline/raw/<kind>/date=*/*.parquet`), the named columns."""
    import pyarrow.dataset as ds

    files = sorted((var / "offline" / "raw" / kind).glob("date=*/*.parquet"))
    if not files:
        return pd.DataFrame({c: [] for c in columns})
    frame: pd.DataFrame = (
        ds.dataset([str(f) for f in files], format="parquet").to_table(columns=columns).to_pandas()
    )
    return frame


def world_groups() -> pd.DataFrame:
    """Every simulated user's age, gender and occupation group (from the world's user table)."""
    from simulator.settings import get_sim_settings

    users = pd.read_parquet(
        get_sim_settings().sim_dir / "users.parquet", columns=["user_id", "age", "gender", "occupation"]
    )
    return F.user_groups(users)


def run_child(args: argparse.Namespace, ports: dict[str, int]) -> None:
    """One arm: set up, (main arm) offline fairness, the days, the monitor, figures, (main arm) the drill."""
    from benchmarks.experiments import clean, clean_var
    from benchmarks.risk import private_env

    var = (args.var_root / f"share-{args.share:g}").resolve()
    clean_var(var)
    os.environ.update(private_env(var, args.share, args.tune_seconds))
    console = Console()
    arm = Arm(args, ports, var, console)
    try:
        arm.setup()
        groups = world_groups()
        if args.main_arm:
            arm.record["offline"] = arm.timed("offline fairness", arm.offline_fairness, groups)
        os.environ["RECSYS_RANK_HISTORY_DAYS"] = str(args.window_days)  # daily retrains: equal cost each day
        from simulator.settings import get_sim_settings
        from simulator.state import read_state

        state = read_state(get_sim_settings().sim_dir)
        assert state is not None
        start_ns = state.sim_now_ns
        days = arm.timed("days", arm.days)
        end_ns = start_ns + len(days) * DAY_NS
        arm.record["days"] = days
        arm.record["monitor"] = arm.timed("monitor", arm.monitor)
        arm.record["figures"] = arm.timed("figures", arm.figures, start_ns, end_ns, groups, days)
        if args.main_arm:
            arm.record["poison"] = arm.timed("poisoning probe", arm.poison, start_ns, end_ns)
        if args.main_arm and not args.no_drill:
            from benchmarks.risk_drill import run_drill

            users = arm.warm_users(60)
            drill = arm.timed("drill", run_drill, var, ports["serving"], ports["prometheus"],
                              ports["alertmanager"], users, console.print)  # fmt: skip
            arm.record["drill"] = drill.to_dict()
    finally:
        arm.close()
    arm.record["seconds"]["arm"] = round(time.monotonic() - arm.t0, 1)
    arm.record["world"] = {"users": args.users, "movies": args.movies, "history_days": args.days,
                           "history_rate": args.history_rate, "loop_days": args.loop_days, "rate": args.rate}  # fmt: skip
    assert args.child_out is not None
    args.child_out.write_text(json.dumps(clean(arm.record), indent=2) + "\n")
