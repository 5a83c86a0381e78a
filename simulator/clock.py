"""The simulated clock: simulated time runs `speed` times faster than the wall clock (0: unpaced).

Unpaced runs (backfills, benchmarks) advance simulated time as fast as lines can be made;
paced runs sleep so that a line is written when the simulated clock reaches its timestamp.
"""

from __future__ import annotations

import time


class SimClock:
    """Maps simulated nanoseconds since the epoch to wall-clock time."""

    def __init__(self, start_ns: int, speed: float) -> None:
        self.start_ns = start_ns
        self.speed = speed
        self._wall0 = time.monotonic()

    def start(self) -> None:
        """(Re)start the wall clock now: simulated time `start_ns` is this instant."""
        self._wall0 = time.monotonic()

    @property
    def paced(self) -> bool:
        """True when simulated time follows the wall clock (speed > 0)."""
        return self.speed > 0

    def now_ns(self) -> int:
        """Current simulated time (the start, for an unpaced clock)."""
        if not self.paced:
            return self.start_ns
        return self.start_ns + int((time.monotonic() - self._wall0) * self.speed * 1e9)

    def seconds_until(self, ts_ns: int) -> float:
        """Wall-clock seconds until the simulated clock reaches `ts_ns` (0 when unpaced or past)."""
        if not self.paced:
            return 0.0
        return max(0.0, (ts_ns - self.now_ns()) / 1e9 / self.speed)

    def wait_until(self, ts_ns: int) -> None:
        """Sleep until the simulated clock reaches `ts_ns` (returns at once when unpaced)."""
        delay = self.seconds_until(ts_ns)
        if delay > 0:
            time.sleep(delay)
