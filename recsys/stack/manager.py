"""The stack as a whole: which components exist, bringing them up and down in order, and their status."""

from __future__ import annotations

from recsys.settings import StackSettings, get_settings
from recsys.stack.base import Component, ComponentStatus, State
from recsys.stack.errors import StackError
from recsys.stack.kafka import KafkaBroker
from recsys.stack.monitoring import Alertmanager, Prometheus
from recsys.stack.redis_server import RedisServer

CORE = ("kafka", "redis")
"""What `recsys stack up` starts by default (and what the tests need)."""
MONITORING = ("prometheus", "alertmanager")
"""Started by `recsys stack up --monitoring`."""


class Stack:
    """Kafka and Redis always; Prometheus and Alertmanager on request."""

    def __init__(self, settings: StackSettings | None = None) -> None:
        self.settings = settings or get_settings()
        self.components: dict[str, Component] = {
            "kafka": KafkaBroker(self.settings),
            "redis": RedisServer(self.settings),
            "prometheus": Prometheus(self.settings),
            "alertmanager": Alertmanager(self.settings),
        }

    def _select(self, names: tuple[str, ...] | list[str]) -> list[Component]:
        unknown = [n for n in names if n not in self.components]
        if unknown:
            raise StackError(
                f"unknown component(s): {', '.join(unknown)}; known: {', '.join(self.components)}"
            )
        return [self.components[n] for n in names]

    def up(self, names: tuple[str, ...] | list[str] = CORE) -> list[ComponentStatus]:
        """Start what is not running (idempotent) and return the statuses once all are healthy."""
        return [component.up() for component in self._select(names)]

    def down(self, names: tuple[str, ...] | list[str] | None = None) -> list[str]:
        """Stop the components we started, in reverse order; return the names stopped."""
        chosen = self._select(names or list(self.components))
        return [c.name for c in reversed(chosen) if c.down()]

    def status(self, names: tuple[str, ...] | list[str] | None = None) -> list[ComponentStatus]:
        """Health of every component."""
        return [c.status() for c in self._select(names or list(self.components))]

    def healthy(self, names: tuple[str, ...] | list[str] = CORE) -> bool:
        """True when all the named components are healthy."""
        return all(s.state is State.HEALTHY for s in self.status(names))


__all__ = ["CORE", "MONITORING", "ComponentStatus", "Stack", "StackError"]
