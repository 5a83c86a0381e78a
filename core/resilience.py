"""Resilience helpers shared by the platform's clients: a circuit breaker, a TTL cache and backoff jitter.

Shaped after `pybreaker` (logging and metrics hang on a listener, the breaker is tested alone)
but with an injected clock, so tests move time instead of sleeping. All three are thread-safe
where they hold state; none does I/O.
"""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Final, Generic, Literal, TypeVar

BreakerState = Literal["closed", "open", "half_open"]
"""`closed`: calls go through; `open`: calls are refused; `half_open`: one trial call may go."""
BreakerListener = Callable[[BreakerState, BreakerState], None]
"""Called with (old, new) after every state change, outside the breaker's lock."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class CircuitBreaker:
    """Opens after `failures` consecutive failures; after `reset_s` one trial call decides whether to close."""

    def __init__(
        self,
        failures: int,
        reset_s: float,
        clock: Callable[[], float],
        on_change: BreakerListener | None = None,
    ) -> None:
        if failures < 1 or reset_s < 0:
            raise ValueError("failures must be >= 1 and reset_s >= 0")
        self.failures, self.reset_s = failures, reset_s
        self._clock = clock
        self._listeners: list[BreakerListener] = [on_change] if on_change is not None else []
        self._lock = threading.Lock()
        self._state: BreakerState = "closed"
        self._opened_at = 0.0
        self._trial = False
        self.consecutive = 0
        """Failures in a row since the last success."""
        self.opens = 0
        """Times the breaker went from closed to open."""

    def add_listener(self, listener: BreakerListener) -> None:
        """Also call `listener(old, new)` on every state change."""
        self._listeners.append(listener)

    @property
    def state(self) -> BreakerState:
        """The state now; an open breaker whose `reset_s` has passed reads `half_open`."""
        with self._lock:
            return self._current()

    def allow(self) -> bool:
        """Whether a call may go out now; claims the single half-open trial when it is due."""
        with self._lock:
            old = self._state
            self._state = self._current()
            allowed = self._state == "closed" or (self._state == "half_open" and not self._trial)
            if self._state == "half_open" and allowed:
                self._trial = True
            new = self._state
        self._notify(old, new)
        return allowed

    def success(self) -> None:
        """A call succeeded: close."""
        with self._lock:
            old = self._state
            self._state, self.consecutive, self._trial = "closed", 0, False
        self._notify(old, "closed")

    def failure(self) -> None:
        """A call failed: open at the threshold, or again when the half-open trial failed."""
        with self._lock:
            old = self._state
            self.consecutive += 1
            if self._trial or self._current() != "closed" or self.consecutive >= self.failures:
                if old == "closed":
                    self.opens += 1
                self._state, self._opened_at = "open", self._clock()
            self._trial = False
            new = self._state
        self._notify(old, new)

    def _current(self) -> BreakerState:
        if self._state == "open" and self._clock() - self._opened_at >= self.reset_s:
            return "half_open"
        return self._state

    def _notify(self, old: BreakerState, new: BreakerState) -> None:
        if old != new:
            for listener in self._listeners:
                listener(old, new)


class TtlCache(Generic[K, V]):
    """LRU cache whose entries expire `ttl` seconds after they were put (per entry when given to `put`)."""

    def __init__(self, max_entries: int, ttl: float, clock: Callable[[], float]) -> None:
        self.max_entries, self.ttl = max_entries, ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> tuple[bool, V | None]:
        """(hit, value): a miss for absent and expired keys (an expired entry is dropped)."""
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return False, None
            if entry[0] <= self._clock():
                del self._data[key]
                return False, None
            self._data.move_to_end(key)
            return True, entry[1]

    def put(self, key: K, value: V, ttl: float | None = None) -> None:
        """Store `value` for `ttl` seconds (default: the cache's); a zero TTL or size stores nothing."""
        ttl = self.ttl if ttl is None else ttl
        if self.max_entries <= 0 or ttl <= 0:
            return
        with self._lock:
            self._data[key] = (self._clock() + ttl, value)
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)  # the least recently used

    def __len__(self) -> int:
        """Entries held, expired ones not yet dropped included."""
        return len(self._data)


_UNIT: Final = random.Random()


def equal_jitter(attempt: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Delay before retry `attempt` (1, 2, ...): half of min(max_s, base_s * 2**(attempt-1)) plus up to that half at random.

    Equal jitter keeps a floor under the delay (no instant retry storm) while clients that
    failed together spread out.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    cap = min(max_s, base_s * 2.0 ** (attempt - 1))
    return cap / 2 + (rng or _UNIT).uniform(0, cap / 2)
