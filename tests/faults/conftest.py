"""Fault-suite fixtures: the integration suite's real Kafka and Redis (started by the stack manager), re-exported.

Nothing here mocks a service or skips a test: if Kafka or Redis cannot start, the `stack` fixture
raises and every test that needs it errors loudly.
"""

from __future__ import annotations

from tests.integration.conftest import (
    StackInfo,
    free_port,
    own_redis,
    private_redis_server,
    stack,
    topic,
    wait_until,
)

__all__ = ["StackInfo", "free_port", "own_redis", "private_redis_server", "stack", "topic", "wait_until"]
