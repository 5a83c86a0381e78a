"""Soak: the recommendation service at full scale for 10 minutes at 200 requests/s, with ingestion and the online metrics job running.

What runs (every process started here is stopped at the end, also on failure):

1. Setup: benchmarks/serving.py's cached setup, through its own `--setup-only` (the offline store
   of the simulated world, the trained model in a private MLflow registry, and its Redis db 8 with
   every user and movie; see that script: ~27 min when nothing is cached, ~1 min when it is). The
   soak never writes to that db: its keys are copied (Redis COPY) into the soak's own db
   (`--redis-url`, db 10), flushed before the copy and after the run, because the ingestion
   worker pushes the features of every user it sees and would otherwise change the serving
   benchmark's data. With the local stack's append-only file on, the AOF is rewritten once after
   the copy (and waited for), so a rewrite (a fork of a multi-GB Redis) does not fall in the soak.
2. The platform, on the local stack (Kafka, Redis; `recsys stack up` when its status is not healthy):
   - `recsys serve --workers 2` on the cached var dir (model registry) and the soak db, as
     benchmarks/serving.py runs it; its provenance records go to `recsys.provenance`;
   - `recsys simulate api`, the metadata API ingestion enriches movies and new users from;
   - `recsys simulate traffic --mode open --start now` on the cached world at the history's own
     session rate (10M sessions over 14 days: 29,762 sessions/h, ~630 lines/s of watch minutes
     and ratings at 1M users) into a topic of the run's own (`bench.soak.<time>`, 4 partitions,
     deleted at the end); its front end's own recommendation lines are off
     (`RECSYS_SIM_REC_REQUEST_SHARE=0`): the load generator's answers are the recommendation lines;
   - `recsys ingest` consuming that topic into a fresh offline store (`var/bench-soak/<parameters>/`),
     pushing user features (and, through its movie job, movie features) to the soak db. It starts
     with no state, as a worker on a new topic does: the users it sees get features from the
     soak's events only;
   - `recsys monitor stream --no-from-beginning` on that topic and `recsys.provenance`.
3. Load: `GET /recommend/<userid>` open loop at `--rate` for `--warmup` + `--duration` seconds, one
   schedule without a gap (benchmarks/http_load.py: latency from each request's scheduled send
   time, so a stall is charged, not hidden); users as benchmarks/serving.py draws them (known users
   uniformly, `--unknown-share` ids no one has). Every answer is also written to the topic as the
   front end's course-format `recommendation request` line (status, ids, response time; status 0
   and the error for a failed call), so ingestion lands the lists and the monitor joins them with
   the provenance records and the watches. An answer is an error unless it is a 200 with 1 to 20
   distinct ids within `--timeout`. Latency figures count the requests due after the warm-up.
4. Resident memory (psutil, VmRSS) of every process every `--rss-interval` s: API master and
   workers (and any child they start), ingestion worker, online metrics job, the load generator
   itself, Redis, Kafka, the simulator and the metadata API. RSS start = the sample at the end of
   the warm-up; RSS end = the sample taken right after the last answer, before anything stops.
   The growth target is on the sum of the platform's own processes (API master + workers,
   ingestion worker, online metrics job); the others are reported each, not in that sum. With
   each sample, every process's run-queue wait (/proc/<pid>/schedstat: time its main thread, an
   API worker's event loop, was runnable without a core) measures CPU contention.
5. CPU placement, standing in for a cluster where serving pods have CPU of their own and the
   batch jobs run elsewhere: the API, Redis and this script (the clients) run in scheduler
   autogroups at nice -10; the monitor, the simulator and the metadata API at SCHED_IDLE and
   nice 10 (a waking request preempts them at once); ingestion at nice 10 in the normal class
   (at SCHED_IDLE it fell behind); the Kafka broker stays at
   nice 0 (at SCHED_IDLE or with its autogroup at nice 10 it starved behind the API: controller
   events took 8-66 s, the broker was fenced). Redis's autogroup is put back to 0 at the end.

Targets at full scale (1,000,000 users, 20,000 movies, 200 requests/s for 600 s after a 300 s
warm-up) on this 2-core machine: 0 errors, p99 <= 20 ms in every minute, RSS growth of the
platform's processes <= 10%. A smaller configuration prints the same figures and says the targets
apply to the full scale. Run under the shared benchmark lock, smoke first:

    flock /tmp/recsys-bench.lock .venv/bin/python benchmarks/soak.py --users 20000 --movies 2000 \\
        --train-users 300 --duration 60 --warmup 20 --out /tmp/soak-smoke.json
    flock /tmp/recsys-bench.lock .venv/bin/python benchmarks/soak.py

Writes `benchmarks/results/soak.json` and the plot `benchmarks/results/soak/soak.png` (p99 per
minute, RSS over time); a warm full run takes about 15 minutes.
"""

from __future__ import annotations

import os

# One BLAS/OpenMP thread, as benchmarks/serving.py and `recsys serve` set it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.util
import json
import platform
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import psutil
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from core.noise import quiet_third_party
from events.codec import format_time

# Run as a script, this folder would come first on the import path and shadow the `serving`
# package with benchmarks/serving.py (see there).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]


def _sibling(name: str) -> Any:
    """Import benchmarks/<name>.py by path (the folder is not on the import path, see above)."""
    module_name = f"_bench_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, _HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


srv = _sibling("serving")
load = srv.load  # benchmarks/http_load.py, as serving.py loaded it

