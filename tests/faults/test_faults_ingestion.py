"""Ingestion workers SIGKILLed: five times in a row at seeded random points, and one of a group of 2 or 4.

Judged by counting against a clean single-worker run of the same topic: every line
lands once (raw tables + the offline DLQ, per partition and offset), every bad line is on
`movielog.dlq` once, and every offline table has the clean run's row count and content hash.
"""

from __future__ import annotations

import random
import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition

from events import ParseError, parse_line
from events.kafka import ensure_topics, make_consumer, make_producer
from ingestion.worker import IngestWorker
from tests.faults.ingest_support import (
    differing_tables,
    dlq_copies,
    group_members,
    landed_offsets,
    next_offsets,
    raw_rows_by_offset,
    table_digests,
    wait_for_landing,
    worker_logs,
    worker_process,
)
from tests.integration.conftest import StackInfo, wait_until
from tests.integration.test_ingest_exactly_once import make_lines, produce, settings_for

pytestmark = pytest.mark.integration
PARTITIONS = 4
"""Enough partitions for four workers of one group to hold one each."""


def _clean_run(var: Path, topic: str) -> None:
    """One in-process worker lands the whole topic until every partition is drained; its movie job runs on exit."""
    IngestWorker(settings_for(var, topic, batch=400)).run(until_drained=True, max_seconds=180)


def _refresh_movies(var: Path, topic: str) -> None:
    """Sessions and movie views from the landed raw tables, as the movie job of a worker does on exit."""
    IngestWorker(settings_for(var, topic)).refresh_movies()


def _assert_topic_holds(topic: str, lines: int) -> None:
    """Fail unless the topic holds exactly `lines` messages (the counting below relies on it)."""
    consumer = make_consumer(f"hw-{uuid.uuid4().hex[:6]}")
    try:
        total = sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)
        )
    finally:
        consumer.close()
    assert total == lines, f"{topic} holds {total} messages, {lines} were produced"


def _bad_offsets(topic: str, lines: list[str], var: Path) -> set[tuple[int, int]]:
    """(partition, offset) of every line the codec refuses, found through the offline store's own rows."""
    bad = {key for key, (kind, _) in raw_rows_by_offset(var, topic).items() if kind == "dlq"}
    refused = sum(isinstance(parse_line(line), ParseError) for line in lines)
    assert len(bad) == refused, f"{len(bad)} DLQ rows for {refused} lines the codec refuses"
    return bad


def _assert_each_line_once(var: Path, topic: str, lines: list[str], since_ms: int) -> None:
    landed = landed_offsets(var, topic)
    twice = {k: n for k, n in landed.items() if n > 1}
    assert not twice, f"{len(twice)} lines landed more than once, e.g. {sorted(twice)[:5]}"
    assert len(landed) == len(lines), f"{len(lines)} lines in, {len(landed)} rows out (raw + DLQ)"
    bad = _bad_offsets(topic, lines, var)
    copies = Counter((p, o) for p, o, _ in dlq_copies(topic, since_ms))
    assert set(copies) == bad, f"DLQ topic copies {len(copies)} vs {len(bad)} bad lines"
    assert max(copies.values(), default=1) == 1, "a bad line was copied to the DLQ topic twice"


