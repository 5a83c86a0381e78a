"""A marker beside Feast's online store saying when it was last made whole, and by which Redis process.

A Redis that restarted without its data (no persistence, a lost volume) looks like a store of
users without features: answers would silently degrade. Writers that rebuild the whole store
(`recsys features rebuild`, ingestion's catch-up) stamp this key afterwards with the time and
Redis's `run_id`. Readers compare:

- key missing           -> the store is empty or was never built: rebuild it;
- `run_id` differs      -> Redis restarted since; with persistence (AOF, the local stack's
                           default) the data came back, but up to a second of writes may be
                           lost: rebuild to be sure;
- otherwise             -> whole as of `at`.

Serving and ingestion both check it; only one rebuild runs at a time (`REBUILD_LOCK_KEY`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final, Literal

MARKER_KEY: Final = "recsys:online:materialized_at"
"""Redis hash: `at` (epoch seconds of the last full materialisation) and `run_id` of the Redis that took it."""
REBUILD_LOCK_KEY: Final = "recsys:online:rebuild_lock"
"""Held (SET NX with a TTL) by the one process rebuilding the store."""

Verdict = Literal["ok", "missing", "restarted"]


@dataclass(frozen=True)
class MarkerState:
    """What the marker says about the online store."""

    verdict: Verdict
    at: float | None = None
    """Epoch seconds of the last full materialisation (None when the key is missing)."""

    @property
    def needs_rebuild(self) -> bool:
        """True when the store may be missing rows."""
        return self.verdict != "ok"


def _run_id(client: Any) -> str:
    return str(client.info("server").get("run_id", ""))


def mark(client: Any, at: float | None = None) -> None:
    """Stamp the store as whole now (after a full materialisation)."""
    client.hset(
        MARKER_KEY, mapping={"at": f"{at if at is not None else time.time():.3f}", "run_id": _run_id(client)}
    )


def check(client: Any) -> MarkerState:
    """The store's state according to the marker (raises redis errors: callers decide what down means)."""
    raw = client.hgetall(MARKER_KEY)
    if not raw:
        return MarkerState("missing")
    values = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
              for k, v in raw.items()}  # fmt: skip
    at = float(values.get("at", 0) or 0)
    if values.get("run_id") != _run_id(client):
        return MarkerState("restarted", at)
    return MarkerState("ok", at)


def try_lock(client: Any, owner: str, ttl_s: int = 900) -> bool:
    """Take the rebuild lock for `ttl_s` seconds; False when another process holds it."""
    return bool(client.set(REBUILD_LOCK_KEY, owner, nx=True, ex=ttl_s))


def unlock(client: Any, owner: str) -> None:
    """Release the rebuild lock if this owner still holds it."""
    held = client.get(REBUILD_LOCK_KEY)
    if held is not None and (held.decode() if isinstance(held, bytes) else held) == owner:
        client.delete(REBUILD_LOCK_KEY)