REPO = _HERE.parent
VENV_BIN = Path(sys.executable).parent
RESULTS = _HERE / "results" / "soak.json"
SOAK_REDIS_URL = "redis://127.0.0.1:6379/10"
"""The soak's own db: a copy of the serving benchmark's, written by ingestion and serving, flushed after.
Dbs 10 and 15 are the ones no test or other benchmark uses (they take 0, 3, 5-9 and 11-14)."""
SMOKE_SOURCE_REDIS_URL = "redis://127.0.0.1:6379/15"
"""Source db of smaller configurations: serving.py's setup flushes its db for another world, so never db 8."""
SOAK_MARKER = "recsys-bench-soak:copy"
TARGETS = {"errors": 0, "p99_ms_worst_minute": 20.0, "rss_growth_pct": 10.0}
FULL_SCALE = {"users": 1_000_000, "movies": 20_000, "rate": 200.0, "duration": 600.0}
WORLD_FILES = ("world.json", "movies.parquet", "users.parquet", "truth_movies.parquet", "truth_users.parquet")
BACKGROUND_NICE = 10
BACKGROUND_POLICY = ["chrt", "--idle", "0"]
"""Scheduling class of the background processes that may fall behind (monitor, simulator, metadata
API): SCHED_IDLE, whose running task the kernel preempts at once when a normal one wakes. Not
ingestion: at SCHED_IDLE it fell 23K lines behind in ten minutes (the online features went stale
and its prefetch grew its RSS); it runs in the normal class at nice 10, its autogroup too. Not the
Kafka broker: at SCHED_IDLE, or with its autogroup at nice 10, its controller starved behind the API
for 8-66 s and fenced the broker (two diagnostic runs and an aborted full run); it stays at nice 0."""
IDLE_GROUPS = frozenset({"monitor", "simulator", "metadata"})
"""The groups started under BACKGROUND_POLICY."""
SERVING_NICE = -10
"""CPU niceness of the autogroups of the API, of Redis (on the request path) and of this script (the
clients): serving first, as a cluster gives serving pods CPU of their own."""
"""CPU niceness of every process but the API (see `start` in main: the cluster's guaranteed CPU, on one host)."""
READY_RUN = 20
"""Consecutive ready answers of /readyz before the load starts (each API worker builds its own tables)."""
GROUPS: dict[str, tuple[str, bool]] = {
    # group -> (what it is, counted in the platform's RSS sum)
    "api": ("recsys serve: master and workers", True),
    "ingestion": ("recsys ingest", True),
    "monitor": ("recsys monitor stream", True),
    "loadgen": ("this script: load generator and front-end log producer", False),
    "redis": ("redis-server of the local stack", False),
    "kafka": ("Kafka broker of the local stack", False),
    "simulator": ("recsys simulate traffic (the world's users)", False),
    "metadata": ("recsys simulate api (the world's metadata API)", False),
}
console = Console()


def _log(message: str) -> None:
    console.print(f"{time.strftime('%H:%M:%S')} {message}", highlight=False, soft_wrap=True)


def _set_autogroup(pid: int, nice: int) -> None:
    """Set the niceness of the process's scheduler autogroup (its CPU weight against other sessions).

    Each process started in a session of its own (`srv.Proc`) gets an autogroup of its own when
    the kernel has CONFIG_SCHED_AUTOGROUP on (`/proc/sys/kernel/sched_autogroup_enabled`): CPU is
    then shared evenly between the groups and a process's own niceness only counts inside its
    group. Without this the API's two workers shared one group's share against each background
    job's (the first run with `nice` alone: the online metrics job at 62% CPU, each API worker at 35%).
    """
    with contextlib.suppress(OSError):  # no autogroup support: `nice` alone applies
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))


def _wait_ready_run(url: str, run: int, timeout_s: float) -> float:
    """Poll `url` until `run` answers in a row are 200 (new connections land on every worker); seconds waited."""
    import urllib.error
    import urllib.request

    t0, streak = time.perf_counter(), 0
    while streak < run:
        if time.perf_counter() - t0 > timeout_s:
            raise SystemExit(f"{url}: not {run} ready answers in a row after {timeout_s:.0f} s")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                streak = streak + 1 if resp.status == 200 else 0
        except (urllib.error.URLError, ConnectionError, TimeoutError):  # 503 is an HTTPError: not ready
            streak = 0
            time.sleep(0.5)
    return time.perf_counter() - t0


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


# --- setup ----------------------------------------------------------------------------------------


def _setup(args: argparse.Namespace, work: Path, source_url: str) -> dict[str, Any]:
    """benchmarks/serving.py --setup-only for these parameters (generation, model, source Redis db)."""
    cmd = [sys.executable, str(_HERE / "serving.py"), "--setup-only", "--users", str(args.users), "--movies",
           str(args.movies), "--sessions", str(args.sessions), "--days", str(args.days), "--seed", str(args.seed),
           "--train-users", str(args.train_users), "--redis-url", source_url, "--work", str(work)]  # fmt: skip
    subprocess.run(cmd, cwd=REPO, check=True)
    info: dict[str, Any] = json.loads((work / srv.SETUP_FILE).read_text())
    return info


def _db(url: str) -> int:
    import redis

    return int(redis.Redis.from_url(url).connection_pool.connection_kwargs.get("db", 0))


def _wait_persistence(client: Any, timeout_s: float = 900.0) -> float:
    """Wait until no AOF rewrite or RDB save runs or is scheduled; returns the seconds waited."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        info = client.info("persistence")
        busy = (info.get("aof_rewrite_in_progress") or info.get("aof_rewrite_scheduled")
                or info.get("rdb_bgsave_in_progress"))  # fmt: skip
        if not busy:
            return time.perf_counter() - t0
        time.sleep(1.0)
    raise SystemExit(f"Redis still rewriting its AOF after {timeout_s:.0f} s")


def _copy_redis(source_url: str, url: str) -> dict[str, Any]:
    """Flush the soak db and COPY every key of the source db into it; rewrite the AOF once, outside the soak."""
    import redis

    src: Any = redis.Redis.from_url(source_url)
    dst: Any = redis.Redis.from_url(url)
    if _db(source_url) == _db(url):
        raise SystemExit(f"--redis-url {url} is the source db itself")
    if dst.dbsize() and not dst.exists(SOAK_MARKER):
        raise SystemExit(f"{url} holds {dst.dbsize():,} keys that are not a soak copy: refusing to flush it")
    dst.flushdb()
    target = _db(url)
    t0 = time.perf_counter()
    pipe = src.pipeline(transaction=False)
    n = 0
    for key in src.scan_iter(count=10_000):
        pipe.copy(key, key, destination_db=target)
        n += 1
        if n % 10_000 == 0:
            pipe.execute()
    pipe.execute()
    copy_s = time.perf_counter() - t0
    dst.set(
        SOAK_MARKER, json.dumps({"source": source_url, "keys": n, "at": dt.datetime.now(dt.UTC).isoformat()})
    )
    _log(f"copied {n:,} keys {source_url} -> {url} in {copy_s:.0f} s")
    rewrite_s = 0.0
    if dst.info("persistence").get("aof_enabled"):
        _wait_persistence(dst)
        dst.bgrewriteaof()
        time.sleep(1.0)
        rewrite_s = _wait_persistence(dst) + 1.0
        _log(f"AOF rewritten in {rewrite_s:.0f} s (not during the soak)")
    return {"url": url, "source": source_url, "keys": int(dst.dbsize()), "copy_seconds": copy_s,
            "aof_rewrite_seconds": rewrite_s, "used_memory_mb_all_dbs": dst.info("memory")["used_memory"] / 2**20}  # fmt: skip


REDIS_LATENCY_MS = 10
"""Redis's latency monitor threshold during the soak: events (commands, AOF writes, forks) at least this long."""


