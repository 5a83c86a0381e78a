"""Closed loop: call the platform's `GET /recommend/<userid>` and report what the course's front end logs.

Calls run concurrently on a private asyncio loop with httpx, each under a hard deadline (600 ms
by default, connect and read together). Outcomes are written as the course's servers write them:

    status 200, result: a, b, c, 45 ms
    status 0, result: java.util.concurrent.TimeoutException: Request timeout to <host>/<ip>:8082 after 600 ms, 615 ms
    status 0, result: Connection refused: <host>/<ip>:8082, 3 ms
    status 503, result: <first 200 characters of the body, on one line>, 12 ms

From a 200 answer, the comma-separated ids are stripped and the first 20 valid movie ids kept;
tokens that cannot be movie ids (white space, `/`, `=`) are dropped, so a broken answer still
gives a parseable line (the service's contract is checked by the platform's own tests).
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

import httpx

MAX_ITEMS = 20
_SLUG = re.compile(r"[^\s,/=\x00-\x1f\x7f]{1,256}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True, slots=True)
class RecOutcome:
    """One recommendation call as the front end saw it."""

    status: int
    items: tuple[str, ...]
    error: str | None
    response_ms: int


@lru_cache(maxsize=64)
def _resolve(host: str) -> str:
    try:
        return socket.gethostbyname(host)
    except OSError:
        return host


def _one_line(text: str, limit: int = 200) -> str:
    return _CONTROL.sub(" ", text).strip()[:limit]


def _refused(exc: BaseException) -> bool:
    """True when a connect error was, deep down, a refused connection (httpx wraps the OSError)."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ConnectionRefusedError) or "refused" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def parse_answer(body: str) -> tuple[str, ...]:
    """Movie ids of a 200 answer: comma-separated, stripped, invalid tokens dropped, at most 20."""
    items = (token.strip() for token in body.split(","))
    return tuple(t for t in items if _SLUG.fullmatch(t))[:MAX_ITEMS]


class RecommendClient:
    """Concurrent recommendation calls with a hard per-call deadline."""

    def __init__(self, base_url: str, timeout_ms: int = 600, concurrency: int = 32) -> None:
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.server = f"{self.host}:{self.port}"
        """The server name the front end writes in its lines: host:port."""
        self.timeout_ms = timeout_ms
        self._concurrency = concurrency
        self._loop = asyncio.new_event_loop()
        self._client: httpx.AsyncClient | None = None
        self.answer_ms: list[float] = []
        """Answer time of every call, as the front end saw it (ms, timeouts count as the deadline)."""

    def url_for(self, user_id: int) -> str:
        """The address called for `user_id` (one service here; a subclass may split users between services)."""
        return f"{self.base_url}/recommend/{user_id}"

    def _target(self) -> str:
        return f"{self.host}/{_resolve(self.host)}:{self.port}"

    async def _call(
        self, client: httpx.AsyncClient, sem: asyncio.Semaphore, user_id: int, delay_s: float
    ) -> RecOutcome:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        async with sem:
            t0 = time.perf_counter()
            status, error = 0, None
            items: tuple[str, ...] = ()
            try:
                resp = await asyncio.wait_for(client.get(self.url_for(user_id)), self.timeout_ms / 1000)
                status = resp.status_code
                if status == 200:
                    items = parse_answer(resp.text)
                else:
                    error = _one_line(resp.text) or resp.reason_phrase or "error"
            except (TimeoutError, httpx.TimeoutException):
                error = (
                    f"java.util.concurrent.TimeoutException: Request timeout to {self._target()} after "
                    f"{self.timeout_ms} ms"
                )
            except httpx.ConnectError as exc:
                if _refused(exc):
                    error = f"Connection refused: {self._target()}"
                else:
                    error = f"java.net.ConnectException: {_one_line(str(exc)) or 'connect failed'}: {self._target()}"
            except httpx.HTTPError as exc:
                error = f"java.io.IOException: {type(exc).__name__}: {_one_line(str(exc))}"
            elapsed_ms = (time.perf_counter() - t0) * 1000
            self.answer_ms.append(elapsed_ms)
            return RecOutcome(status, items, error, round(elapsed_ms))

    async def _batch(self, user_ids: list[int], delays_s: list[float]) -> list[RecOutcome]:
        if self._client is None:
            limits = httpx.Limits(
                max_connections=self._concurrency, max_keepalive_connections=self._concurrency
            )
            # Deadline enforced by wait_for; httpx's own timeout is a backstop only.
            self._client = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(self.timeout_ms / 1000 + 1))
        sem = asyncio.Semaphore(self._concurrency)
        return list(
            await asyncio.gather(
                *(self._call(self._client, sem, u, d) for u, d in zip(user_ids, delays_s, strict=True))
            )
        )

    def fetch(self, user_ids: list[int], delays_s: list[float] | None = None) -> list[RecOutcome]:
        """Call the service for each user (after its delay in seconds, if given); outcomes in the same order."""
        if not user_ids:
            return []
        return self._loop.run_until_complete(self._batch(user_ids, delays_s or [0.0] * len(user_ids)))

    def close(self) -> None:
        """Close connections and the private event loop."""
        if self._client is not None:
            self._loop.run_until_complete(self._client.aclose())
            self._client = None
        self._loop.close()
