"""Redis with a password and TLS: the URL passes through to every client the platform uses, and never shows.

A real `redis-server` listens on a TLS port only (certificate from a throwaway CA made with
`openssl`) and requires a password. The same `rediss://:password@host:port/db?ssl_ca_certs=...`
URL must work for the request path (`serving.redis_pipe.RedisPipe`), for Feast's own Redis
client (built from `feature_repo.config.redis_connection_string`, the string feature_store.yaml
gets) and for the stack manager's health check, while `recsys stack status` prints the address
without the password.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig

from feature_repo.config import redis_connection_string
from recsys.stack.redis_server import ping
from serving.redis_pipe import RedisPipe
from tests.integration.conftest import free_port

PASSWORD = "s3cret-pass-Fq9"


@dataclass(frozen=True)
class TlsRedis:
    """A TLS-only, password-protected redis-server and the files a client needs."""

    port: int
    ca: Path

    def url(self, password: str = PASSWORD, scheme: str = "rediss") -> str:
        return f"{scheme}://:{password}@127.0.0.1:{self.port}/0?ssl_ca_certs={self.ca}"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certificates(folder: Path) -> None:
    """A CA and a server certificate for 127.0.0.1 signed by it."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "1", "-subj", "/CN=recsys-test-ca", cwd=folder)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=127.0.0.1", cwd=folder)  # fmt: skip
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.pem", "-days", "1", "-extfile", "san.cnf", cwd=folder)  # fmt: skip


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    server, tool = shutil.which("redis-server"), shutil.which("openssl")
    assert server and tool, (
        "redis-server and openssl must be installed (make test runs `recsys stack prereqs`)"
    )
    folder = tmp_path_factory.mktemp("tls-redis")
    _certificates(folder)
    port = free_port()
    argv = [server, "--port", "0", "--bind", "127.0.0.1", "--tls-port", str(port),
            "--tls-cert-file", "server.pem", "--tls-key-file", "server.key", "--tls-ca-cert-file", "ca.pem",
            "--tls-auth-clients", "no", "--requirepass", PASSWORD, "--save", "", "--appendonly", "no",
            "--dir", str(folder)]  # fmt: skip
    log = (folder / "redis.log").open("w")
    proc = subprocess.Popen(argv, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    info = TlsRedis(port, folder / "ca.pem")
    try:
        deadline = time.monotonic() + 20
        while not ping(info.url()):
            assert proc.poll() is None, f"redis-server exited: {(folder / 'redis.log').read_text()[-2000:]}"
            assert time.monotonic() < deadline, "TLS redis-server did not answer PING in 20 s"
            time.sleep(0.1)
        yield info
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_the_request_path_reads_over_tls_with_the_password(tls_redis: TlsRedis) -> None:
    redis.Redis.from_url(tls_redis.url()).hset("user:1", mapping={"age": "31", "n": "4"})

    async def read(url: str) -> list[bytes | None]:
        pipe = RedisPipe(url)
        try:
            return await asyncio.wait_for(pipe.hmget(b"user:1", [b"age", b"n", b"missing"]), 5)
        finally:
            await pipe.aclose()

    assert asyncio.run(read(tls_redis.url())) == [b"31", b"4", None]
    with pytest.raises(Exception, match=r"(?i)WRONGPASS|invalid|auth"):
        asyncio.run(read(tls_redis.url(password="wrong-password-123")))
    # The port speaks TLS only: a plain-text client cannot use it.
    with pytest.raises((ConnectionError, OSError, asyncio.TimeoutError)):
        asyncio.run(read(tls_redis.url(scheme="redis")))


def test_a_server_certificate_from_an_unknown_ca_is_refused(tls_redis: TlsRedis) -> None:
    url = f"rediss://:{PASSWORD}@127.0.0.1:{tls_redis.port}/0"  # no ssl_ca_certs: the system CAs only

    async def read() -> object:
        pipe = RedisPipe(url)
        try:
            return await asyncio.wait_for(pipe.hmget(b"user:1", [b"age"]), 5)
        finally:
            await pipe.aclose()

    with pytest.raises(OSError, match=r"(?i)certificate"):
        asyncio.run(read())


def test_feasts_redis_client_connects_with_the_connection_string_we_build(tls_redis: TlsRedis) -> None:
    connection = redis_connection_string(tls_redis.url())
    assert "ssl=true" in connection and f"password={PASSWORD}" in connection
    client = RedisOnlineStore()._get_client(RedisOnlineStoreConfig(connection_string=connection))
    client.hset("movie:7", mapping={"cost": "1.5"})
    stored: object = redis.Redis.from_url(tls_redis.url()).hget("movie:7", "cost")
    assert stored == b"1.5"


def test_the_stack_status_finds_the_server_healthy_and_never_prints_the_password(
    tls_redis: TlsRedis, tmp_path: Path
) -> None:
    env = {**os.environ, "RECSYS_REDIS_URL": tls_redis.url(), "RECSYS_REDIS_EXTERNAL": "true",
           "RECSYS_VAR_DIR": str(tmp_path / "var")}  # fmt: skip
    done = subprocess.run([str(Path(sys.executable).parent / "recsys"), "stack", "status", "--json"], check=False, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert PASSWORD not in done.stdout + done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert rows["redis"]["state"] == "healthy", rows["redis"]
    assert rows["redis"]["address"] == f"rediss://127.0.0.1:{tls_redis.port}/0"
