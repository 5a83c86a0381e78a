"""The user side of a request: one Feast online call, behind a timeout and a circuit breaker.

A dead or hung Redis must cost a request a few milliseconds, not the SLA: each call runs on a
small thread pool and the request waits at most `feature_timeout_ms`; after `failures`
consecutive errors or timeouts the breaker opens and requests skip Redis entirely for
`cooldown_s`, then one trial call decides whether to close it again.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

USER_SERVICE: Final = "user_online_v1"
"""Feature service of the user views (one online call per request)."""


class FeaturesUnavailableError(RuntimeError):
    """The user's online features could not be read (error, timeout or open breaker)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CircuitBreaker:
    """Closed -> open after `failures` consecutive failures; half-open after `cooldown_s` lets one call try."""

    def __init__(self, failures: int = 5, cooldown_s: float = 2.0, clock: Any = time.monotonic) -> None:
        self.failures, self.cooldown_s, self._clock = failures, cooldown_s, clock
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial = False
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        """`closed`, `open` or `half_open`."""
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "half_open" if self._clock() - self._opened_at >= self.cooldown_s else "open"

    def allow(self) -> bool:
        """Whether a call may go to the dependency now (one trial at a time when half-open)."""
        with self._lock:
            if self._opened_at is None:
                return True
            if self._clock() - self._opened_at < self.cooldown_s or self._trial:
                return False
            self._trial = True
            return True

    def success(self) -> None:
        """A call succeeded: close."""
        with self._lock:
            self._consecutive, self._opened_at, self._trial = 0, None, False

    def failure(self) -> None:
        """A call failed or timed out: count, and open (again) at the threshold or after a failed trial."""
        with self._lock:
            self._consecutive += 1
            if self._trial or self._consecutive >= self.failures:
                self._opened_at, self._trial = self._clock(), False


class UserFeatureClient:
    """Reads one user's `user_online_v1` features with full feature names; see the module doc."""

    def __init__(
        self, store: Any, timeout_s: float, breaker: CircuitBreaker | None = None, threads: int = 4
    ) -> None:
        self.store = store
        self.timeout_s = timeout_s
        self.breaker = breaker or CircuitBreaker()
        self._service = store.get_feature_service(USER_SERVICE)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="user-features")

    def fetch(self, user_id: int) -> dict[str, Any]:
        """Blocking read (runs on the pool): feature name -> value, None where the store has none."""
        data = self.store.get_online_features(
            features=self._service, entity_rows=[{"user_id": int(user_id)}], full_feature_names=True
        ).to_dict()
        return {k: v[0] if v else None for k, v in data.items()}

    async def get(self, user_id: int) -> dict[str, Any]:
        """The user's features within the timeout; FeaturesUnavailableError otherwise."""
        if not self.breaker.allow():
            raise FeaturesUnavailableError("breaker_open")
        future = asyncio.wrap_future(self._pool.submit(self.fetch, user_id))
        try:
            values = await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            self.breaker.failure()
            raise FeaturesUnavailableError("timeout") from None
        except Exception as exc:  # redis ConnectionError, Feast errors: the answer degrades
            self.breaker.failure()
            raise FeaturesUnavailableError(f"error:{type(exc).__name__}") from exc
        self.breaker.success()
        return values

    def close(self) -> None:
        """Stop the pool without waiting for hung calls."""
        self._pool.shutdown(wait=False, cancel_futures=True)
