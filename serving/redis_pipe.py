"""A minimal pipelined Redis connection for the request path: HMGET over one socket per event loop.

redis-py's asyncio client spends ~0.5 ms of Python per command (connection pool, retry
wrapper, command packing, response parsing layers); at 200 answers per second on two cores
that is a tenth of the CPU budget. The request path needs one command, HMGET, so this
connection writes it with pre-encoded field lists and matches replies to requests in order
(Redis answers a connection's commands first in, first out), parsed by hiredis. Concurrent
requests share the socket and so pipeline for free.

Failure behaviour the serving code relies on: a refused or lost connection fails every waiting
request at once (ConnectionError) and the next request reconnects; a request that gives up
(its timeout cancelled it) leaves its slot in the queue, so later replies still go to the
right requests; when too many requests wait (a hung server) the connection is dropped.

`rediss://` connects over TLS (the server's certificate is verified against the system's CAs, or
the `ssl_ca_certs=<file>` query parameter's, as redis-py and Feast read the same URL); a
password in the URL is sent with AUTH before the first command.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Sequence
from typing import Any, Final, cast
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis

MAX_PENDING: Final = 4_096
"""Requests allowed to wait on one connection before it is considered hung and dropped."""


def encode_command(*parts: bytes) -> bytes:
    """RESP encoding of one command (array of bulk strings)."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.pending: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        try:
            reply = self.reader.gets()
            while reply is not False:
                future = self.pending.popleft() if self.pending else None
                if future is not None and not future.done():  # a timed-out request's reply is dropped
                    if isinstance(reply, hiredis.ReplyError):
                        future.set_exception(reply)
                    else:
                        future.set_result(reply)
                reply = self.reader.gets()
        except hiredis.ProtocolError as exc:  # the stream is unusable: fail everyone, reconnect later
            self.fail(ConnectionError(f"redis protocol error: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionError(f"redis connection lost: {exc}" if exc else "redis connection closed"))

    def fail(self, error: BaseException) -> None:
        self.lost = error
        while self.pending:
            future = self.pending.popleft()
            if not future.done():
                future.set_exception(error)
        if self.transport is not None:
            self.transport.close()


def tls_context(query: str) -> ssl.SSLContext:
    """The client TLS context of a `rediss://` URL: verified, with the CA file of `ssl_ca_certs` when given."""
    params = parse_qs(query)
    context = ssl.create_default_context(cafile=params.get("ssl_ca_certs", [None])[-1])
    if (
        params.get("ssl_cert_reqs", ["required"])[-1] == "none"
    ):  # redis-py's opt-out, for self-signed test servers
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class RedisPipe:
    """One pipelined connection to `redis://[:password@]host[:port][/db]`, opened on first use."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"only redis:// and rediss:// URLs are supported, got {parts.scheme}://")
        self.tls = tls_context(parts.query) if parts.scheme == "rediss" else None
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.db = int(parts.path.lstrip("/") or 0)
        self.password = unquote(parts.password) if parts.password else None
        self.username = unquote(parts.username) if parts.username else None
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _connection(self) -> _Protocol:
        protocol, loop = self._protocol, asyncio.get_running_loop()
        if protocol is not None and protocol.lost is None and self._loop is loop:
            return protocol
        if self._connecting is None or self._loop is not loop:  # a new loop: nothing of the old one is usable
            self._connecting, self._loop, self._protocol = asyncio.Lock(), loop, None
        async with self._connecting:  # one connect at a time; the others use its result
            if self._protocol is not None and self._protocol.lost is None:
                return self._protocol
            _, fresh = await loop.create_connection(
                _Protocol, self.host, self.port, ssl=self.tls, server_hostname=self.host if self.tls else None
            )
            setup: list[bytes] = []
            if self.password is not None:
                auth = [self.username.encode()] if self.username else []
                setup.append(encode_command(b"AUTH", *auth, self.password.encode()))
            if self.db:
                setup.append(encode_command(b"SELECT", str(self.db).encode()))
            try:
                for command in setup:
                    await self._send(fresh, command)
            except BaseException:  # wrong password or db, or the caller's timeout: no half-set-up socket
                fresh.fail(ConnectionError("redis connection set-up failed"))
                raise
            self._protocol = fresh
            return fresh

    @staticmethod
    def _send(protocol: _Protocol, command: bytes) -> asyncio.Future[Any]:
        if len(protocol.pending) >= MAX_PENDING:
            protocol.fail(
                ConnectionError(f"{MAX_PENDING} requests waiting on redis: dropping the connection")
            )
            raise ConnectionError("redis connection dropped: too many waiting requests")
        assert protocol.transport is not None
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        protocol.pending.append(future)
        protocol.transport.write(command)
        return future

    async def execute(self, command: bytes) -> Any:
        """Send one RESP-encoded command and wait for its reply (Redis errors raise hiredis.ReplyError)."""
        protocol = await self._connection()
        return await self._send(protocol, command)

    async def hmget(self, key: bytes, fields: Sequence[bytes]) -> list[bytes | None]:
        """HMGET key field...: one value (or None) per field."""
        reply: list[bytes | None] = await self.execute(encode_command(b"HMGET", key, *fields))
        return reply

    async def aclose(self) -> None:
        """Close the connection (waiting requests fail with ConnectionError)."""
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None
