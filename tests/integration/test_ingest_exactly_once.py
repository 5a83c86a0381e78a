"""Ingestion against the real broker: every line accounted for, and kill -9 mid-run changes nothing."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from events import DLQ, format_line
from events.kafka import ensure_topics, make_consumer, make_producer
from events.types import AccountEvent, RateEvent, RecommendationEvent, WatchEvent
from ingestion.layout import RAW_KINDS
from ingestion.settings import IngestSettings
from ingestion.worker import IngestWorker
from tests.integration.conftest import StackInfo

pytestmark = pytest.mark.integration

BAD = [
    "2026-11-25T17:04:05,42,GET /rate/x+2000=11",
    "garbage",
    "2026-11-25T17:04:05,-1,GET /create_account",
    "",
]


def make_lines(n: int, seed: int = 3) -> tuple[list[str], int]:
    """n lines: mostly watch minutes in sessions, ratings, accounts, requests; some malformed and duplicated."""
    rng = random.Random(seed)
    t = 1_795_600_000 * 10**9
    lines: list[str] = []
    bad = 0
    while len(lines) < n:
        user = rng.randrange(300)
        movie = f"movie+{rng.randrange(80)}+{1990 + rng.randrange(30)}"
        r = rng.random()
        if r < 0.02:
            lines.append(rng.choice(BAD))
            bad += 1
        elif r < 0.05:
            lines.append(format_line(AccountEvent(t, user)))
        elif r < 0.10:
            lines.append(format_line(RateEvent(t, user, movie, rng.randint(1, 5))))
        elif r < 0.13:
            lines.append(format_line(RecommendationEvent(t, user, "recsys:8082", 200, (movie, "b+2000"), 12)))
        else:
            for minute in range(rng.randint(1, 30)):
                lines.append(format_line(WatchEvent(t + minute * 60 * 10**9, user, movie, minute)))
                if rng.random() < 0.02:
                    lines.append(lines[-1])  # a duplicated line
        t += rng.randrange(1, 20) * 10**9
    return lines[:n], sum(1 for x in lines[:n] if x in BAD)


def produce(topic: str, lines: list[str]) -> None:
    producer = make_producer()
    for i, line in enumerate(lines):
        user = line.split(",", 2)[1] if line.count(",") >= 2 else str(i)
        producer.produce(topic, line.encode(), key=user.encode())
        if i % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0


def latest_feature_rows(var: Path, view: str) -> dict[str, tuple[object, ...]]:
    """Each user's last feature row in landing order (files are named by partition and offset)."""
    out: dict[str, tuple[object, ...]] = {}
    files = sorted((var / "offline" / "features" / view).glob("*-p*-*.parquet"), key=lambda p: p.name)
    for f in files:
        for r in pq.read_table(f).drop(["created"]).to_pylist():
            out[str(r["user_id"])] = tuple(str(v) for v in r.values())
    return out


def offline_rows(var: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every raw and feature table's rows, sorted, for comparing two runs."""
    out: dict[str, list[tuple[object, ...]]] = {}
    root = var / "offline"
    for base in ("raw", "features", "sessions"):
        for d in sorted((root / base).glob("*")) if (root / base).exists() else []:
            files = sorted(d.rglob("*.parquet"))
            if not files:
                continue
            table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="permissive")
            if "created" in table.column_names:
                table = table.drop(["created"])  # wall-clock write time differs between runs by design
            rows = [tuple(str(v) for v in r.values()) for r in table.to_pylist()]
            out[f"{base}/{d.name}"] = sorted(rows)
    return out


def settings_for(var: Path, topic: str, batch: int = 2_000) -> IngestSettings:
    return IngestSettings(
        RECSYS_VAR_DIR=var,
        topic=topic,
        group_id=f"ingest-{uuid.uuid4().hex[:8]}",
        batch_max_messages=batch,
        batch_max_seconds=0.5,
        metrics_port=0,
    )  # type: ignore[call-arg]


