"""The event-loop watch: lag measured, and a long block logged with the stack that caused it."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from prometheus_client import REGISTRY

from serving.loop_watch import LoopWatch


def _lag_count() -> float:
    return REGISTRY.get_sample_value("recsys_event_loop_lag_seconds_count") or 0.0


def test_a_blocked_loop_is_logged_once_with_the_blocking_code(caplog: pytest.LogCaptureFixture) -> None:
    def a_synchronous_call_in_a_handler() -> None:
        time.sleep(0.4)

    async def main() -> LoopWatch:
        watch = LoopWatch(stall_ms=100.0)
        watch.start()
        await asyncio.sleep(0.3)  # healthy: ticks, no stall
        assert watch.stalls == 0
        a_synchronous_call_in_a_handler()
        await asyncio.sleep(0.2)
        watch.stop()
        return watch

    before = _lag_count()
    with caplog.at_level(logging.WARNING, logger="serving.loop_watch"):
        watch = asyncio.run(main())
    assert watch.stalls == 1, "one stall, logged once however long it lasts"
    [record] = [r for r in caplog.records if "event loop blocked" in r.getMessage()]
    assert (
        "a_synchronous_call_in_a_handler" in record.getMessage() and "--- loop thread" in record.getMessage()
    )
    assert _lag_count() - before >= 5
