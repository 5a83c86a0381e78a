"""Simulator benchmark: full-scale world generation (time, peak RSS) and lines/s produced into Kafka.

1. World: 1,000,000 users x 20,000 movies generated and stored as Parquet by a child process;
   its peak RSS comes from the kernel's rusage of that child (os.wait4), so it is the true
   high-water mark of the whole generation, not a sample.
2. Traffic: the open-loop generator on that world, unpaced, through `events.format_line` into
   a fresh Kafka topic (acks=all, idempotent, lz4), flushed: `produce_lines_per_s`. The same
   generator without a sink (`generate_lines_per_s`) and a replay of a log file written by the
   generator (`replay_lines_per_s`) show where the time goes.

Needs the local broker (`recsys stack up`). Run one benchmark at a time:

    flock /tmp/recsys-bench.lock .venv/bin/python benchmarks/simulator.py [--users N --movies M --lines L]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

# This script is named like the package it measures; run as a script, its own folder would come
# first on the import path and shadow the package. Drop it (the package imports are in main()).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

RESULTS = Path(__file__).parent / "results" / "simulator.json"
TARGET_WORLD_S, TARGET_WORLD_MB, TARGET_PRODUCE = 120.0, 6_144.0, 50_000
START_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z

_CHILD = """
import json, sys, time
from pathlib import Path
from simulator.store import save_world
from simulator.world import generate_world
users, movies, seed, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
t0 = time.perf_counter()
world = generate_world(users, movies, seed)
t1 = time.perf_counter()
save_world(world, out)
print(json.dumps({"generate_s": t1 - t0, "save_s": time.perf_counter() - t1}))
"""


def world_in_child(users: int, movies: int, seed: int, out: Path) -> dict[str, float]:
    """Generate and store a world in a child process; its timings and peak RSS (MB)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(users), str(movies), str(seed), str(out)],
        stdout=subprocess.PIPE, env=env, cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"world generation failed with exit code {proc.returncode}")
    timings: dict[str, float] = json.loads(output)
    timings["process_s"] = time.perf_counter() - t0
    timings["peak_rss_mb"] = usage.ru_maxrss / 1024  # kilobytes on Linux
    return timings


def main() -> None:
    from events.kafka import broker_reachable, delete_topics, ensure_topics
    from ingestion.replay import replay_file
    from simulator.run import drive
    from simulator.settings import SimSettings
    from simulator.sinks import FileSink, KafkaSink
    from simulator.store import load_world
    from simulator.traffic import Traffic

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000, help="Users in the world.")
    parser.add_argument("--movies", type=int, default=20_000, help="Movies in the world.")
    parser.add_argument("--lines", type=int, default=2_000_000, help="Lines to produce into Kafka.")
    parser.add_argument("--seed", type=int, default=42, help="World seed.")
    args = parser.parse_args()
    if not broker_reachable():
        raise SystemExit("no Kafka broker answers: start it with `recsys stack up`")

    work = Path(tempfile.mkdtemp(prefix="bench-sim-", dir=os.environ.get("RECSYS_VAR_DIR", "var")))
    topic = f"bench-sim-{uuid.uuid4().hex[:8]}"
    try:
        w = world_in_child(args.users, args.movies, args.seed, work / "sim")
        world_s = w["generate_s"] + w["save_s"]
        print(f"world {args.users:,} users x {args.movies:,} movies: {world_s:.1f} s "
              f"(generate {w['generate_s']:.1f} s, write Parquet {w['save_s']:.1f} s), "
              f"peak RSS {w['peak_rss_mb']:,.0f} MB")  # fmt: skip

        world = load_world(work / "sim", texts=False)
        # A busy evening: enough sessions per simulated hour that lines, not clock, are the limit.
        settings = SimSettings(var_dir=work, sessions_per_hour=50_000)

        gen = Traffic(world, settings, "open", START_NS)
        t0 = time.perf_counter()
        made = 0
        for batch in gen.batches():
            made += len(batch.lines)
            if made >= args.lines // 2:
                break
        generate_rate = made / (time.perf_counter() - t0)
        print(f"generate (no sink)       : {generate_rate:>10,.0f} lines/s")

        ensure_topics({topic: 4})
        kafka = KafkaSink(topic)
        result = drive(
            Traffic(world, settings, "open", START_NS), [kafka], max_lines=args.lines, progress=False
        )
        if kafka.failed:
            raise SystemExit(f"{kafka.failed} lines not delivered: {kafka.last_error}")
        print(f"generate -> Kafka        : {result.lines_per_s:>10,.0f} lines/s "
              f"({result.stats.lines:,} lines, target {TARGET_PRODUCE:,})")  # fmt: skip

        files = FileSink(work / "logs", compress=True)
        drive(Traffic(world, settings, "open", START_NS), [files], max_lines=args.lines // 2, progress=False)
        replay = replay_file(files.paths[0], topic, progress=False)
        print(f"replay log file -> Kafka : {replay.lines_per_s:>10,.0f} lines/s ({replay.lines:,} lines)")
    finally:
        for name, error in delete_topics([topic]).items():
            print(f"could not delete topic {name}: {error}")
        shutil.rmtree(work, ignore_errors=True)

    out = {
        "world_users": args.users,
        "world_movies": args.movies,
        "world_seconds": round(world_s, 1),
        "world_generate_seconds": round(w["generate_s"], 1),
        "world_write_seconds": round(w["save_s"], 1),
        "world_process_seconds": round(w["process_s"], 1),
        "world_peak_rss_mb": round(w["peak_rss_mb"]),
        "produce_lines": result.stats.lines,
        "produce_lines_per_s": round(result.lines_per_s),
        "generate_lines_per_s": round(generate_rate),
        "replay_lines_per_s": round(replay.lines_per_s),
        "targets": {
            "world_seconds": TARGET_WORLD_S,
            "world_peak_rss_mb": TARGET_WORLD_MB,
            "produce_lines_per_s": TARGET_PRODUCE,
        },
        "meets_targets": world_s <= TARGET_WORLD_S
        and w["peak_rss_mb"] <= TARGET_WORLD_MB
        and result.lines_per_s >= TARGET_PRODUCE,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
