"""The user side of a request: one read of the Feast online store, behind a timeout and a circuit breaker.

The read is a single HMGET on the serving event loop (`serving.online_reader`: Feast's Redis
layout, decoded as `get_online_features` decodes it, without the SDK's ~1 ms of CPU per call)
over one pipelined connection per worker (`serving.redis_pipe`).
A dead or hung Redis must cost a request a few milliseconds, not the SLA: the request waits at
most `feature_timeout_ms`; after `failures` consecutive errors or timeouts the breaker opens
and requests skip Redis entirely for `breaker_cooldown_s`, then one trial call decides whether
to close it again (`core.resilience.CircuitBreaker`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

from core.resilience import CircuitBreaker
from serving.online_reader import OnlineLayout
from serving.redis_pipe import RedisPipe

USER_SERVICE: Final = "user_online_v1"
"""Feature service of the user views (one online call per request)."""


class FeaturesUnavailableError(RuntimeError):
    """The user's online features could not be read (error, timeout or open breaker)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UserFeatureClient:
    """Reads one user's `user_online_v1` features with full feature names; see the module doc."""

    def __init__(self, layout: OnlineLayout, redis_url: str, timeout_s: float,
                 breaker: CircuitBreaker | None = None) -> None:  # fmt: skip
        self.layout = layout
        self.redis_url = redis_url
        self.timeout_s = timeout_s
        self.breaker = breaker or CircuitBreaker(failures=5, reset_s=2.0, clock=time.monotonic)
        self._client: RedisPipe | None = None

    @classmethod
    def from_store(cls, store: Any, redis_url: str, timeout_s: float,
                   breaker: CircuitBreaker | None = None) -> UserFeatureClient:  # fmt: skip
        """A client for the user views of `USER_SERVICE` as registered in `store`."""
        return cls(OnlineLayout.for_service(store, USER_SERVICE), redis_url, timeout_s, breaker)

    def _connect(self) -> RedisPipe:
        # Created on first use inside the serving event loop: the connection belongs to that loop.
        self._client = RedisPipe(self.redis_url)
        return self._client

    async def get(self, user_id: int) -> dict[str, Any]:
        """The user's features within the timeout; FeaturesUnavailableError otherwise."""
        if not self.breaker.allow():
            raise FeaturesUnavailableError("breaker_open")
        client = self._client if self._client is not None else self._connect()
        try:
            async with asyncio.timeout(self.timeout_s):
                values = await self.layout.read_async(client, user_id)
        except TimeoutError:
            self.breaker.failure()
            raise FeaturesUnavailableError("timeout") from None
        except Exception as exc:  # redis ConnectionError, a bad value: the answer degrades
            self.breaker.failure()
            raise FeaturesUnavailableError(f"error:{type(exc).__name__}") from exc
        self.breaker.success()
        return values

    async def aclose(self) -> None:
        """Close the Redis connections (from the loop that used them)."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
