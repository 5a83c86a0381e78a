"""Inline encode: a cold user's self-description fetched and read on the request path when none is stored yet.

Ingestion stores a description row at account creation, but a first request can arrive before
that row lands (the account event is still in flight, the metadata API was down for ingestion).
Then, on an arm with the `self_description` policy, serving asks the metadata API for the user
(`GET <metadata_url>/user/<id>`) within `inline_timeout_ms`, and reads the answer with the same
`textmodel.describe.parse_description` ingestion uses (titles matched against serving's catalogue,
the likes encoded by the policy's encoder, ~12 ms off the event loop). Every answer, a user the API
does not know included, is cached for `CACHE_TTL_S`, so a user costs one lookup however often they
call; a breaker stops asking after repeated failures, so a dead API costs nothing but the popular list.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

import httpx
from pydantic import ValidationError

from core.resilience import CircuitBreaker, TtlCache
from events.metadata import UserMeta
from textmodel.describe import ParsedDescription, parse_description
from textmodel.encoder import TextEncoder
from textmodel.titles import TitleIndex

log = logging.getLogger(__name__)

CACHE_TTL_S: Final = 600.0
"""How long a fetched description (or the API's "not found") is reused: ingestion's row lands well before."""
CACHE_MAX: Final = 50_000
"""Users whose inline answer is remembered at most (LRU beyond)."""
BREAKER_FAILURES: Final = 5
"""Consecutive failed lookups that open the breaker."""
BREAKER_RESET_S: Final = 30.0
"""Seconds the breaker stays open before one trial lookup."""


class InlineDescriber:
    """Fetch, parse and encode one user's self-description within a deadline; see the module doc."""

    def __init__(
        self,
        base_url: str,
        timeout_s: float,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout_s = timeout_s
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=httpx.Timeout(timeout_s), transport=transport
        )
        self._cache: TtlCache[int, UserMeta | None] = TtlCache(CACHE_MAX, CACHE_TTL_S, clock)
        self._breaker = CircuitBreaker(BREAKER_FAILURES, BREAKER_RESET_S, clock)

    async def describe(
        self, user_id: int, encoder: TextEncoder, titles: TitleIndex
    ) -> tuple[ParsedDescription | None, str]:
        """(description, outcome): `inline_encode`, or None with `inline_not_found` / `inline_unavailable`."""
        meta, outcome = await self._user(user_id)
        if meta is None:
            return None, outcome
        # Parsing and the ONNX encode leave the event loop free (onnxruntime releases the GIL).
        parsed = await asyncio.to_thread(parse_description, meta.likes, meta.dislikes, encoder, titles)
        return parsed, "inline_encode"

    async def _user(self, user_id: int) -> tuple[UserMeta | None, str]:
        """The user's record, or None with why (`inline_not_found` / `inline_unavailable`)."""
        hit, cached = self._cache.get(user_id)
        if hit:
            return cached, "inline_not_found"
        if not self._breaker.allow():
            return None, "inline_unavailable"
        try:
            answer = await asyncio.wait_for(self._http.get(f"/user/{user_id}"), self.timeout_s)
        except (httpx.HTTPError, TimeoutError) as exc:
            self._breaker.failure()
            log.debug("inline description of user %s: %s", user_id, exc)
            return None, "inline_unavailable"
        if answer.status_code == 404:
            self._breaker.success()
            self._cache.put(user_id, None)
            return None, "inline_not_found"
        try:
            answer.raise_for_status()
            meta = UserMeta.model_validate(answer.json())
            if meta.user_id != user_id:
                raise ValueError(f"answer is about user {meta.user_id}")
        except (httpx.HTTPError, ValueError, ValidationError) as exc:  # 5xx, not JSON, wrong shape or user
            self._breaker.failure()
            log.debug("inline description of user %s: bad answer: %s", user_id, exc)
            return None, "inline_unavailable"
        self._breaker.success()
        self._cache.put(user_id, meta)
        return meta, "inline_encode"

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()
