"""Hostile lines against the real broker: a 1 MB line, a clock from the future, a crash between DLQ copy and commit."""

from __future__ import annotations

import hashlib
import time
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from events import DLQ, format_line
from events.kafka import ensure_topics, make_consumer, make_producer
from events.types import RateEvent, WatchEvent
from ingestion.progress import Progress
from ingestion.settings import IngestSettings
from ingestion.worker import IngestWorker
from tests.integration.conftest import StackInfo

pytestmark = pytest.mark.integration
MIN_NS = 60 * 10**9


def _settings(var: Path, topic: str, group: str | None = None) -> IngestSettings:
    return IngestSettings(
        RECSYS_VAR_DIR=var, topic=topic, group_id=group or f"g-{uuid.uuid4().hex[:6]}",
        batch_max_seconds=0.3, metrics_port=0, movie_job=False,
    )  # type: ignore[call-arg]  # fmt: skip


def _produce(topic: str, lines: list[bytes], big: bool = False) -> None:
    producer = make_producer(extra={"message.max.bytes": 2_000_000} if big else None)
    for line in lines:
        user = line.split(b",", 2)[1]
        producer.produce(topic, line, key=user)
    assert producer.flush(30) == 0


def _dead_letters(topic: str, expect: int, timeout_s: float = 30) -> list[tuple[bytes, dict[str, bytes]]]:
    """The DLQ copies of lines from `topic` (waits until `expect` arrived, then a little longer for extras)."""
    consumer = make_consumer(f"dlq-check-{uuid.uuid4().hex[:6]}")
    consumer.subscribe([DLQ])
    mine: list[tuple[bytes, dict[str, bytes]]] = []
    deadline = time.monotonic() + timeout_s
    quiet_until = None
    while time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if len(mine) >= expect and quiet_until is None:
            quiet_until = time.monotonic() + 3  # duplicates would arrive right behind
        if quiet_until is not None and time.monotonic() > quiet_until:
            break
        if m is None or m.error():
            continue
        headers = dict(m.headers() or [])
        if headers.get("source_topic") == topic.encode():
            mine.append((m.value() or b"", headers))
    consumer.close()
    return mine


def _now_ns() -> int:
    return time.time_ns() // 10**9 * 10**9


def test_a_megabyte_line_goes_to_the_dlq_truncated_and_lines_behind_it_land(
    stack: StackInfo, tmp_path: Path
) -> None:
    topic = f"movielog-test-{uuid.uuid4().hex[:8]}"
    ensure_topics({topic: 1})
    t = _now_ns() - 3600 * 10**9
    huge = f"{format_line(WatchEvent(t, 42, 'x+2000', 1))[: -len('x+2000/1.mpg')]}{'c' * 999_900}+2000/1.mpg".encode()
    good = [format_line(WatchEvent(t + i * MIN_NS, 7, "the+green+mile+1999", i)).encode() for i in range(50)]
    _produce(topic, [good[0], huge, *good[1:]], big=True)

    stats = IngestWorker(_settings(tmp_path, topic)).run(idle_exit_s=3, max_seconds=90)
    assert stats.dlq == 1 and stats.landed == 50, stats

    (payload, headers), *rest = _dead_letters(topic, 1)
    assert not rest
    assert headers["reason"] == b"too_long"
    assert int(headers["original_length"]) == len(huge)
    assert headers["sha256"] == hashlib.sha256(huge).hexdigest().encode()
    assert headers["truncated"] == b"1" and len(payload) == 16_384 and huge.startswith(payload)
    # The offline DLQ table named in the header keeps every byte.
    table = pq.read_table(tmp_path / "offline" / headers["offline_file"].decode())
    assert table.column("raw").to_pylist() == [huge]


def test_a_line_from_the_future_is_refused_and_the_user_keeps_moving(
    stack: StackInfo, tmp_path: Path
) -> None:
    """The reported sequence: minutes watched, one line dated 2100-01-01, then real events for the user."""
    topic = f"movielog-test-{uuid.uuid4().hex[:8]}"
    ensure_topics({topic: 1})
    t = _now_ns() - 2 * 3600 * 10**9
    user, movie, other = 5, "the+green+mile+1999", "spider-man+3+2007"
    first = [format_line(WatchEvent(t + i * MIN_NS, user, movie, i)).encode() for i in range(30)]
    future = format_line(RateEvent(4_102_444_800 * 10**9, user, movie, 5)).encode()  # 2100-01-01
    later = [format_line(WatchEvent(t + (60 + i) * MIN_NS, user, other, i)).encode() for i in range(20)]
    late = format_line(WatchEvent(t + 45 * MIN_NS, user, "late+film+2001", 0)).encode()  # behind the newest
    var = tmp_path / "var"
    _produce(topic, [*first, future])
    worker = IngestWorker(_settings(var, topic))
    worker.run(idle_exit_s=2, max_seconds=60)
    _produce(topic, [*later, late])
    stats = worker.run(idle_exit_s=2, max_seconds=60)
    assert stats.dlq == 1 and stats.landed == 30 + 20 + 1, stats  # counts of both runs

    (_, headers), *rest = _dead_letters(topic, 1)
    assert headers["reason"] == b"future_timestamp" and not rest
    rows = pq.read_table(var / "offline" / "features" / "user_watch_stats").to_pylist()
    last = max((r for r in rows if r["user_id"] == user), key=lambda r: r["event_timestamp"])
    assert last["event_timestamp"].year < 2100
    # Every real minute counts in the windows (30 + 20 + the late one), the later movies included.
    assert last["watch_minutes_1d"] == 51
    assert {other, "late+film+2001"} <= set(last["recent_movie_ids"])


