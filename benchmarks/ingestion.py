"""Ingestion throughput and freshness: Kafka -> Parquet + DLQ + Feast online push, on this machine.

1. A simulated history (the simulator's mix, with 0.1% malformed and 0.1% duplicated lines)
   is written to a log file and replayed into a fresh 4-partition topic (not timed).
2. Throughput: one worker drains the topic, with the metadata API enrichment, online pushes to
   Feast's Redis store and (unless `--no-movie-job`) the periodic sessions + movie-features job
   on, as `recsys ingest` runs it: `events_per_s` is lines / wall seconds, movie job included;
   `movie_job_seconds` is the part of the drain that job took.
3. Count check: rows landed (raw kinds + DLQ) against lines produced, and duplicates of
   (partition, offset) across all raw tables.
4. Freshness: a producer replays lines at a steady rate while the worker runs; each push
   records the time from the batch's oldest Kafka timestamp to the features being online.

    python benchmarks/ingestion.py [--users N] [--movies M] [--hours H] [--live-rate R]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

# This script is named like the package it measures; run as a script, its own folder would come
# first on the import path and shadow the package. Drop it before importing the package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402

from core.noise import quiet_third_party  # noqa: E402
from events.kafka import ensure_topics, make_producer  # noqa: E402
from ingestion.layout import RAW_KINDS  # noqa: E402
from ingestion.replay import replay_file  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "ingestion.json"


def _recsys(*args: str, env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "recsys.cli", *args], env=env, check=True, stdout=subprocess.DEVNULL
    )


class PeakRss:
    """Samples this process's RSS every 50 ms (VmHWM would include start-up work)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, proc.memory_info().rss)
            time.sleep(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _lines(files: list[Path]) -> Iterator[bytes]:
    for f in files:
        with gzip.open(f) if f.suffix == ".gz" else f.open("rb") as fh:
            for line in fh:
                yield line.rstrip(b"\n")


def count_check(offline: Path, produced: int) -> dict[str, int]:
    """Rows landed per raw kind, lost and duplicated lines."""
    con = duckdb.connect()
    per_kind: dict[str, int] = {}
    keys = []
    for kind in RAW_KINDS:
        if kind == "play":
            continue
        glob = offline / "raw" / kind / "date=*" / "*.parquet"
        if not list((offline / "raw" / kind).glob("date=*/*.parquet")):
            per_kind[kind] = 0
            continue
        per_kind[kind] = int(con.sql(f"SELECT count(*) FROM read_parquet('{glob}')").fetchall()[0][0])
        keys.append(f"SELECT kafka_partition, kafka_offset FROM read_parquet('{glob}')")
    union = " UNION ALL ".join(keys)
    total, distinct = con.sql(
        f"SELECT count(*), count(DISTINCT (kafka_partition, kafka_offset)) FROM ({union})"
    ).fetchall()[0]
    accounted = sum(per_kind.values())
    return {
        **{f"rows_{k}": v for k, v in per_kind.items()},
        "produced": produced,
        "accounted": accounted,
        "lost": max(0, produced - int(distinct)),
        "duplicated": int(total) - int(distinct),
    }


def main() -> None:
    quiet_third_party()  # figures, not Feast/MLflow/httpx chatter
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000, help="Users in the world.")
    parser.add_argument("--movies", type=int, default=20_000, help="Movies in the catalogue.")
    parser.add_argument("--hours", type=float, default=8.0, help="Simulated hours of history to drain.")
    parser.add_argument(
        "--live-rate", type=float, default=10_000, help="Lines/s produced in the freshness phase."
    )
    parser.add_argument("--live-seconds", type=float, default=30, help="Length of the freshness phase.")
    parser.add_argument(
        "--movie-job", action=argparse.BooleanOptionalAction, default=True,
        help="Run the sessions + movie-features job in the worker, as `recsys ingest` does (default: on).",
    )  # fmt: skip
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="recsys-bench-ingest-"))
    var = work / "var"
    env = {**os.environ, "RECSYS_VAR_DIR": str(var), "RECSYS_SIM_MALFORMED_RATE": "0.001",
           "RECSYS_SIM_DUPLICATE_RATE": "0.001"}  # fmt: skip
    print(f"world {args.users:,} x {args.movies:,}, {args.hours:g} h of history -> {work}")
    _recsys(
        "simulate", "world", "--users", str(args.users), "--movies", str(args.movies), "--seed", "5", env=env
    )
    _recsys("simulate", "history", "--days", str(args.hours / 24), "--no-kafka", "--out", str(work / "logs"),
            "--no-gzip", env=env)  # fmt: skip
    files = sorted((work / "logs").glob("*.log"))
    lines = sum(1 for f in files for _ in f.open("rb"))
    topic = f"bench-movielog-{uuid.uuid4().hex[:6]}"
    live_topic = topic  # the freshness phase appends to the same topic
    ensure_topics({topic: 4})
    for f in files:
        replay_file(f, topic, progress=False)
    print(f"replayed {lines:,} lines into {topic}")

    os.environ["RECSYS_VAR_DIR"] = str(var)
    api = subprocess.Popen([sys.executable, "-m", "recsys.cli", "simulate", "api", "--port", "18080"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        from ingestion.factory import build_worker
        from ingestion.settings import IngestSettings

        deadline = time.monotonic() + 60
        import httpx

        while time.monotonic() < deadline:
            try:
                if httpx.get("http://127.0.0.1:18080/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        settings = IngestSettings(
            RECSYS_VAR_DIR=var, RECSYS_REDIS_URL="redis://127.0.0.1:6379/3", RECSYS_SIM_API_URL="http://127.0.0.1:18080",
            topic=topic, group_id=f"bench-{uuid.uuid4().hex[:6]}", metrics_port=0, movie_job=args.movie_job,
        )  # type: ignore[call-arg]  # fmt: skip
        worker = build_worker(settings)
        movie_job_s = [0.0]
        refresh = worker.refresh_movies

        def timed_refresh() -> dict[str, int]:
            t = time.perf_counter()
            try:
                return refresh()
            finally:
                movie_job_s[0] += time.perf_counter() - t

        worker.refresh_movies = timed_refresh  # type: ignore[method-assign]

        # Throughput: drain what is there.
        with PeakRss() as rss:
            t0 = time.perf_counter()
            stats = worker.run(idle_exit_s=3)
            drain_s = time.perf_counter() - t0 - 3  # the idle wait is not work
        events_per_s = stats.messages / drain_s
        drain_movie_job_s = movie_job_s[0]
        drain_batches = stats.batches  # the worker's stats keep counting in the freshness phase
        check = count_check(var / "offline", lines)
        print(f"drained {stats.messages:,} lines in {drain_s:.1f} s: {events_per_s:,.0f} events/s "
              f"({stats.batches} batches, {stats.dlq} to the DLQ; movie job "
              f"{'on, ' + format(drain_movie_job_s, '.1f') + ' s of it' if args.movie_job else 'off'})")  # fmt: skip

        # Freshness: steady live load.
        worker.freshness_samples.clear()
        stop = threading.Event()
        produced_live = [0]

        def live() -> None:
            producer = make_producer()
            src = _lines(files)
            start = time.perf_counter()
            for line in src:
                if stop.is_set():
                    break
                due = start + produced_live[0] / args.live_rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                producer.produce(
                    live_topic, line, key=line.split(b",", 2)[1] if line.count(b",") >= 2 else None
                )
                produced_live[0] += 1
                if produced_live[0] % 1000 == 0:
                    producer.poll(0)
            producer.flush(30)

        thread = threading.Thread(target=live, daemon=True)
        thread.start()
        threading.Timer(args.live_seconds, stop.set).start()
        worker.run(idle_exit_s=3, max_seconds=args.live_seconds + 60)
        thread.join()
        fresh = np.asarray(worker.freshness_samples)
        p50, p95 = (float(np.percentile(fresh, q)) for q in (50, 95)) if fresh.size else (float("nan"),) * 2
        print(f"freshness at {args.live_rate:,.0f} lines/s for {args.live_seconds:g} s: "
              f"p50 {p50:.2f} s, p95 {p95:.2f} s ({fresh.size:,} pushes)")  # fmt: skip
    finally:
        api.terminate()
        api.wait(10)

    result = {
        "world_users": args.users,
        "world_movies": args.movies,
        "lines": lines,
        "events_per_s": round(events_per_s),
        "events_per_s_target": 20_000,
        "drain_seconds": round(drain_s, 1),
        "batches": drain_batches,
        "freshness_live_rate": args.live_rate,
        "freshness_p50_s": round(p50, 3),
        "freshness_p95_s": round(p95, 3),
        "freshness_p95_target_s": 5.0,
        "peak_rss_mb": round(rss.peak / 2**20),
        **check,
        "enrichment": True,
        "online_push": True,
        "movie_job": args.movie_job,
        "movie_job_seconds": round(drain_movie_job_s, 1),
    }
    print(f"count check: produced {lines:,}, accounted {check['accounted']:,}, lost {check['lost']}, "
          f"duplicated {check['duplicated']}; peak RSS {result['peak_rss_mb']:,} MB")  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