def _redis_latency(url: str, reset: bool = False) -> dict[str, Any]:
    """Redis's own latency events (LATENCY LATEST: per event, latest and max ms, count since reset); never raises."""
    import redis

    client: Any = redis.Redis.from_url(url)
    try:
        if reset:
            client.config_set("latency-monitor-threshold", REDIS_LATENCY_MS)
            client.execute_command("LATENCY", "RESET")
            return {}
        rows = client.execute_command("LATENCY", "LATEST")
    except redis.RedisError as exc:
        return {"error": str(exc)}
    out: dict[str, Any] = {"threshold_ms": REDIS_LATENCY_MS}
    for row in rows:
        name = row[0].decode() if isinstance(row[0], bytes) else str(row[0])
        out[name] = {"latest_ms": int(row[2]), "max_ms": int(row[3])} | (
            {"count": int(row[4])} if len(row) > 4 else {}
        )
    return out


def _drop_stale_topics() -> None:
    """Delete the topics of earlier soak runs that were stopped before their own clean-up; never raises.

    Fourteen such topics (56 partitions, ~1 GB) were on the broker when three runs in a row
    collapsed in their first minute: the broker's controller took 3-66 s per event while it
    carried them, producers timed out and the clients' reconnects overloaded the host. (Every run
    had left its topic: the clean-up's admin client was collected before its futures resolved.)
    """
    from events.kafka import delete_topics, make_admin

    try:
        stale = [t for t in make_admin().list_topics(timeout=30).topics if t.startswith("bench.soak.")]
        failed = delete_topics(stale, timeout_s=60)
    except Exception as exc:  # the run itself does not depend on it
        _log(f"could not list the topics of earlier soak runs: {exc}")
        return
    if stale:
        _log(f"deleted {len(stale) - len(failed)} of {len(stale)} topics of earlier soak runs {failed or ''}")


def _flush(url: str) -> None:
    import redis

    client: Any = redis.Redis.from_url(url)
    with contextlib.suppress(redis.RedisError):
        if client.exists(SOAK_MARKER):
            client.flushdb()


def _listener_pid(port: int) -> int | None:
    """The process listening on a local TCP port (Redis, Kafka)."""
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return int(conn.pid)
    return None


def _stop(proc: Any, first: signal.Signals = signal.SIGTERM, wait_s: float = 30.0) -> None:
    """Ask politely (SIGINT checkpoints the monitor and flushes the simulator), then serving.py's Proc.stop."""
    if proc.popen.poll() is None and first != signal.SIGTERM:
        proc.popen.send_signal(first)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=wait_s)
    proc.stop()


