"""Keeps Feast's online store in step with what a worker landed: queued pushes, their retry, and repair.

Landing never waits for Redis: touched users' rows are queued here and pushed after the batch;
a failed push keeps them (the newest row per user) and is retried every loop. Whether Redis
lost data is the store marker's question (`feature_repo.online_marker`), asked every
`check_every_s` and at once when pushes succeed again after failures: a missing marker or a
new Redis `run_id` rebuilds every view from the offline store (`ingestion.rebuild`). A blip
that left Redis running needs nothing more than the retried pushes.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any, Protocol

import pyarrow as pa

from ingestion import metrics
from ingestion.online import OnlineWriter
from ingestion.rebuild import USER_VIEWS

log = logging.getLogger(__name__)


class SyncStats(Protocol):
    """The counters of the worker's run that this module moves."""

    pushes_failed: int
    catch_ups: int
    rebuilds: int


class OnlineSync:
    """Pending user-feature rows for the online store, pushed and repaired; see the module doc."""

    def __init__(self, online: OnlineWriter | None, check_every_s: float, stats: SyncStats) -> None:
        self.online = online
        self.check_every_s = check_every_s
        self.stats = stats
        self.pending: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
        self.freshness_samples: list[float] = []
        """Seconds from a line's Kafka timestamp to its user's features being online (benchmarks read it)."""
        self._failed_since_ok = False
        self._last_check = 0.0

    def pending_count(self) -> int:
        """Users whose online features have not been pushed yet."""
        return sum(len(v) for v in self.pending.values())

    def queue(self, features: dict[str, pa.Table], kafka_ms: int) -> None:
        """Queue a batch's feature rows (the newest per user wins) and push what is pending."""
        if self.online is None:
            return
        for view, rows in features.items():
            for row in rows.to_pylist():
                self.pending[view][int(row["user_id"])] = {**row, "_kafka_ms": kafka_ms}
        self.push()

    def push(self) -> None:
        """Push every pending view; on failure keep the rows for the next call."""
        if self.online is None or not self.pending_count():
            return
        for view in list(self.pending):
            rows = self.pending[view]
            if not rows:
                continue
            kafka_ms = [r.pop("_kafka_ms") for r in rows.values()]
            table = pa.Table.from_pylist(list(rows.values()))
            t0 = time.perf_counter()
            try:
                self.online.write(view, table)
            except Exception as exc:  # Redis down: keep rows, land offline, retry next loop
                for r, k in zip(rows.values(), kafka_ms, strict=True):
                    r["_kafka_ms"] = k
                metrics.PUSH_FAILURES.inc()
                self.stats.pushes_failed += 1
                self._failed_since_ok = True
                log.warning("online push of %s failed (%s); will retry", view, exc)
                break
            metrics.PUSH_SECONDS.observe(time.perf_counter() - t0)
            now_ms = time.time() * 1000
            for k in kafka_ms:
                lag_s = max(0.0, (now_ms - k) / 1000)
                metrics.FRESHNESS.observe(lag_s)
                if len(self.freshness_samples) < 1_000_000:
                    self.freshness_samples.append(lag_s)
            self.pending[view] = {}
            if self._failed_since_ok and self.check(recovering=True):
                self._failed_since_ok = False
        metrics.PENDING_PUSH.set(self.pending_count())

    def maybe_check(self, now: float) -> None:
        """The periodic marker check (every `check_every_s`)."""
        if now - self._last_check > self.check_every_s:
            self.check()

    def check(self, recovering: bool = False) -> bool:
        """Rebuild the store when its marker is gone or Redis restarted; False when Redis could not say."""
        self._last_check = time.monotonic()
        rebuild_if_needed = getattr(self.online, "rebuild_if_needed", None)
        if rebuild_if_needed is None:
            return True
        try:
            report = rebuild_if_needed()
        except Exception as exc:  # Redis down: pushes fail and are retried; check again later
            log.warning("online store check failed (%s)", exc)
            return False
        if report is None and recovering:
            return self._catch_up_users()
        if report is not None and report.ran:
            self.stats.rebuilds += 1
            if recovering:
                self.stats.catch_ups += 1
            metrics.ONLINE_REBUILDS.labels(report.reason).inc()
            metrics.ONLINE_REBUILD_SECONDS.set(report.seconds)
            log.warning(
                "online store %s: rebuilt %d views from the offline store in %.1f s (%d -> %d keys)",
                report.reason, len(report.views), report.seconds, report.keys_before, report.keys_after,
            )  # fmt: skip
        return True

    def _catch_up_users(self) -> bool:
        """Without a Redis client to read the marker: re-materialise the user views, as a restart may have lost them."""
        catch_up = getattr(self.online, "catch_up", None)
        if catch_up is None:
            return True
        try:
            catch_up(list(USER_VIEWS))
        except Exception as exc:  # still flaky: try again after the next successful push
            log.warning("online catch-up failed (%s); will retry", exc)
            return False
        self.stats.catch_ups += 1
        log.info("online store caught up from the offline store")
        return True
