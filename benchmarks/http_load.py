"""A light HTTP/1.1 load generator for the serving benchmark: open loop at a fixed rate, or one request at a time.

One process, one asyncio loop, a keep-alive connection pool and httptools (the C parser uvicorn
uses), so the client takes little of the two cores it shares with the server under test.

Open loop: request i is *due* at `start + i / rate`, whatever happened to the earlier ones. A
thread sleeps until each due time (`time.sleep` is precise to ~0.1 ms; the event loop's own
timers round up to whole milliseconds) and hands the request to the loop. Latency is measured
from the due time, not from when the request went out, so a stalled server or a late client is
charged to the latency figures instead of silently thinning the load (coordinated omission).
The lateness of the send (`sent - due`) is kept apart, so the client's share can be told.

Connections are taken first-in first-out, so the requests spread over all open connections
(and with them over the server's worker processes); when all are busy a new one is opened (its
connect time counts). A request with no complete answer within `timeout` is an error.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httptools
import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Reply:
    """One HTTP response: status, headers (names lower-cased), body, and whether the connection stays open."""

    status: int
    headers: dict[bytes, bytes]
    body: bytes
    keep_alive: bool


class _Message:
    """httptools callbacks collecting one response (status and keep-alive are only valid until it completes)."""

    __slots__ = ("body", "complete", "headers", "keep_alive", "parser", "status")

    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.body: list[bytes] = []
        self.complete = False
        self.keep_alive = False
        self.status = 0
        self.parser: httptools.HttpResponseParser | None = None

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


class Connection:
    """One keep-alive HTTP/1.1 connection; requests go one at a time (no pipelining)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> Reply:
        """Write a whole request (bytes on the wire) and read its response."""
        self.writer.write(request)
        await self.writer.drain()
        message = _Message()
        parser = message.parser = httptools.HttpResponseParser(message)
        while not message.complete:
            chunk = await self.reader.read(1 << 18)
            if not chunk:
                raise ConnectionResetError("the server closed the connection")
            parser.feed_data(chunk)
        return Reply(message.status, message.headers, b"".join(message.body), message.keep_alive)

    @property
    def local_port(self) -> int:
        """The client side's port (how the server's process table names this connection)."""
        port: int = self.writer.get_extra_info("sockname")[1]
        return port

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Idle connections, oldest first; opens more when all are busy, up to `limit` open at once."""

    def __init__(self, host: str, port: int, limit: int = 1024) -> None:
        self.host, self.port, self.limit = host, port, limit
        self.idle: deque[Connection] = deque()
        self.open_now = 0
        self.opened = 0
        """Connections opened in total (a count far above the pre-opened ones means the server fell behind)."""

    async def fill(self, n: int) -> None:
        """Open `n` connections up front (one after another: each is accepted before the next)."""
        for _ in range(n):
            self.release(await self._open())

    async def fill_balanced(
        self,
        per_group: int,
        groups: Sequence[int],
        probe: bytes,
        group_of: Callable[[Connection], int | None],
        max_tries: int = 1000,
    ) -> list[int]:
        """Open connections until each group (a server worker process, say) holds `per_group` idle ones.

        A server with several worker processes on one listening socket lets the kernel decide which
        worker accepts a connection, and it rarely spreads them evenly; a front end balancing its
        keep-alive connections would. Each new connection sends `probe` (so it is accepted), then
        `group_of` names its group; connections of a full group are closed. Returns the group of each
        connection opened, in order (the kernel's own split).
        """
        counts = dict.fromkeys(groups, 0)
        seen: list[int] = []
        for _ in range(max_tries):
            if all(c >= per_group for c in counts.values()):
                break
            conn = await self._open()
            try:
                await conn.send(probe)
            except BaseException:
                self.discard(conn)
                raise
            group = group_of(conn)
            if group is not None:
                seen.append(group)
            if group in counts and counts[group] < per_group:
                counts[group] += 1
                self.release(conn)
            else:
                self.discard(conn)
                # The worker that just answered is awake and wins the next accept: let it go back to sleep.
                await asyncio.sleep(0.02)
        else:
            raise ConnectionError(
                f"could not place {per_group} connections on each of {list(groups)}: {counts}"
            )
        return seen

    async def _open(self) -> Connection:
        if self.open_now >= self.limit:
            raise ConnectionError(f"{self.limit} connections open: the server is not answering")
        self.open_now += 1
        try:
            conn = await Connection.open(self.host, self.port)
        except BaseException:
            self.open_now -= 1
            raise
        self.opened += 1
        return conn

    async def acquire(self) -> Connection:
        return self.idle.popleft() if self.idle else await self._open()

    def release(self, conn: Connection) -> None:
        self.idle.append(conn)

    def discard(self, conn: Connection) -> None:
        self.open_now -= 1
        conn.close()

    async def send(self, request: bytes) -> Reply:
        """One request on a pooled connection; a connection that failed or says close is not reused."""
        conn = await self.acquire()
        try:
            reply = await conn.send(request)
        except BaseException:
            self.discard(conn)
            raise
        if reply.keep_alive:
            self.release(conn)
        else:
            self.discard(conn)
        return reply

    def close(self) -> None:
        while self.idle:
            self.discard(self.idle.popleft())


Inspect = Callable[[Reply], tuple[str | None, str]]
"""A reply -> (error or None, label): what counts as a failed answer and how answers are grouped."""


@dataclass
class Shots:
    """Per request: due, sent and done times (perf_counter seconds), status, error and label."""

    due: F64
    sent: F64
    done: F64
    status: npt.NDArray[np.int32]
    errors: list[str | None]
    labels: list[str]
    connections_opened: int = 0
    wall_seconds: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def latency_ms(self) -> F64:
        """From the due time to the complete answer (or to the failure)."""
        out: F64 = (self.done - self.due) * 1000.0
        return out

    @property
    def service_ms(self) -> F64:
        """From the actual send to the complete answer (hides the client's own lateness)."""
        out: F64 = (self.done - self.sent) * 1000.0
        return out

    @property
    def lag_ms(self) -> F64:
        """How late the client sent each request after its due time."""
        out: F64 = (self.sent - self.due) * 1000.0
        return out


def _classify(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    return f"{type(exc).__name__}: {exc}"[:120]


async def open_loop(
    pool: Pool, requests: Sequence[bytes], rate: float, timeout: float, inspect: Inspect
) -> Shots:
    """Send `requests[i]` at `start + i / rate` regardless of earlier answers; wait for all of them."""
    loop = asyncio.get_running_loop()
    n = len(requests)
    shots = Shots(
        np.empty(n), np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, np.int32), [None] * n, [""] * n
    )
    if n == 0:
        return shots
    opened_before = pool.opened
    all_done = asyncio.Event()
    remaining = n
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int) -> None:
        nonlocal remaining
        shots.sent[i] = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                reply = await pool.send(requests[i])
            shots.done[i] = time.perf_counter()
            shots.status[i] = reply.status
            shots.errors[i], shots.labels[i] = inspect(reply)
        except Exception as exc:  # timeouts, refused/reset connections, bad answers: counted, never raised
            shots.done[i] = time.perf_counter()
            shots.errors[i] = _classify(exc)
        finally:
            remaining -= 1
            if remaining == 0:
                all_done.set()

    def start(i: int) -> None:
        task = loop.create_task(one(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    start_at = time.perf_counter() + 0.05
    shots.due[:] = start_at + np.arange(n) / rate

    def dispatch() -> None:
        for i in range(n):
            wait = shots.due[i] - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            loop.call_soon_threadsafe(start, i)

    thread = threading.Thread(target=dispatch, name="dispatcher", daemon=True)
    thread.start()
    await all_done.wait()
    thread.join()
    shots.connections_opened = pool.opened - opened_before
    shots.wall_seconds = float(np.nanmax(shots.done) - start_at)
    return shots


async def one_at_a_time(
    pool: Pool, batches: Sequence[Sequence[bytes]], timeout: float, inspect: Inspect
) -> tuple[Shots, F64]:
    """Closed loop: each batch's requests one after another, the next batch when the last answered.

    Returns the per-batch shots (due = sent = when the batch started, done = sent + the parts' time
    on the wire, so checking an answer is not counted) and each part's latency in ms (batches x
    parts); a batch fails with its first failing part.
    """
    n = len(batches)
    width = max((len(b) for b in batches), default=0)
    shots = Shots(np.empty(n), np.empty(n), np.empty(n), np.zeros(n, np.int32), [None] * n, [""] * n)
    parts = np.full((n, width), np.nan)
    opened_before = pool.opened
    t_start = time.perf_counter()
    for i, batch in enumerate(batches):
        shots.due[i] = shots.sent[i] = time.perf_counter()
        elapsed = 0.0
        try:
            for j, request in enumerate(batch):
                t = time.perf_counter()
                try:
                    async with asyncio.timeout(timeout):
                        reply = await pool.send(request)
                finally:
                    parts[i, j] = (time.perf_counter() - t) * 1000.0
                    elapsed += parts[i, j] / 1000.0
                # Checking the answer (JSON parsing) is not part of its latency.
                error, label = inspect(reply)
                shots.status[i], shots.labels[i] = reply.status, label
                if error is not None:
                    shots.errors[i] = error
                    break
        except Exception as exc:
            shots.errors[i] = _classify(exc)
        shots.done[i] = shots.sent[i] + elapsed
    shots.connections_opened = pool.opened - opened_before
    shots.wall_seconds = time.perf_counter() - t_start
    return shots, parts
