"""Shared tools of the ingestion fault tests: worker processes, per-table digests and per-offset accounting.

The line generators and row readers of `tests/integration/test_ingest_exactly_once.py` are
reused as they are (imported, not copied), so both suites judge the offline store the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import OFFSET_END, TopicPartition

from events import DLQ
from events.kafka import make_admin, make_consumer
from ingestion.layout import RAW_KINDS
from tests.integration.test_ingest_exactly_once import latest_feature_rows, offline_rows

LANDED_KINDS = tuple(k for k in RAW_KINDS if k != "play")
"""Raw tables with one row per consumed line (`play` is derived: one row per watch session start)."""


@dataclass(frozen=True)
class TableDigest:
    """What must match between two runs for one offline table: its row count and a hash of its content."""

    rows: int
    sha256: str


def _digest(rows: list[tuple[object, ...]]) -> TableDigest:
    h = hashlib.sha256()
    for row in sorted(rows, key=repr):
        h.update(repr(row).encode())
        h.update(b"\n")
    return TableDigest(len(rows), h.hexdigest())


def _last_refresh_rows(view_dir: Path) -> list[tuple[object, ...]]:
    """Rows of a movie view's newest refresh file: each refresh recomputes every movie from the raw tables."""
    files = sorted(view_dir.glob("refresh-*.parquet"))
    if not files:
        return []
    table = pq.read_table(files[-1])
    if "created" in table.column_names:
        table = table.drop(["created"])  # wall-clock write time differs between runs by design
    return [tuple(str(v) for v in r.values()) for r in table.to_pylist()]


def table_digests(var: Path) -> dict[str, TableDigest]:
    """Digest of every offline table under `var/offline`, in the form two runs of the same input must agree on.

    Raw and session tables: every row. User feature views hold one row per touched user per
    landed batch, so their granularity follows batch boundaries (which a crash moves): what must
    agree is each user's final row. Movie views: the newest refresh, which recomputes every
    movie from the raw tables.
    """
    out = {
        name: _digest(rows) for name, rows in offline_rows(var).items() if not name.startswith("features/")
    }
    features = var / "offline" / "features"
    for view_dir in sorted(features.glob("*")) if features.exists() else []:
        view = view_dir.name
        if any(view_dir.glob("refresh-*.parquet")):
            out[f"features/{view}"] = _digest(_last_refresh_rows(view_dir))
        elif view.startswith("user_"):
            out[f"features/{view}"] = _digest(
                [(u, *row) for u, row in latest_feature_rows(var, view).items()]
            )
    return out


def differing_tables(clean: dict[str, TableDigest], other: dict[str, TableDigest]) -> dict[str, str]:
    """Tables whose digests differ, each with both sides, for assertion messages (empty: identical)."""
    return {
        name: f"clean {clean.get(name)} vs {other.get(name)}"
        for name in sorted(set(clean) | set(other))
        if clean.get(name) != other.get(name)
    }


def landed_offsets(var: Path, topic: str) -> Counter[tuple[int, int]]:
    """How often each (partition, offset) of `topic` appears across the raw tables, the DLQ table included."""
    seen: Counter[tuple[int, int]] = Counter()
    for kind in LANDED_KINDS:
        for f in (var / "offline" / "raw" / kind).rglob(f"{topic}-p*.parquet"):
            t = pq.read_table(f, columns=["kafka_partition", "kafka_offset"])
            seen.update(zip(t.column(0).to_pylist(), t.column(1).to_pylist(), strict=True))
    return seen


def raw_rows_by_offset(var: Path, topic: str) -> dict[tuple[int, int], tuple[str, dict[str, object]]]:
    """Each landed (partition, offset) of `topic` -> (raw kind, its row with `ts` in ns); duplicates are checked elsewhere."""
    out: dict[tuple[int, int], tuple[str, dict[str, object]]] = {}
    for kind in LANDED_KINDS:
        files = sorted((var / "offline" / "raw" / kind).rglob(f"{topic}-p*.parquet"))
        if not files:
            continue
        table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="permissive")
        # Event times as integer nanoseconds, comparable with a parsed event's `ts_ns`.
        table = table.set_column(
            table.schema.get_field_index("ts"), "ts", table.column("ts").cast(pa.int64())
        )
        for row in table.to_pylist():
            out[(int(row["kafka_partition"]), int(row["kafka_offset"]))] = (kind, row)
    return out


