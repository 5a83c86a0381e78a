"""Risk analysis of the running platform: fairness, exposure, feedback loops, and an incident drill.

Two *arms*, each a complete platform built from scratch in a var dir of its own (deleted first)
on a private stack (Kafka and Redis on ports of their own, away from the test stack's defaults and
benchmarks/experiments.py's): the demo's setup steps (world, metadata API, history into Kafka,
ingestion, training with registration and promotion, `recsys serve` with 2 workers), then
`--loop-days` simulated days, each one day of closed loop (simulated users calling the live
`GET /recommend` and watching what appeals to them), the day's ingestion, and a retrain as
`recsys train` does it (register, promote what the verdict prefers; serving hot-swaps it). The
arms differ only in `RECSYS_SERVING_EXPLORATION_SHARE`: 0 (the default) and `--exploration`.
Same seeds, so the same world, history and simulated users.

Measured on the share-0 arm (the platform as it ships), also on the other for comparison:

- fairness offline: right after the setup's training, `recsys evaluate`'s comparison on the test
  cut-off (`ranking.compare`), NDCG@20 and recall@20 per age group, gender and occupation group for
  the trained LambdaRank under its cost rule, the served champion and the ground truth's oracle;
- fairness online: the online metrics job (`recsys monitor stream`) over the arm's lines; hit rate
  (an answered list followed by a watch of a listed movie within 30 minutes) per group, with 95%
  intervals clustered by user (`monitoring.fairness.group_rates`);
- exposure: share of recommendation slots vs share of watches by popularity decile (deciles of
  the catalogue by plays in the arm's window), Gini of movies' recommendation counts;
- feedback loop: per simulated day, catalogue coverage (share of released movies recommended
  that day), Gini and the top-decile share of that day's slots; both arms;
- incident drill (share-0 arm, after its days, `benchmarks/risk_drill.py`): Redis killed under
  load, the alert read back from `recsys.alerts`, the runbook's mitigation, the timeline.

    flock /tmp/recsys-bench.lock .venv/bin/python benchmarks/risk.py [--users N] [--loop-days D] ...

Writes `benchmarks/results/risk.json` (or `--out`) and PNGs under `benchmarks/results/risk/`.
Each arm runs in a child process of this script (`--child`): every component reads its settings
once per process, and each arm has its own var dir, broker and Redis.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
PORTS = {
    "kafka": 19592,
    "controller": 19595,
    "redis": 16579,
    "metadata": 18580,
    "serving": 18582,
    "prometheus": 19590,
    "alertmanager": 19593,
}
"""The private stack's and services' ports (the test stack uses the defaults, experiments.py 18480-19495)."""
DAY_NS = 86_400 * 10**9


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Sizes and paths; the defaults fit about 25 minutes on 2 shared cores."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=4_000, help="Users in the simulated world.")
    p.add_argument("--movies", type=int, default=500, help="Movies in the simulated catalogue.")
    p.add_argument("--days", type=float, default=2.0, help="Days of history before the loop.")
    p.add_argument("--history-rate", type=float, default=300, help="History sessions per simulated hour.")
    p.add_argument("--loop-days", type=int, default=14, help="Simulated days of closed loop per arm.")
    p.add_argument("--rate", type=float, default=100, help="Closed-loop sessions per simulated hour.")
    p.add_argument("--exploration", type=float, default=0.1, help="Exploration share of the second arm.")
    p.add_argument("--tune-seconds", type=float, default=5.0, help="Optuna time box of every training run.")
    p.add_argument("--window-days", type=float, default=7.0, help="Training window of the daily retrains.")
    p.add_argument("--seed", type=int, default=7, help="Seed of the world, history and traffic.")
    p.add_argument("--no-drill", action="store_true", help="Skip the incident drill.")
    p.add_argument(
        "--var-root", type=Path, default=ROOT / "var" / "bench-risk", help="Arms' var dirs (wiped)."
    )
    p.add_argument("--out", type=Path, default=RESULTS / "risk.json", help="Where to write the JSON.")
    p.add_argument("--plots", type=Path, default=RESULTS / "risk", help="Folder of the PNGs.")
    p.add_argument("--from-arms", action="store_true",
                   help="Rebuild the JSON, plots and lines from the arms' records under --var-root (no new run).")  # fmt: skip
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--share", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--main-arm", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--child-out", type=Path, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def exploration_available() -> bool:
    """Whether serving has the exploration knob (RECSYS_SERVING_EXPLORATION_SHARE)."""
    from serving.settings import ServingSettings

    return "exploration_share" in ServingSettings.model_fields


def private_env(var: Path, share: float, tune_seconds: float) -> dict[str, str]:
    """The variables pointing every component at the arm's var dir, stack and ports."""
    env = {
        "RECSYS_VAR_DIR": str(var),
        "RECSYS_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{PORTS['kafka']}",
        "RECSYS_KAFKA_CONTROLLER_PORT": str(PORTS["controller"]),
        "RECSYS_REDIS_URL": f"redis://127.0.0.1:{PORTS['redis']}/0",
        "RECSYS_SIM_API_PORT": str(PORTS["metadata"]),
        "RECSYS_SERVING_PORT": str(PORTS["serving"]),
        "RECSYS_SERVING_EXPERIMENTS_FILE": str(var / "experiments.yaml"),
        "RECSYS_RANK_TUNE_SECONDS": str(tune_seconds),
        # A retrain's new champion reaches the API within seconds, not the default 10 s poll.
        "RECSYS_SERVING_REGISTRY_POLL_S": "2",
        "OPENBLAS_NUM_THREADS": "1",
    }
    if share > 0:
        env["RECSYS_SERVING_EXPLORATION_SHARE"] = str(share)
    return env