def test_every_line_is_landed_or_dead_lettered(stack: StackInfo, tmp_path: Path) -> None:
    topic = f"movielog-test-{uuid.uuid4().hex[:8]}"
    ensure_topics({topic: 2})
    lines, bad = make_lines(6_000)
    produce(topic, lines)
    from prometheus_client import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    watch_before, dlq_before = (
        sample("recsys_ingest_events_total", kind="watch"),
        sum(
            sample("recsys_ingest_dlq_total", reason=r)
            for r in ("bad_rating", "missing_fields", "bad_user_id", "empty")
        ),
    )
    worker = IngestWorker(settings_for(tmp_path, topic))
    stats = worker.run(idle_exit_s=3, max_seconds=120)
    # The Prometheus metrics count the same figures.
    assert sample("recsys_ingest_events_total", kind="watch") - watch_before == stats.by_kind["watch"]
    dlq_after = sum(
        sample("recsys_ingest_dlq_total", reason=r)
        for r in ("bad_rating", "missing_fields", "bad_user_id", "empty")
    )
    assert dlq_after - dlq_before == bad
    assert sample("recsys_ingest_batch_write_seconds_count") >= stats.batches
    assert stats.messages == len(lines)
    assert stats.dlq == bad and stats.landed == len(lines) - bad

    landed = 0
    for kind in RAW_KINDS:
        if kind in ("dlq", "play"):
            continue
        files = list((tmp_path / "offline" / "raw" / kind).rglob("*.parquet"))
        landed += sum(pq.read_metadata(f).num_rows for f in files)
    dlq_rows = sum(
        pq.read_metadata(f).num_rows for f in (tmp_path / "offline" / "raw" / "dlq").rglob("*.parquet")
    )
    assert landed + dlq_rows == len(lines)
    assert dlq_rows == bad

    # The DLQ topic got each bad line with its reason and origin.
    consumer = make_consumer(f"dlq-check-{uuid.uuid4().hex[:6]}")
    consumer.subscribe([DLQ])
    mine = []
    deadline = time.monotonic() + 30
    while len(mine) < bad and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is None or m.error():
            continue
        headers = {k: v for k, v in (m.headers() or [])}
        if headers.get("source_topic") == topic.encode():
            mine.append(headers)
    consumer.close()
    assert len(mine) == bad
    assert all(h["reason"] and h["source_offset"].isdigit() for h in mine)


def _run_worker(var: Path, topic: str, group: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RECSYS_VAR_DIR": str(var),
        "RECSYS_INGEST_TOPIC": topic,
        "RECSYS_INGEST_GROUP_ID": group,
        "RECSYS_INGEST_BATCH_MAX_MESSAGES": "400",
        "RECSYS_INGEST_BATCH_MAX_SECONDS": "0.2",
        "RECSYS_INGEST_METRICS_PORT": "0",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "recsys.cli", "ingest", "--no-online", "--no-enrich", "--idle-exit", "4"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_kill_9_mid_batch_then_restart_gives_identical_tables(stack: StackInfo, tmp_path: Path) -> None:
    topic = f"movielog-test-{uuid.uuid4().hex[:8]}"
    ensure_topics({topic: 2})
    lines, _ = make_lines(30_000, seed=11)
    produce(topic, lines)

    clean = tmp_path / "clean"
    IngestWorker(settings_for(clean, topic, batch=400)).run(idle_exit_s=3, max_seconds=300)

    crashed = tmp_path / "crashed"
    group = f"ingest-{uuid.uuid4().hex[:8]}"
    kills = 0
    for delay in (2.5, 1.5):
        proc = _run_worker(crashed, topic, group)
        progress_dir = crashed / "offline" / "_progress"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(progress_dir.glob("*.json")):
            time.sleep(0.05)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(30)
    assert kills >= 1, "the worker finished before it could be killed: make the input bigger"
    proc = _run_worker(crashed, topic, group)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out.decode()[-3000:]

    a, b = offline_rows(clean), offline_rows(crashed)
    assert sorted(a) == sorted(b)
    for name in a:
        if name.startswith("raw/") or name.startswith("sessions/"):
            assert a[name] == b[name], f"{name} differs after kill -9 and restart"
            continue
        # Feature tables hold one row per touched user per landed batch, so their granularity
        # follows batch boundaries, which a restart moves. What must hold: no event counted
        # twice or missed, i.e. every user's final feature values agree.
        view = name.removeprefix("features/")
        if view.startswith("user_"):
            latest_a, latest_b = latest_feature_rows(clean, view), latest_feature_rows(crashed, view)
            assert latest_a == latest_b, f"{name}: final feature values differ after restart"


def test_until_drained_stops_once_every_partition_is_landed(stack: StackInfo, tmp_path: Path) -> None:
    """`recsys ingest --until-drained`: no idle wait, no time limit; it ends when lag is 0 everywhere."""
    import threading

    topic = f"movielog-test-{uuid.uuid4().hex[:8]}"
    ensure_topics({topic: 2})
    lines, bad = make_lines(3_000, seed=5)
    produce(topic, lines)
    worker = IngestWorker(settings_for(tmp_path, topic, batch=500))
    result: list[object] = []
    runner = threading.Thread(target=lambda: result.append(worker.run(until_drained=True)), daemon=True)
    runner.start()
    runner.join(120)
    if runner.is_alive():
        worker.stop()
        runner.join(30)
        raise AssertionError("the worker did not stop on its own once drained")
    assert worker.stats.messages == len(lines) and worker.stats.dlq == bad
