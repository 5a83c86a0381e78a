"""What every stack component offers the manager: status, start, stop."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class State(StrEnum):
    """Health of a component as `recsys stack status` shows it."""

    HEALTHY = "healthy"
    STOPPED = "stopped"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True)
class ComponentStatus:
    """One row of `recsys stack status`."""

    name: str
    address: str
    state: State
    managed: bool
    """True when this stack started it (pid file under var/run); False for external or foreign ones."""
    pid: int | None = None
    detail: str = ""


class Component(Protocol):
    """A service of the local stack."""

    name: str

    def status(self) -> ComponentStatus:
        """Current health, without side effects."""
        ...

    def up(self) -> ComponentStatus:
        """Start if needed (idempotent) and wait until healthy."""
        ...

    def down(self) -> bool:
        """Stop if we started it; True when something was stopped."""
        ...