# --- the parent: two arms, then figures, plots and the JSON -----------------------------------------


def run_arm(args: argparse.Namespace, share: float, main_arm: bool) -> dict[str, Any]:
    """One arm in a child process of this script (`--from-arms`: the record it left); its JSON record."""
    out = args.var_root / f"arm-{share:g}.json"
    if args.from_arms:
        from_arm: dict[str, Any] = json.loads(out.read_text())
        return from_arm
    out.unlink(missing_ok=True)
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", "--share", str(share), "--child-out", str(out),
            "--users", str(args.users), "--movies", str(args.movies), "--days", str(args.days),
            "--history-rate", str(args.history_rate), "--loop-days", str(args.loop_days), "--rate", str(args.rate),
            "--tune-seconds", str(args.tune_seconds), "--window-days", str(args.window_days),
            "--seed", str(args.seed), "--var-root", str(args.var_root), "--plots", str(args.plots)]  # fmt: skip
    if main_arm:
        argv.append("--main-arm")
    if args.no_drill:
        argv.append("--no-drill")
    code = subprocess.call(argv, cwd=ROOT)
    if code != 0 or not out.is_file():
        raise RuntimeError(f"arm share={share:g} failed (exit {code}); see its output above")
    record: dict[str, Any] = json.loads(out.read_text())
    return record


def main(argv: list[str] | None = None) -> None:
    """Parent: run the arms, plot, print the figures and write the JSON. Child: one arm (`--child`)."""
    args = parse_args(argv)
    if args.child:
        from benchmarks.risk_arm import run_child

        run_child(args, PORTS)
        return
    from rich.console import Console

    from benchmarks.risk_report import plot_all, summary_lines
    from benchmarks.risk_tables import tables_markdown

    console = Console()
    started = time.monotonic()
    args.var_root.mkdir(parents=True, exist_ok=True)
    arms = {"0": run_arm(args, 0.0, main_arm=True)}
    available = exploration_available() or (
        args.from_arms and (args.var_root / f"arm-{args.exploration:g}.json").is_file()
    )
    exploration: dict[str, Any] = {"share": args.exploration, "available": available}
    if args.exploration > 0 and available:
        arms[f"{args.exploration:g}"] = run_arm(args, args.exploration, main_arm=False)
    elif args.exploration > 0:
        exploration["note"] = (
            "RECSYS_SERVING_EXPLORATION_SHARE is not in serving yet: only the share-0 arm ran"
        )
    record: dict[str, Any] = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                   if k not in ("child", "share", "child_out", "main_arm", "from_arms")},
        "exploration": exploration,
        "rebuilt_from_arms": args.from_arms,
        "arms": arms,
    }  # fmt: skip
    record["plots"] = {k: os.path.relpath(v, ROOT) for k, v in plot_all(record, args.plots).items()}
    tables = args.plots / "tables.md"
    tables.write_text(tables_markdown(record) + "\n")
    record["tables"] = os.path.relpath(tables, ROOT)
    # Rebuilt from the arms' records: the time is theirs (the rebuild itself takes seconds).
    spent = (
        sum(float(a["seconds"]["arm"]) for a in arms.values())
        if args.from_arms
        else time.monotonic() - started
    )
    record["seconds"] = round(spent, 1)
    record["python"] = platform.python_version()
    record["machine"] = f"{platform.machine()}, {os.cpu_count()} cores"
    from benchmarks.experiments import clean

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(clean(record), indent=2) + "\n")
    for line in summary_lines(record):
        console.print(line, highlight=False, soft_wrap=True)
    console.print(f"wrote {os.path.relpath(args.out, ROOT)} in {record['seconds']:.0f} s")


if __name__ == "__main__":
    main()
