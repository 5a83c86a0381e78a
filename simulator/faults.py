"""Stream fault injection: malformed lines, duplicated lines and lines delivered late.

A malformed line is a real line damaged in one of the ways logs get damaged (truncated, a bad
timestamp, user or rating, white space in a movie id, a control character, a dropped field,
an unknown request); every one is checked against `events.parse_line` and damaged again
until the codec rejects it, so "injected malformed" and "rejected by the codec" coincide. A
duplicate is the same line written twice in a row (a producer retry); a late line keeps its
timestamp but is written up to `late_max_seconds` later, behind newer lines.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from events import ParseError, parse_line


def _truncate(rnd: random.Random, line: str) -> str:
    head, _, request = line.rpartition(",GET ") if ",GET " in line else ("", "", line)
    cut = rnd.randint(1, max(1, len(request) - 2)) if request else 1
    return (head + ",GET " + request[:cut]) if head else line[: max(1, len(line) // 2)]


def _bad_time(rnd: random.Random, line: str) -> str:
    bad = rnd.choice(("2026-13-45T99:00:00", "yesterday", "2026/11/25 17:04:05", "1700000000", "T17:04"))
    return bad + line[line.index(",") :] if "," in line else bad


def _bad_user(rnd: random.Random, line: str) -> str:
    parts = line.split(",", 2)
    if len(parts) < 3:
        return "," + line
    return ",".join((parts[0], rnd.choice(("-7", "user42", "", "1e6", "9" * 25)), parts[2]))


def _bad_value(rnd: random.Random, line: str) -> str:
    if "/rate/" in line:
        return line.rpartition("=")[0] + "=" + rnd.choice(("0", "11", "five", "-3", "4.5"))
    if line.endswith(".mpg"):
        return line.rpartition("/")[0] + "/" + rnd.choice(("-1", "x", "999999999")) + ".mpg"
    return line.replace(", status ", ", status " + rnd.choice(("OK", "9999", "-1")) + "x", 1)


def _space_in_id(rnd: random.Random, line: str) -> str:
    for marker in ("/data/m/", "/rate/"):
        at = line.find(marker)
        if at >= 0:
            pos = at + len(marker) + 1
            return line[:pos] + rnd.choice((" ", "/x/", "=")) + line[pos:]
    return line.replace("result: ", "result: bad id, ", 1)


def _control(rnd: random.Random, line: str) -> str:
    pos = rnd.randint(20, max(20, len(line) - 1))
    return line[:pos] + rnd.choice(("\x00", "\x1b", "\x07", "\x7f")) + line[pos:]


def _drop_field(rnd: random.Random, line: str) -> str:
    parts = line.split(",", 2)
    return parts[0] + "," + parts[2] if len(parts) == 3 and rnd.random() < 0.5 else parts[0]


def _unknown(rnd: random.Random, line: str) -> str:
    parts = line.split(",", 2)
    request = rnd.choice(("GET /data/x/unknown.mp4", "POST /rate/x=3", "GET /favicon.ico", "HELLO"))
    return f"{parts[0]},{parts[1] if len(parts) > 1 else 1},{request}"


_DAMAGES = (_truncate, _bad_time, _bad_user, _bad_value, _space_in_id, _control, _drop_field, _unknown)


def corrupt(rnd: random.Random, line: str) -> str:
    """A damaged copy of `line` that `events.parse_line` rejects (never holds a newline)."""
    for _ in range(8):
        bad = rnd.choice(_DAMAGES)(rnd, line)
        if isinstance(parse_line(bad), ParseError):
            return bad
    return "#" + line  # a timestamp never starts with '#': rejected for certain


@dataclass(slots=True)
class StreamFaults:
    """Rates of each stream fault; all zero means a clean stream."""

    malformed_rate: float = 0.0
    duplicate_rate: float = 0.0
    late_rate: float = 0.0
    late_max_ns: int = 0
    _rnd: random.Random = field(default_factory=lambda: random.Random(0))

    def seed(self, seed: int) -> None:
        """Re-seed the per-line damage choices (for deterministic streams)."""
        self._rnd.seed(seed)

    def delays(self, rng: np.random.Generator, n: int) -> NDArray[np.int64]:
        """Extra emission delay (ns) for `n` lines: 0 for punctual ones."""
        if self.late_rate <= 0 or self.late_max_ns <= 0:
            return np.zeros(n, dtype=np.int64)
        late = rng.random(n) < self.late_rate
        return np.where(late, 1_000_000_000 + (rng.random(n) * self.late_max_ns).astype(np.int64), 0)

    def apply(
        self, rng: np.random.Generator, lines: list[str], users: list[int], emit: list[int]
    ) -> tuple[list[str], list[int], list[int], list[int]]:
        """Corrupt and duplicate lines; returns (lines, users, emit times, indices of malformed lines)."""
        n = len(lines)
        if n == 0 or (self.malformed_rate <= 0 and self.duplicate_rate <= 0):
            return lines, users, emit, []
        bad = np.flatnonzero(rng.random(n) < self.malformed_rate).tolist()
        for i in bad:
            lines[i] = corrupt(self._rnd, lines[i])
        dup = rng.random(n) < self.duplicate_rate
        if not dup.any():
            return lines, users, emit, bad
        copies = 1 + dup.astype(np.int64)
        order = np.repeat(np.arange(n), copies)
        first = (np.cumsum(copies) - copies)[bad]  # where each damaged line lands in the output
        malformed = np.sort(np.concatenate([first, first[dup[bad]] + 1])).tolist()
        idx = order.tolist()
        return [lines[i] for i in idx], [users[i] for i in idx], [emit[i] for i in idx], malformed
