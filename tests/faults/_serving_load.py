"""Fault-test helpers: a real `recsys serve` process and an open-loop load that records every answer.

Open loop: requests leave at fixed times (rate x elapsed), whether or not earlier ones were
answered, so a slow or stuck service shows as slow answers instead of as fewer requests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.integration.conftest import free_port

ADMIN = {"Authorization": "Bearer recsys-local-admin"}
"""The local-mode admin token (loopback only)."""


@dataclass(frozen=True)
class Answer:
    """One request of the load: when it left (monotonic s), what came back and how long it took."""

    sent_at: float
    status: int
    """HTTP status; -1 when no answer came (connection refused, client timeout)."""
    latency_s: float
    path: str
    """`X-Recommendation-Path` (`?` without an answer)."""
    version: str
    """`X-Model-Version` (`none` on fallback answers)."""


@contextmanager
def serve_process(
    env: Mapping[str, str], log: Path, workers: int = 2, ready_timeout_s: float = 180.0
) -> Iterator[str]:
    """`recsys serve` on a free port with `env` on top of this environment; yields its URL once /readyz is 200."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "recsys.cli", "serve", "--port", str(port), "--workers", str(workers)],
            env={**os.environ, **env}, start_new_session=True, stdout=subprocess.DEVNULL, stderr=out,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            # A service that cannot start must fail the test loudly, with its log.
            assert proc.poll() is None, f"recsys serve exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, (
                f"recsys serve not ready in {ready_timeout_s:g} s:\n{log.read_text()[-3000:]}"
            )
            time.sleep(0.2)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the master and its workers (own session)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


class OpenLoad:
    """`rate` GET /recommend/<user> per second over `users`, round robin, from `start()` until `stop()`."""

    def __init__(self, url: str, rate: float, users: list[int], timeout_s: float = 5.0) -> None:
        self.url, self.rate, self.users, self.timeout_s = url, rate, users, timeout_s
        self.answers: list[Answer] = []
        self.max_send_lag_s = 0.0
        """Worst delay of a request behind its scheduled time (the load itself falling behind)."""
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="open-load", daemon=True)
        self._client = httpx.Client(base_url=url, timeout=timeout_s, limits=httpx.Limits(max_connections=64))

    def start(self) -> OpenLoad:
        """Begin sending."""
        self._thread.start()
        return self

    def stop(self) -> list[Answer]:
        """Stop sending, wait for the answers in flight; returns every answer in send order."""
        self._stop.set()
        self._thread.join(self.timeout_s + 30)
        self._client.close()
        return sorted(self.answers, key=lambda a: a.sent_at)

    def count(self) -> int:
        """Answers received so far."""
        with self._lock:
            return len(self.answers)

    def _run(self) -> None:
        with ThreadPoolExecutor(max_workers=48) as pool:
            t0 = time.monotonic()
            i = 0
            while not self._stop.is_set():
                due = t0 + i / self.rate
                now = time.monotonic()
                if due > now:
                    time.sleep(due - now)
                self.max_send_lag_s = max(self.max_send_lag_s, time.monotonic() - due)
                pool.submit(self._one, self.users[i % len(self.users)])
                i += 1

    def _one(self, user: int) -> None:
        sent = time.monotonic()
        try:
            r = self._client.get(f"/recommend/{user}")
            answer = Answer(sent, r.status_code, time.monotonic() - sent,
                            r.headers.get("X-Recommendation-Path", "?"), r.headers.get("X-Model-Version", "?"))  # fmt: skip
        except httpx.HTTPError:
            answer = Answer(sent, -1, time.monotonic() - sent, "?", "?")
        with self._lock:
            self.answers.append(answer)


def metric_sum(url: str, name: str) -> float:
    """Sum of every sample of one metric (all label values, all workers) on the service's /metrics."""
    total = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total