def test_a_crash_between_dlq_copy_and_commit_copies_each_bad_line_once(
    stack: StackInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = f"movielog-test-{uuid.uuid4().hex[:8]}"
    ensure_topics({topic: 1})
    t = _now_ns() - 3600 * 10**9
    lines = [format_line(WatchEvent(t + i * MIN_NS, 9, "m+2000", i)).encode() for i in range(40)]
    lines[10:10] = [f"{t},9,GET /rate/m+2000=99".encode(), b"garbage,9,x"]
    _produce(topic, lines)
    group = f"g-{uuid.uuid4().hex[:6]}"

    real_advance = Progress.advance

    def crash(self: Progress, *args: object) -> None:
        raise KeyboardInterrupt("killed after the DLQ flush, before the commit point")

    monkeypatch.setattr(Progress, "advance", crash)
    with pytest.raises(KeyboardInterrupt):
        IngestWorker(_settings(tmp_path, topic, group)).run(idle_exit_s=3, max_seconds=60)
    monkeypatch.setattr(Progress, "advance", real_advance)
    assert len(_dead_letters(topic, 2)) == 2  # the crashed run sent its copies

    stats = IngestWorker(_settings(tmp_path, topic, group)).run(idle_exit_s=3, max_seconds=60)
    assert stats.dlq == 2 and stats.landed == 40
    copies = _dead_letters(topic, 2)
    offsets = sorted(int(h["source_offset"]) for _, h in copies)
    assert offsets == [10, 11], f"each bad line once on the DLQ, got offsets {offsets}"


def test_a_restart_does_not_profile_users_again(
    stack: StackInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`user_profile` gained rows after kill -9 drills: the restarted worker forgot whom it had profiled."""
    from events.metadata import UserMeta

    topic = f"movielog-test-{uuid.uuid4().hex[:8]}"
    ensure_topics({topic: 1})
    t = _now_ns() - 10 * 3600 * 10**9
    lines = [format_line(WatchEvent(t + i * MIN_NS, i % 20, "m+2000", i)).encode() for i in range(400)]
    _produce(topic, lines)

    def users(ids: list[int]) -> dict[int, UserMeta]:
        return {u: UserMeta(user_id=u, age=30 + u) for u in ids}

    settings = _settings(tmp_path, topic).model_copy(update={"batch_max_messages": 50})
    calls = {"n": 0}
    real_advance = Progress.advance

    def crash_on_third(self: Progress, *args: object) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        real_advance(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Progress, "advance", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        IngestWorker(settings, users=users).run(idle_exit_s=3, max_seconds=60)
    monkeypatch.setattr(Progress, "advance", real_advance)
    stats = IngestWorker(settings, users=users).run(idle_exit_s=3, max_seconds=60)
    assert stats.dlq == 0 and stats.landed == 300

    profiled = pq.read_table(tmp_path / "offline" / "features" / "user_profile").column("user_id").to_pylist()
    assert sorted(profiled) == list(range(20)), "each user profiled once, across the restart"


def test_recsys_replay_refuses_the_megabyte_line_and_sends_the_rest_to_a_new_topic(
    stack: StackInfo, tmp_path: Path
) -> None:
    import subprocess
    import sys

    topic = f"movielog-test-{uuid.uuid4().hex[:8]}"  # not created beforehand: replay creates it
    good = format_line(WatchEvent(_now_ns() - 3600 * 10**9, 7, "ok+2000", 1))
    path = tmp_path / "movielog.log"
    path.write_text(f"2026-12-05T10:00:00,42,GET /data/m/{'c' * 999_900}+2000/1.mpg\n{good}\n")
    done = subprocess.run([sys.executable, "-m", "recsys.cli", "replay", str(path), "--topic", topic],
                          check=False, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused line 1" in done.stderr and "1 refused as too long, 0 failed" in done.stdout
    consumer = make_consumer(f"check-{uuid.uuid4().hex[:6]}")
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    while not got and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value() or b"")
    consumer.close()
    assert got == [good.encode()]
