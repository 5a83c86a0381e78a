"""`ingestion.replay.replay_file` with a stand-in producer: plain and gzip files, keys, lines kept as-is."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from ingestion.replay import replay_file

LINES = [
    b"2026-01-01T00:00:00,17,GET /data/m/the+green+mile+1999/0.mpg",
    b"2026-01-01T00:00:01,42,GET /rate/spider-man+3+2007=4",
    b"",
    b"garbage that the DLQ will get",
    b"2026-01-01T00:00:02,user42,GET /create_account",
    b"2026-01-01T00:00:03.123456,9,recommendation request x:8082, status 0, result: Connection refused: a/b:8082, 3 ms",
]


class FakeProducer:
    """Records produce calls; fails the first call with BufferError to exercise the retry."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []
        self.full_once = True

    def produce(self, topic: str, value: bytes, key: bytes | None = None, on_delivery: Any = None) -> None:
        if self.full_once:
            self.full_once = False
            raise BufferError("queue full")
        self.sent.append((topic, value, key))

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = 0) -> int:
        return 0


@pytest.mark.parametrize("suffix", [".log", ".log.gz"])
def test_replay_produces_every_line_as_is_keyed_by_user(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"movielog{suffix}"
    data = b"\r\n".join(LINES) + b"\n"
    path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    producer = FakeProducer()
    stats = replay_file(path, "t", producer=producer, progress=False)  # type: ignore[arg-type]
    assert [v for _, v, _ in producer.sent] == [line for line in LINES if line]
    assert [k for _, _, k in producer.sent] == [b"17", b"42", None, None, b"9"]
    assert {t for t, _, _ in producer.sent} == {"t"}
    assert stats.lines == 5 and stats.blank == 1 and stats.failed == 0
    assert stats.bytes == sum(len(line) for line in LINES) and stats.lines_per_s > 0


def test_replay_refuses_lines_over_the_maximum_and_says_which(tmp_path: Path) -> None:
    huge = b"2026-01-01T00:00:00,42,GET /data/m/" + b"c" * 999_900 + b"+2000/1.mpg"
    path = tmp_path / "movielog.log"
    path.write_bytes(b"\n".join([LINES[0], huge, LINES[1]]) + b"\n")
    producer = FakeProducer()
    stats = replay_file(path, "t", producer=producer, progress=False, max_line_bytes=16_384)  # type: ignore[arg-type]
    assert [v for _, v, _ in producer.sent] == [LINES[0], LINES[1]]
    assert stats.refused == [(2, len(huge))] and stats.lines == 2
