"""Event-loop lag of a serving worker: measured always, and the blocking stack logged when it is long.

Every request of a worker runs on one asyncio loop, so anything that holds it (a synchronous call
in a handler, a long computation, a thread keeping the interpreter lock) delays every request
queued behind it, however cheap each is. A ticker task on the loop records how late it wakes
(`recsys_event_loop_lag_seconds`); a watchdog thread notices a tick overdue by more than
`stall_ms` and logs, once per stall, the stack the loop's thread is in at that moment, and the
stacks of the threads holding Python code, so a p99 made of stalls can be traced to its code.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback

from serving import metrics as M  # noqa: N812

log = logging.getLogger(__name__)

TICK_S = 0.05
"""How often the ticker wakes (its lateness is the lag)."""


class LoopWatch:
    """The ticker (a task on the loop) and the watchdog (a daemon thread); `start` on the loop, `stop` after."""

    def __init__(self, stall_ms: float) -> None:
        self.stall_s = stall_ms / 1000.0
        self.stalls = 0
        """Stalls logged so far."""
        self._beat = time.monotonic()
        self._loop_thread: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start both; call from the loop's thread."""
        self._loop_thread = threading.get_ident()
        self._beat = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._tick())
        self._thread = threading.Thread(target=self._watch, name="loop-watch", daemon=True)
        self._thread.start()

    async def _tick(self) -> None:
        while True:
            due = time.monotonic() + TICK_S
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            M.LOOP_LAG.observe(max(0.0, now - due))
            self._beat = now

    def _watch(self) -> None:
        logged_for = 0.0
        while not self._stop.wait(self.stall_s / 2):
            overdue = time.monotonic() - self._beat - TICK_S
            if overdue > self.stall_s and self._beat != logged_for:
                logged_for = self._beat
                self.stalls += 1
                log.warning("event loop blocked for %.0f ms so far:\n%s", overdue * 1000.0, self.stacks())

    def stacks(self) -> str:
        """The loop thread's stack, then every other thread's innermost frames."""
        frames = sys._current_frames()  # the documented way to see another thread's stack
        names = {t.ident: t.name for t in threading.enumerate()}
        parts = []
        for ident, frame in sorted(frames.items(), key=lambda kv: kv[0] != self._loop_thread):
            if ident == threading.get_ident():
                continue
            depth = None if ident == self._loop_thread else -4
            lines = traceback.format_stack(frame)
            shown = lines if depth is None else lines[depth:]
            label = "loop thread" if ident == self._loop_thread else names.get(ident, str(ident))
            parts.append(f"--- {label}\n" + "".join(shown))
        return "".join(parts)

    def stop(self) -> None:
        """Stop the watchdog and cancel the ticker."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