def test_five_sigkills_at_seeded_random_points_leave_every_offline_table_as_a_clean_run(
    stack: StackInfo, tmp_path: Path
) -> None:
    since_ms = int(time.time() * 1000) - 1000
    topic = f"faults-kill5-{uuid.uuid4().hex[:8]}"
    ensure_topics({topic: PARTITIONS})
    lines, _ = make_lines(24_000, seed=15)
    produce(topic, lines)
    _assert_topic_holds(topic, len(lines))

    clean = tmp_path / "clean"
    _clean_run(clean, topic)

    rng = random.Random(15)
    # Kill points: five landed-offset totals spread over the stream, each followed by a random
    # pause of up to a batch's time, so the SIGKILL falls anywhere in a batch's write sequence.
    targets = sorted(rng.sample(range(len(lines) // 20, len(lines) * 9 // 10), 5))
    crashed = tmp_path / "crashed"
    group = f"ingest-{uuid.uuid4().hex[:8]}"
    for k, target in enumerate(targets):
        proc = worker_process(crashed, topic, group, idle_exit_s=3)
        try:
            # At least one batch of its own lands first, so no kill falls in start-up only.
            landed = sum(next_offsets(crashed, topic).values())
            wait_for_landing(crashed, topic, max(target, landed + 1), timeout_s=90)
            time.sleep(rng.uniform(0.0, 0.15))
            assert proc.poll() is None, f"kill {k + 1}: the worker ended before it could be killed"
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(30)
        assert proc.returncode == -signal.SIGKILL
    final = worker_process(crashed, topic, group, idle_exit_s=3)
    assert final.wait(180) == 0, worker_logs(crashed)
    assert sum(next_offsets(crashed, topic).values()) == len(lines)

    _assert_each_line_once(crashed, topic, lines, since_ms)
    diff = differing_tables(table_digests(clean), table_digests(crashed))
    assert not diff, f"offline tables differ from the clean run after 5 SIGKILLs: {diff}"


def _produce_paced(topic: str, lines: list[str], seconds: float, done: threading.Event) -> None:
    """Produce `lines` evenly over about `seconds`, so workers are landing while one of them is killed."""
    producer = make_producer()
    chunk = 200
    pause = seconds / max(1, len(lines) // chunk)
    for start in range(0, len(lines), chunk):
        for line in lines[start : start + chunk]:
            producer.produce(topic, line.encode(), key=line.split(",", 2)[1].encode() if "," in line else b"")
        producer.poll(0)
        time.sleep(pause)
    assert producer.flush(60) == 0
    done.set()


@pytest.mark.parametrize("workers", [2, 4])
def test_a_worker_sigkilled_in_a_group_hands_its_partitions_over_and_nothing_is_lost_or_doubled(
    stack: StackInfo, tmp_path: Path, workers: int
) -> None:
    since_ms = int(time.time() * 1000) - 1000
    topic = f"faults-group{workers}-{uuid.uuid4().hex[:8]}"
    ensure_topics({topic: PARTITIONS})
    lines, _ = make_lines(16_000, seed=20 + workers)
    var = tmp_path / "group"
    group = f"ingest-{uuid.uuid4().hex[:8]}"
    rng = random.Random(workers)
    # The movie job is left to one call after the run: several workers of a group share one store.
    procs = [worker_process(var, topic, group, idle_exit_s=600, movie_job=False) for _ in range(workers)]
    try:
        wait_until(lambda: sorted(group_members(group)) == [PARTITIONS // workers] * workers or None,
                   60, f"a stable group of {workers} workers holding {PARTITIONS // workers} partitions each")  # fmt: skip
        produced = threading.Event()
        producer = threading.Thread(target=_produce_paced, args=(topic, lines, 6.0, produced), daemon=True)
        producer.start()
        victim = rng.randrange(workers)
        wait_for_landing(var, topic, rng.randrange(len(lines) // 4, len(lines) // 2), timeout_s=60)
        assert procs[victim].poll() is None, "the victim ended before it was killed"
        procs[victim].send_signal(signal.SIGKILL)
        procs[victim].wait(30)
        producer.join(90)
        assert produced.is_set(), "the producer did not deliver every line"
        # The survivors take the victim's partitions once its session times out, then catch up.
        wait_until(lambda: sum(next_offsets(var, topic).values()) == len(lines),
                   90, "every partition landed up to its end by the surviving workers")  # fmt: skip
        assert len(group_members(group)) == workers - 1, "the group still counts the killed worker"
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)  # the CLI's clean stop: finish the batch, snapshot, close
        for p in procs:
            p.wait(60)
    survivors = [p.returncode for i, p in enumerate(procs) if i != victim]
    assert survivors == [0] * (workers - 1), worker_logs(var)
    _refresh_movies(var, topic)

    _assert_topic_holds(topic, len(lines))
    clean = tmp_path / "clean"
    _clean_run(clean, topic)
    _assert_each_line_once(var, topic, lines, since_ms)
    diff = differing_tables(table_digests(clean), table_digests(var))
    assert not diff, f"offline tables differ from a single clean worker after a SIGKILL in a group: {diff}"