def _scrape(url: str, prefixes: tuple[str, ...]) -> dict[str, float]:
    """Series of a Prometheus /metrics text whose names start with one of `prefixes` (labels kept)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            text = resp.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        return {"error": float("nan"), f"error: {exc}": float("nan")}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(prefixes) and "_created" not in line.split("{")[0]:
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


def _last_line(proc: Any, prefix: str) -> str | None:
    """The last line of a process log starting with `prefix` (its own summary on exit)."""
    lines = [ln.strip() for ln in proc.log_path.read_text(errors="replace").splitlines()]
    found = [ln for ln in lines if ln.startswith(prefix)]
    return found[-1] if found else None


# --- the front end: load generator that logs each answer to Kafka -----------------------------------


_Pool: Any = load.Pool


class FrontEndPool(_Pool):  # type: ignore[misc]
    """The load generator's connection pool that also writes the front end's log line of every call.

    The line is what the course's servers write (`<time>,<user>,recommendation request <server>,
    status <code>, result: <ids>, <ms> ms`), produced to the soak topic keyed by user id, so the
    ingestion worker lands it and the online metrics job joins it with the provenance record.
    """

    def __init__(self, host: str, port: int, producer: Any, topic: str, timeout_s: float) -> None:
        super().__init__(host, port)
        self.producer, self.topic, self.timeout_ms = producer, topic, round(timeout_s * 1000)
        self.server = f"{host}:{port}"
        self.done: list[tuple[float, float]] = []
        """(perf_counter at the answer, ms from send) per call, in answer order (the live figures)."""
        self.failed: list[float] = []
        """perf_counter of each call that raised (timeouts, resets)."""
        self.lines = 0
        self.not_delivered = 0

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.not_delivered += 1

    def _emit(self, request: bytes, ts_ns: int, status: int, body: str, ms: int) -> None:
        user = request[15 : request.index(b" ", 15)].decode()  # b"GET /recommend/<id> HTTP/1.1..."
        line = f"{format_time(ts_ns, 3)},{user},recommendation request {self.server}, status {status}, result: {body}, {ms} ms"
        try:
            self.producer.produce(self.topic, line.encode(), user.encode(), on_delivery=self._delivered)
        except BufferError:  # the local queue is full: the broker is behind; count the line as lost
            self.not_delivered += 1
        self.producer.poll(0)
        self.lines += 1

    async def send(self, request: bytes) -> Any:
        ts_ns, t0 = time.time_ns(), time.perf_counter()
        try:
            reply = await super().send(request)
        except BaseException as exc:  # timeout (cancelled by the caller's deadline), reset, refused
            t1 = time.perf_counter()
            self.failed.append(t1)
            ms = round((t1 - t0) * 1000)
            text = (f"java.util.concurrent.TimeoutException: Request timeout to {self.server} after "
                    f"{self.timeout_ms} ms") if isinstance(exc, asyncio.CancelledError | TimeoutError) else (
                    f"{type(exc).__name__}: {exc}".replace("\n", " ")[:200])  # fmt: skip
            self._emit(request, ts_ns, 0, text, ms)
            raise
        t1 = time.perf_counter()
        self.done.append((t1, (t1 - t0) * 1000))
        ms = round((t1 - t0) * 1000)
        if reply.status == 200:
            ids = [i for i in reply.body.decode(errors="replace").strip().split(",") if i][:20]
            self._emit(request, ts_ns, 200, ", ".join(ids), ms)
        else:
            self._emit(
                request, ts_ns, reply.status, reply.body.decode(errors="replace").replace("\n", " ")[:200], ms
            )
        return reply


# --- resident memory ------------------------------------------------------------------------------


@dataclass
class Sample:
    at: float
    """perf_counter when taken."""
    rss_mb: dict[str, float]
    cpu_s: dict[str, float]
    topic_lines: int
    wait_s: dict[str, float] = field(default_factory=dict)
    """Seconds the process's main thread (an API worker's event loop) spent runnable but not running."""


@dataclass
class Watch:
    """Every process of the run by label (`api worker 1`, `redis`, ...), resolved again at each sample."""

    roots: dict[str, Any]
    """group -> serving.py Proc (its process and all descendants belong to the group)."""
    fixed: dict[str, int]
    """group -> pid of a process not started here (the load generator itself, Redis, Kafka)."""
    api_workers: list[int] = field(default_factory=list)
    labels: dict[int, str] = field(default_factory=dict)
    group_of: dict[str, str] = field(default_factory=dict)
    seen: dict[str, list[float]] = field(default_factory=dict)

    def _label(self, group: str, proc: psutil.Process, root: bool) -> str:
        if proc.pid not in self.labels:
            if group == "api":
                if root:
                    name = "api master"
                elif proc.pid in self.api_workers:
                    name = f"api worker {self.api_workers.index(proc.pid) + 1}"
                else:  # the resource tracker, a `recsys features rebuild` it started, a restarted worker
                    try:
                        what = " ".join(proc.cmdline())[-40:]
                    except psutil.Error:
                        what = "?"
                    name = f"api child {proc.pid} ({what})"
            else:
                name = {"ingestion": "ingestion worker", "monitor": "online metrics job", "loadgen": "load generator",
                        "simulator": "simulator traffic", "metadata": "metadata API"}.get(group, group)  # fmt: skip
                if not root:
                    name = f"{name} child {proc.pid}"
            self.labels[proc.pid] = name
            self.group_of[name] = group
        return self.labels[proc.pid]

    def processes(self) -> list[tuple[str, psutil.Process]]:
        out: list[tuple[str, psutil.Process]] = []
        for group, proc in self.roots.items():
            for i, p in enumerate(proc.processes()):
                out.append((self._label(group, p, i == 0), p))
        for group, pid in self.fixed.items():
            with contextlib.suppress(psutil.Error):
                p = psutil.Process(pid)
                out.append((self._label(group, p, True), p))
        return out

    def sample(self, watermarks: Any) -> Sample:
        at = time.perf_counter()
        rss: dict[str, float] = {}
        cpu: dict[str, float] = {}
        wait: dict[str, float] = {}
        for label, p in self.processes():
            with contextlib.suppress(psutil.Error):
                rss[label] = p.memory_info().rss / 2**20
                t = p.cpu_times()
                cpu[label] = t.user + t.system
                with contextlib.suppress(
                    OSError, ValueError, IndexError
                ):  # schedstat: on-CPU ns, run-queue ns, slices
                    wait[label] = int(Path(f"/proc/{p.pid}/schedstat").read_text().split()[1]) / 1e9
                self.seen.setdefault(label, [at, at])[1] = at
        return Sample(at, rss, cpu, watermarks(), wait)


def _round(value: Any) -> Any:
    """Floats to 3 decimals (1 above 100), through dicts and lists."""
    if isinstance(value, float):
        return round(value, 3) if abs(value) < 100 else round(value, 1)
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v) for v in value]
    return value


def _service_sum(sample: Sample, group_of: dict[str, str]) -> float:
    return sum(v for k, v in sample.rss_mb.items() if GROUPS[group_of[k]][1])


# --- the run --------------------------------------------------------------------------------------


def _topic_lines(topic: str) -> Any:
    """A callable: lines in the topic (sum of the partitions' high watermarks)."""
    from confluent_kafka import TopicPartition

    from events.kafka import make_consumer

    consumer = make_consumer("bench-soak-watermarks")
    parts: list[int] = []

    def count() -> int:
        if not parts:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            parts.extend(sorted(meta.partitions or {}))
        total = 0
        for p in parts:
            with contextlib.suppress(Exception):
                total += int(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1])
        return total

    return count


async def _drive(pool: Any, port: int, requests: list[bytes], args: argparse.Namespace, procs: list[psutil.Process],
                 started: threading.Event) -> Any:  # fmt: skip
    """Balance keep-alive connections over the workers (as serving.py does), then the open loop."""
    workers = srv._serving_workers(procs, port)
    per_worker = max(1, args.connections // len(workers))
    probe = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    try:
        await pool.fill_balanced(per_worker, [p.pid for p in workers], probe, srv._worker_of(workers))
        started.set()
        return await load.open_loop(pool, requests, args.rate, args.timeout, srv.inspect_recommendation)
    finally:
        pool.close()


def _live(pool: Any, watch: Watch, watermarks: Any, args: argparse.Namespace, n: int, started: threading.Event,
          stop: threading.Event, samples: list[Sample]) -> None:  # fmt: skip
    """Progress bar, one log line per minute, and an RSS sample every --rss-interval s (its own thread)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[status]}"))  # fmt: skip
    started.wait()
    t0 = time.perf_counter()
    next_sample, minute, cursor = 0.0, 0, 0
    with Progress(*columns, console=console, refresh_per_second=2) as bar:
        task = bar.add_task("soak", total=n, status="warming up")
        while not stop.is_set():
            now = time.perf_counter() - t0
            if now >= next_sample:
                samples.append(watch.sample(watermarks))
                next_sample += args.rss_interval
            if now >= 60.0 * (minute + 1):  # a minute of the schedule: its answers' service time and errors
                done = pool.done[cursor:]
                cursor += len(done)
                ms = np.array([d[1] for d in done])
                svc = _service_sum(samples[-1], watch.group_of)
                phase = "warm-up" if 60.0 * (minute + 1) <= args.warmup else "of the schedule"
                bar.console.print(
                    f"{time.strftime('%H:%M:%S')} minute {minute + 1} ({phase}): {len(done):,} answers, "
                    f"service-time p99 {_pct(ms, 99):.1f} ms, {len(pool.failed)} calls failed so far; "
                    f"platform RSS {svc:,.0f} MB", highlight=False)  # fmt: skip
                minute += 1
            recent = np.array([d[1] for d in pool.done[-int(args.rate * 10) :]])
            status = (f"{'warm-up' if now < args.warmup else 'measured'} | p99 (last 10 s) {_pct(recent, 99):.1f} ms"
                      f" | failed {len(pool.failed)} | platform RSS {_service_sum(samples[-1], watch.group_of):,.0f} MB")  # fmt: skip
            bar.update(task, completed=len(pool.done) + len(pool.failed), status=status)
            stop.wait(0.5)
        bar.update(task, completed=len(pool.done) + len(pool.failed))


def _plot(per_minute: list[dict[str, Any]], t_s: list[float], series: dict[str, list[float]], platform_mb: list[float],
          warmup: float, path: Path) -> Path:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lat, mem) = plt.subplots(2, 1, figsize=(10, 8))
    minutes = [m["minute"] for m in per_minute]
    lat.bar(minutes, [m["p99_ms"] for m in per_minute], color="tab:blue", alpha=0.8, label="p99")
    lat.plot(minutes, [m["p50_ms"] for m in per_minute], "o-", color="tab:orange", label="p50")
    lat.axhline(TARGETS["p99_ms_worst_minute"], color="tab:red", ls=":", label="p99 target 20 ms")
    lat.set_xlabel("minute of the measured window")
    lat.set_ylabel("latency from scheduled send (ms)")
    lat.set_title("GET /recommend per minute (open loop, ingestion and online metrics running)")
    lat.legend(fontsize=8)
    lat.grid(True, alpha=0.3)
    mem.plot(t_s, platform_mb, "k-", lw=2, label="platform sum (API + ingestion + monitor)")
    for label, values in series.items():
        mem.plot(t_s, values, lw=1, label=label)
    mem.axvline(warmup, color="grey", ls=":", label="end of warm-up (RSS start)")
    mem.set_xlabel("seconds since the first request")
    mem.set_ylabel("RSS (MB)")
    mem.set_yscale("log")
    mem.set_title("Resident memory per process")
    mem.legend(fontsize=7, ncol=2)
    mem.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> None:
    quiet_third_party()
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000, help="Users in the world (all in Redis).")
    parser.add_argument("--movies", type=int, default=20_000, help="Movies in the catalogue.")
    parser.add_argument("--sessions", type=int, help="Watch sessions of history (default: 10 per user).")
    parser.add_argument("--days", type=float, default=14.0, help="Days the history spans.")
    parser.add_argument("--seed", type=int, default=42, help="World and traffic seed.")
    parser.add_argument(
        "--train-users", type=int, default=1_000, help="serving.py's --train-users (part of its cache key)."
    )
    parser.add_argument("--rate", type=float, default=200.0, help="Requests per second (open loop).")
    parser.add_argument("--duration", type=float, default=600.0, help="Seconds of measured traffic.")
    parser.add_argument(
        "--warmup",
        type=float,
        default=300.0,
        help="Seconds of traffic before, not counted; RSS start is taken at its end (5 min: the API workers'"
        " first table re-reads, ingestion's start on a new topic and the provenance index's fill fall inside).",
    )
    parser.add_argument(
        "--unknown-share", type=float, default=0.02, help="Share of requests for user ids no one has."
    )
    parser.add_argument(
        "--connections", type=int, default=16, help="Keep-alive connections opened before the run."
    )
    parser.add_argument(
        "--timeout", type=float, default=2.0, help="Seconds after which a request counts as an error."
    )
    parser.add_argument("--workers", type=int, default=2, help="Worker processes of the service.")
    parser.add_argument(
        "--sessions-per-hour",
        type=float,
        help="Simulator's watch sessions per hour (default: the history's own rate).",
    )
    parser.add_argument("--rss-interval", type=float, default=10.0, help="Seconds between RSS samples.")
    parser.add_argument(
        "--redis-url", default=SOAK_REDIS_URL, help="The soak's own Redis db (flushed before and after)."
    )
    parser.add_argument(
        "--source-redis-url", help="serving.py's db for this world (default: db 8 at full scale, else db 15)."
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="Where to write the JSON figures (plot in <out stem>/)."
    )
    args = parser.parse_args()  # fmt: skip
    args.sessions = args.sessions or 10 * args.users
    key = f"u{args.users}-m{args.movies}-s{args.sessions}-d{args.days:g}-seed{args.seed}"
    work = (REPO / "var" / "bench-serving" / key).resolve()
    soak = (REPO / "var" / "bench-soak" / key).resolve()
    full_scale = all(getattr(args, k) == v for k, v in FULL_SCALE.items())
    world_full = (args.users, args.movies) == (FULL_SCALE["users"], FULL_SCALE["movies"])
    source_url = args.source_redis_url or (srv.REDIS_URL if world_full else SMOKE_SOURCE_REDIS_URL)
    plot_path = args.out.parent / args.out.stem / "soak.png"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    topic = f"bench.soak.{stamp}"
    t_setup = time.perf_counter()

    srv._ensure_stack()
    info = _setup(args, work, source_url)
    generated = json.loads((work / srv.GENERATED).read_text())
    sessions_per_hour = args.sessions_per_hour or generated["watch_sessions"] / (generated["days"] * 24)
    history_lines_per_s = (generated["minutes_watched"] + generated["ratings"]) / (generated["days"] * 86_400)

    # The run's own var dir: a fresh offline store for ingestion and the monitor, the world linked in.
    import shutil

    shutil.rmtree(soak / "var", ignore_errors=True)
    (soak / "var" / "sim").mkdir(parents=True)
    for name in WORLD_FILES:
        (soak / "var" / "sim" / name).symlink_to(work / "var" / "sim" / name)
    logs = soak / "logs"

    from events.kafka import delete_topics, ensure_topics, make_producer
    from events.settings import get_kafka_settings

    kafka = get_kafka_settings()
    redis_port = urlsplit(args.redis_url).port or 6379
    kafka_port = int(kafka.bootstrap_servers.split(",")[0].rsplit(":", 1)[1])
    procs: dict[str, Any] = {}
    result: dict[str, Any] = {}
    try:
        redis_info = _copy_redis(source_url, args.redis_url)
        # The copy and the AOF rewrite wrote GBs: flush them before the platform starts, or their
        # writeback lands in the soak (a run that skipped this saw the broker's metadata fsync take
        # 8 s, the broker fenced, and every process stall for ~20 s in its first minute).
        t_sync = time.perf_counter()
        os.sync()
        redis_info["sync_seconds"] = time.perf_counter() - t_sync
        _redis_latency(args.redis_url, reset=True)
        _drop_stale_topics()
        ensure_topics({topic: kafka.movielog_partitions})
        setup_seconds = time.perf_counter() - t_setup

        ports = {name: srv._free_port() for name in ("api", "metadata", "ingest_metrics", "monitor_metrics")}
        meta_url = f"http://127.0.0.1:{ports['metadata']}"
        # COLUMNS: rich wraps the processes' one-line exit summaries at 80 columns in a log file.
        base = {
            **os.environ,
            "RECSYS_REDIS_URL": args.redis_url,
            "RECSYS_SIM_API_URL": meta_url,
            "COLUMNS": "250",
        }
        soak_env = {**base, "RECSYS_VAR_DIR": str(soak / "var")}
        recsys = str(VENV_BIN / "recsys")

        def start(group: str, cmd: list[str], env: dict[str, str]) -> Any:
            # Everything but the API runs at a lower CPU priority: on a cluster the serving pods have
            # guaranteed CPU and ingestion, monitoring and the simulated world run on other nodes; on
            # these 2 shared cores the background jobs would otherwise take the API's CPU.
            policy = BACKGROUND_POLICY if group in IDLE_GROUPS else []
            prefix = [] if group == "api" else [*policy, "nice", "-n", str(BACKGROUND_NICE)]
            procs[group] = srv.Proc(group, [*prefix, recsys, *cmd], env, REPO, logs / f"{group}-{stamp}.log")
            _set_autogroup(procs[group].popen.pid, SERVING_NICE if group == "api" else BACKGROUND_NICE)
            return procs[group]

        metadata = start(
            "metadata", ["simulate", "api", "--host", "127.0.0.1", "--port", str(ports["metadata"])], soak_env
        )
        service = start("api", ["serve", "--host", "127.0.0.1", "--port", str(ports["api"]), "--workers", str(args.workers)],
                        {**base, "RECSYS_VAR_DIR": str(work / "var")})  # fmt: skip
        srv._wait_http(metadata, f"{meta_url}/healthz", 300)
        ready_s, readiness = srv._wait_http(service, f"http://127.0.0.1:{ports['api']}/readyz", 900)
        # One worker ready is not all of them (each builds its own tables): wait for a run of ready answers.
        ready_s += _wait_ready_run(f"http://127.0.0.1:{ports['api']}/readyz", READY_RUN, 900)
        _log(f"service ready in {ready_s:.1f} s: {readiness}")
        start("ingestion", ["ingest"], {**soak_env, "RECSYS_INGEST_TOPIC": topic, "RECSYS_INGEST_GROUP_ID": f"bench-soak-{stamp}",
                                        "RECSYS_INGEST_METRICS_PORT": str(ports["ingest_metrics"])})  # fmt: skip
        start("monitor", ["monitor", "stream", "--no-from-beginning"],
              {**soak_env, "RECSYS_MONITOR_TOPIC": topic, "RECSYS_MONITOR_GROUP_ID": f"bench-soak-monitor-{stamp}",
               "RECSYS_MONITOR_METRICS_PORT": str(ports["monitor_metrics"])})  # fmt: skip
        start("simulator", ["simulate", "traffic", "--mode", "open", "--start", "now", "--speed", "1",
                            "--sessions-per-hour", f"{sessions_per_hour:.1f}", "--topic", topic],
              {**soak_env, "RECSYS_SIM_REC_REQUEST_SHARE": "0"})  # fmt: skip
        # The monitor and ingestion open their consumers within seconds; both read the topic from
        # its start (a new consumer group), so nothing they should see is missed while they start.
        srv._wait_http(procs["ingestion"], f"http://127.0.0.1:{ports['ingest_metrics']}/metrics", 120)
        srv._wait_http(procs["monitor"], f"http://127.0.0.1:{ports['monitor_metrics']}/metrics", 120)

        # The traffic: known users drawn uniformly plus ids no one has, as serving.py draws them.
        rng = np.random.default_rng([args.seed, 15])
        known = np.load(work / srv.KNOWN_USERS)
        n = round(args.rate * (args.warmup + args.duration))
        is_known = rng.random(n) >= args.unknown_share
        ids = np.where(is_known, known[rng.integers(0, len(known), n)], 10**12 + rng.integers(0, 10**12, n))
        host = f"127.0.0.1:{ports['api']}"
        requests = [srv._recommend_request(int(u), host) for u in ids]
        del ids

        watermarks = _topic_lines(topic)
        # The simulator loads the world first (~tens of seconds at 1M users): the warm-up starts when
        # its lines flow, so the RSS start figure is taken with every process at work.
        t_sim = time.perf_counter()
        while watermarks() == 0:
            if procs["simulator"].popen.poll() is not None or time.perf_counter() - t_sim > 600:
                raise SystemExit(f"the simulator produced nothing:\n{procs['simulator'].tail()}")
            time.sleep(1.0)
        _log(f"simulator lines flowing after {time.perf_counter() - t_sim:.0f} s")
        api_procs = service.processes()
        watch = Watch(roots={g: procs[g] for g in ("api", "ingestion", "monitor", "simulator", "metadata")},
                      fixed={"loadgen": os.getpid()})  # fmt: skip
        watch.api_workers = sorted(p.pid for p in srv._serving_workers(api_procs, ports["api"]))
        for group, port in (("redis", redis_port), ("kafka", kafka_port)):
            pid = _listener_pid(port)
            if pid is not None:
                watch.fixed[group] = pid
        # The clients and the online store share the API's priority: in production the clients run
        # elsewhere and Redis has its own CPU; here a client starved by the background jobs would have
        # its own lateness charged to the service (latency counts from the scheduled send).
        _set_autogroup(os.getpid(), SERVING_NICE)
        if "redis" in watch.fixed:
            _set_autogroup(watch.fixed["redis"], SERVING_NICE)
        producer = make_producer()
        pool = FrontEndPool("127.0.0.1", ports["api"], producer, topic, args.timeout)
        _log(f"{args.warmup:g} s warm-up + {args.duration:g} s measured at {args.rate:g} req/s ({n:,} requests); "
             f"simulator at {sessions_per_hour:,.0f} sessions/h into {topic}")  # fmt: skip
        started, stop = threading.Event(), threading.Event()
        samples: list[Sample] = []
        live = threading.Thread(target=_live, args=(pool, watch, watermarks, args, n, started, stop, samples),
                                name="live", daemon=True)  # fmt: skip
        live.start()
        try:
            shots = asyncio.run(_drive(pool, ports["api"], requests, args, api_procs, started))
        finally:
            started.set()
            stop.set()
            live.join(timeout=30)
        samples.append(
            watch.sample(watermarks)
        )  # the end sample: right after the last answer, nothing stopped yet
        producer.flush(30)
        ingest_metrics = _scrape(f"http://127.0.0.1:{ports['ingest_metrics']}/metrics",
                                 ("recsys_ingest_events_total", "recsys_ingest_consumer_lag", "recsys_ingest_dlq_total",
                                  "recsys_ingest_online_push_failures_total", "recsys_ingest_online_pending_users",
                                  "recsys_ingest_online_rebuilds_total"))  # fmt: skip
        monitor_metrics = _scrape(f"http://127.0.0.1:{ports['monitor_metrics']}/metrics",
                                  ("recsys_monitor_", "recsys_online_requests_total"))  # fmt: skip
        counters = srv._service_counters(f"http://{host}/metrics")
        redis_info["latency_events"] = _redis_latency(args.redis_url)
        result = _figures(args, shots, samples, watch, pool, info, redis_info, generated, sessions_per_hour,
                          history_lines_per_s, topic, ingest_metrics, monitor_metrics, counters, ready_s,
                          setup_seconds, full_scale, plot_path)  # fmt: skip
    finally:
        for group in ("simulator", "monitor", "ingestion", "api", "metadata"):
            if group in procs:
                _stop(procs[group], signal.SIGINT if group in ("simulator", "monitor") else signal.SIGTERM)
        # The run's topic: nothing else reads it (kept topics slowed later brokers' start-up).
        for name, error in delete_topics([topic]).items():  # the results are written anyway: say what is left
            _log(f"could not delete the run's topic {name}: {error}")
        _flush(args.redis_url)
        redis_pid = _listener_pid(redis_port)
        if redis_pid is not None:
            _set_autogroup(redis_pid, 0)
    if not result:
        return
    # What the platform's processes said on the way out (their own counts).
    result["events"]["ingestion"]["exit_summary"] = _last_line(procs["ingestion"], "ingested")
    result["events"]["monitor"]["exit_summary"] = _last_line(procs["monitor"], "monitor:")
    _report(result, args)


def _figures(args: argparse.Namespace, shots: Any, samples: list[Sample], watch: Watch, pool: Any, info: dict[str, Any],
             redis_info: dict[str, Any], generated: dict[str, Any], sessions_per_hour: float,
             history_lines_per_s: float, topic: str, ingest_metrics: dict[str, float],
             monitor_metrics: dict[str, float], counters: dict[str, Any], ready_s: float, setup_seconds: float,
             full_scale: bool, plot_path: Path) -> dict[str, Any]:  # fmt: skip
    """The JSON result from the shots and the RSS samples; writes the plot."""
    t0 = float(shots.due[0])
    rel = shots.due - t0
    measured = rel >= args.warmup
    lat_all = shots.latency_ms
    ok_all = np.array([e is None for e in shots.errors])
    lat, ok = lat_all[measured], ok_all[measured]
    errors: dict[str, int] = {}
    for e, m in zip(shots.errors, measured, strict=True):
        if e is not None and m:
            errors[e] = errors.get(e, 0) + 1
    n_errors = int((~ok).sum())
    minute = np.floor((rel[measured] - args.warmup) / 60.0).astype(np.int64)
    per_minute = []
    for k in range(int(minute.max()) + 1 if len(minute) else 0):
        sel = minute == k
        per_minute.append({
            "minute": k + 1, "requests": int(sel.sum()), "errors": int((~ok[sel]).sum()),
            "p50_ms": _pct(lat[sel], 50), "p99_ms": _pct(lat[sel], 99), "max_ms": float(lat[sel].max()),
            "client_lag_p99_ms": _pct(shots.lag_ms[measured][sel], 99),
        })  # fmt: skip
    worst = max(per_minute, key=lambda m: m["p99_ms"])
    # RSS start: the first sample at or after the end of the warm-up; end: the sample after the last answer.
    at = np.array([s.at - t0 for s in samples])
    i_start = int(np.searchsorted(at, args.warmup - 1e-6))
    i_start = min(i_start, len(samples) - 2)
    start, end = samples[i_start], samples[-1]
    group_of = watch.group_of
    svc_start, svc_end = _service_sum(start, group_of), _service_sum(end, group_of)
    wall = end.at - start.at
    processes: dict[str, Any] = {}
    for label in sorted(
        set(start.rss_mb) | set(end.rss_mb), key=lambda k: (list(GROUPS).index(group_of[k]), k)
    ):
        a, b = start.rss_mb.get(label), end.rss_mb.get(label)
        cpu = (
            (end.cpu_s[label] - start.cpu_s[label]) / wall * 100
            if label in start.cpu_s and label in end.cpu_s
            else None
        )
        processes[label] = {
            "group": group_of[label], "in_platform_sum": GROUPS[group_of[label]][1],
            "pid": next((pid for pid, name in watch.labels.items() if name == label), None),
            "rss_start_mb": a, "rss_end_mb": b,
            "growth_mb": b - a if a is not None and b is not None else None,
            "growth_pct": (b - a) / a * 100 if a and b is not None else None,
            "rss_max_mb": max(s.rss_mb.get(label, 0.0) for s in samples[i_start:]),
            "cpu_percent_measured": cpu,
            # CPU contention: ms per second the main thread waited for a core while runnable.
            "runqueue_wait_ms_per_s": (end.wait_s[label] - start.wait_s[label]) / wall * 1000
            if label in start.wait_s and label in end.wait_s
            else None,
            "seen_s": [round(watch.seen[label][0] - t0, 1), round(watch.seen[label][1] - t0, 1)],
        }  # fmt: skip
    labels = sorted(
        {k for s in samples for k in s.rss_mb}, key=lambda k: (list(GROUPS).index(group_of[k]), k)
    )
    series = {k: [round(s.rss_mb[k], 1) if k in s.rss_mb else None for s in samples] for k in labels}
    t_s = [round(float(x), 1) for x in at]
    platform_mb = [round(_service_sum(s, group_of), 1) for s in samples]
    _plot(per_minute, t_s, {k: [v if v is not None else np.nan for v in vs] for k, vs in series.items()},
          platform_mb, args.warmup, plot_path)  # fmt: skip
    measured_s = end.at - start.at
    topic_lines = end.topic_lines - start.topic_lines
    rec_lines_measured = int(measured.sum())
    growth = (svc_end - svc_start) / svc_start * 100
    met = {
        "errors": n_errors <= TARGETS["errors"],
        "p99_ms_worst_minute": worst["p99_ms"] <= TARGETS["p99_ms_worst_minute"],
        "rss_growth_pct": growth <= TARGETS["rss_growth_pct"],
    }
    ingest_lag = sum(v for k, v in ingest_metrics.items() if k.startswith("recsys_ingest_consumer_lag"))
    model = info["model"]
    out: dict[str, Any] = _round(
        {
            "duration_s": args.duration,
            "rate_rps": args.rate,
            "warmup_s": args.warmup,
            "requests": int(measured.sum()),
            "errors": n_errors,
            "error_kinds": errors,
            "p50_ms": _pct(lat, 50),
            "p95_ms": _pct(lat, 95),
            "p99_ms": _pct(lat, 99),
            "p999_ms": _pct(lat, 99.9),
            "max_ms": float(lat.max()),
            "p99_ms_worst_minute": worst["p99_ms"],
            "worst_minute": worst["minute"],
            "over_sla_600ms": int((lat > srv.SLA_MS).sum()),
            "achieved_rps": len(shots.errors) / shots.wall_seconds if shots.wall_seconds else float("nan"),
            "client_lag_p99_ms": _pct(shots.lag_ms[measured], 99),
            "latency_from": "scheduled send time (open loop); requests due after the warm-up",
            "warmup_requests": int((~measured).sum()),
            "warmup_errors": int((~ok_all[~measured]).sum()),
            "rss_start_mb": svc_start,
            "rss_end_mb": svc_end,
            "rss_growth_pct": growth,
            "rss_measured": (
                f"sum of the platform's processes (API master + workers and their children, ingestion worker, online "
                f"metrics job); start = the sample at the end of the {args.warmup:g} s warm-up "
                f"(t={at[i_start]:.0f} s), end = the sample right after the last answer (t={at[-1]:.0f} s); "
                f"psutil RSS (VmRSS), a sample every {args.rss_interval:g} s"
            ),
            "rss_all_processes_start_mb": sum(start.rss_mb.values()),
            "rss_all_processes_end_mb": sum(end.rss_mb.values()),
            "per_minute": per_minute,
            "processes": processes,
            "rss_series": {"t_s": t_s, "platform_sum_mb": platform_mb, "mb": series},
            "events": {
                "topic": topic,
                "simulator_sessions_per_hour": sessions_per_hour,
                "history_lines_per_s": history_lines_per_s,
                "topic_lines_per_s_measured": topic_lines / measured_s,
                "simulator_lines_per_s_measured": (topic_lines - rec_lines_measured) / measured_s,
                "recommendation_lines": pool.lines,
                "recommendation_lines_not_delivered": pool.not_delivered,
                "ingestion": {"metrics_at_end": ingest_metrics, "lag_at_end": ingest_lag},
                "monitor": {"metrics_at_end": monitor_metrics},
            },
            "service_counters_incl_warmup": counters,
            "service_ready_seconds": ready_s,
            "users": args.users,
            "movies": args.movies,
            "watch_sessions": args.sessions,
            "known_users_with_history": info["known_users"],
            "unknown_share": args.unknown_share,
            "workers": args.workers,
            "redis": redis_info,
            "model": {
                "version": model["version"],
                "trees": model["trees"],
                "default_lambda": model["default_lambda"],
                "als_factors": model.get("factors"),
            },
            "setup_seconds": setup_seconds,
            "plot": srv._shown(plot_path),
            "full_scale": full_scale,
            "targets": TARGETS,
            "targets_met": met,
            "meets_targets": all(met.values()) and full_scale,
            "python": platform.python_version(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GB RAM",
        }
    )
    return out


def _report(r: dict[str, Any], args: argparse.Namespace) -> None:
    """Write the JSON (first: a printing slip must not lose a 15-minute run), then print the figures."""
    from ingestion.progress import atomic_write

    atomic_write(args.out, (json.dumps(r, indent=2, ensure_ascii=False) + "\n").encode())
    met = r["targets_met"]

    def verdict(name: str) -> str:
        return "met" if met[name] else "NOT met"

    ev = r["events"]
    landed = {k.split('kind="')[1].rstrip('"}'): int(v) for k, v in ev["ingestion"]["metrics_at_end"].items()
              if k.startswith("recsys_ingest_events_total{")}  # fmt: skip
    monitored = {k.split('topic="')[1].rstrip('"}'): int(v) for k, v in ev["monitor"]["metrics_at_end"].items()
                 if k.startswith("recsys_monitor_messages_total{")}  # fmt: skip
    mon_lag = sum(
        v for k, v in ev["monitor"]["metrics_at_end"].items() if k.startswith("recsys_monitor_consumer_lag")
    )
    lines = [
        f"world       : {r['users']:,} users x {r['movies']:,} movies; Redis {r['redis']['url']} (copy of "
        f"{r['redis']['source']}): {r['redis']['keys']:,} keys; model v{r['model']['version']} "
        f"({r['model']['trees']} trees); {r['workers']} workers",
        f"load        : {r['rate_rps']:g} req/s for {r['duration_s']:g} s after a {r['warmup_s']:g} s warm-up: "
        f"{r['requests']:,} requests, {r['errors']} errors"
        + (f" {r['error_kinds']}" if r["error_kinds"] else "")
        + f" (warm-up: {r['warmup_errors']} errors), achieved {r['achieved_rps']:.1f} req/s",
        f"latency     : p50 {r['p50_ms']:.2f} ms, p95 {r['p95_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, p99.9 "
        f"{r['p999_ms']:.1f} ms, max {r['max_ms']:.1f} ms (from the scheduled send; client lag p99 "
        f"{r['client_lag_p99_ms']:.2f} ms)",
        "per minute  : p99 "
        + ", ".join(f"{m['p99_ms']:.1f}" for m in r["per_minute"])
        + f" ms; worst {r['p99_ms_worst_minute']:.1f} ms (minute {r['worst_minute']})",
        f"events      : simulator {ev['simulator_lines_per_s_measured']:,.0f} lines/s ({ev['simulator_sessions_per_hour']:,.0f} "
        f"sessions/h; the history averages {ev['history_lines_per_s']:,.0f}) + {r['rate_rps']:g} recommendation "
        f"lines/s into {ev['topic']}; {ev['recommendation_lines_not_delivered']} not delivered",
        f"ingestion   : landed {landed}, lag {ev['ingestion']['lag_at_end']:,.0f} at the end; "
        f"{ev['ingestion'].get('exit_summary') or ''}",
        f"monitor     : consumed {monitored}, lag {mon_lag:,.0f} at the end; {ev['monitor'].get('exit_summary') or ''}",
        f"rss         : platform (API + ingestion + monitor) {r['rss_start_mb']:,.0f} MB after the warm-up -> "
        f"{r['rss_end_mb']:,.0f} MB at the end: {r['rss_growth_pct']:+.1f}%; all processes "
        f"{r['rss_all_processes_start_mb']:,.0f} -> {r['rss_all_processes_end_mb']:,.0f} MB",
    ]
    for label, p in r["processes"].items():
        a, b = p["rss_start_mb"], p["rss_end_mb"]
        cpu = p["cpu_percent_measured"]
        lines.append(
            f"  {label:<24}: {'-' if a is None else f'{a:,.0f}':>7} -> {'-' if b is None else f'{b:,.0f}':>7} MB"
            + (f" ({p['growth_pct']:+.1f}%)" if p["growth_pct"] is not None else "")
            + (f", CPU {cpu:.0f}%" if cpu is not None else "")
            + (f", run-queue wait {w:.1f} ms/s" if (w := p.get("runqueue_wait_ms_per_s")) is not None else "")
            + ("" if p["in_platform_sum"] else " [not in the platform sum]")
        )
    scale_note = "" if r["full_scale"] else " (smoke configuration: the targets apply to the full-scale run)"
    lines += [
        f"targets     : errors == 0 {verdict('errors')}; p99 <= {TARGETS['p99_ms_worst_minute']:g} ms in every "
        f"minute {verdict('p99_ms_worst_minute')} (worst {r['p99_ms_worst_minute']:.1f} ms); RSS growth <= "
        f"{TARGETS['rss_growth_pct']:g}% {verdict('rss_growth_pct')} ({r['rss_growth_pct']:+.1f}%){scale_note}",
        f"plot        : {r['plot']}",
    ]
    for line in lines:
        print(line, flush=True)
    print(f"wrote {srv._shown(args.out)}", flush=True)


if __name__ == "__main__":
    main()