def worker_process(
    var: Path,
    topic: str,
    group: str,
    *,
    idle_exit_s: float = 4.0,
    batch: int = 400,
    movie_job: bool = True,
) -> subprocess.Popen[bytes]:
    """`recsys ingest` as its own process (so it can be SIGKILLed), offline only.

    Its output goes to `var/../worker-<n>.log` (a file, not a pipe nobody drains, which would
    block a chatty worker); `worker_logs` reads them back for assertion messages.
    """
    env = {
        **os.environ,
        "RECSYS_VAR_DIR": str(var),
        "RECSYS_INGEST_TOPIC": topic,
        "RECSYS_INGEST_GROUP_ID": group,
        "RECSYS_INGEST_BATCH_MAX_MESSAGES": str(batch),
        "RECSYS_INGEST_BATCH_MAX_SECONDS": "0.2",
        "RECSYS_INGEST_METRICS_PORT": "0",
        "RECSYS_INGEST_MOVIE_JOB": "true" if movie_job else "false",
    }
    argv = [sys.executable, "-m", "recsys.cli", "ingest", "--no-online", "--no-enrich"]
    var.parent.mkdir(parents=True, exist_ok=True)
    log = var.parent / f"worker-{len(list(var.parent.glob('worker-*.log')))}.log"
    with log.open("ab") as out:
        return subprocess.Popen(
            [*argv, "--idle-exit", str(idle_exit_s)], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def worker_logs(var: Path, chars: int = 3000) -> str:
    """The tails of the worker logs `worker_process` wrote next to `var`."""
    return "\n".join(
        f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}"
        for log in sorted(var.parent.glob("worker-*.log"))
    )


def next_offsets(var: Path, topic: str) -> dict[int, int]:
    """Per partition, the progress marker's next offset to land (partitions never landed are absent)."""
    out: dict[int, int] = {}
    for marker in (var / "offline" / "_progress").glob(f"{topic}-p*.json"):
        try:
            out[int(marker.stem.rpartition("-p")[2])] = int(json.loads(marker.read_text())["next_offset"])
        except (ValueError, KeyError, FileNotFoundError):
            continue  # being replaced right now: read it on the next poll
    return out


def wait_for_landing(var: Path, topic: str, at_least: int, timeout_s: float = 60.0) -> None:
    """Block until the progress markers of `topic` together passed `at_least` offsets."""
    deadline = time.monotonic() + timeout_s
    while sum(next_offsets(var, topic).values()) < at_least:
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {at_least} lines landed within {timeout_s:g} s")
        time.sleep(0.02)


def dlq_copies(topic: str, since_ms: int, timeout_s: float = 30.0) -> list[tuple[int, int, str]]:
    """(source partition, source offset, reason) of every copy on `movielog.dlq` of a line of `topic`.

    Reads the DLQ from `since_ms` (a time before the test produced anything) to its end as it is
    now, so copies of other tests' topics before that are skipped without being read.
    """
    consumer = make_consumer(f"dlq-faults-{time.monotonic_ns()}")
    try:
        parts = list(consumer.list_topics(DLQ, timeout=10).topics[DLQ].partitions)
        starts = consumer.offsets_for_times([TopicPartition(DLQ, p, since_ms) for p in parts], timeout=10)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(DLQ, p), timeout=10)[1] for p in parts}
        todo = [tp for tp in starts if tp.offset != OFFSET_END and 0 <= tp.offset < ends[tp.partition]]
        out: list[tuple[int, int, str]] = []
        if not todo:
            return out
        consumer.assign(todo)
        pending = {tp.partition for tp in todo}
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise AssertionError(f"the DLQ was not read to its end within {timeout_s:g} s")
            for m in consumer.consume(1000, 0.5):
                if m.error() is not None:
                    continue
                h = dict(m.headers() or [])
                if h.get("source_topic") == topic.encode():
                    raw = h.get("reason") or b""
                    reason = raw.decode() if isinstance(raw, bytes) else raw
                    out.append((int(h["source_partition"] or -1), int(h["source_offset"] or -1), reason))
                if (m.offset() or 0) + 1 >= ends[m.partition() or 0]:
                    pending.discard(m.partition() or 0)
        return out
    finally:
        consumer.close()


def group_members(group: str) -> list[int]:
    """Partitions held by each member of a consumer group right now (empty list: no stable group)."""
    # The admin client must outlive the future: a collected client never completes it (result() hangs).
    admin = make_admin()
    description = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=20)
    if str(description.state).rsplit(".", 1)[-1].upper() != "STABLE":
        return []
    return [len(m.assignment.topic_partitions) for m in description.members]
