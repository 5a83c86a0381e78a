"""Traffic state shared between runs and with the metadata API: <sim>/state.json.

`history` and `traffic` leave the simulated time they reached and the next new user id there,
so a live run continues a backfill; the metadata API reads the simulated time from it to apply
scheduled schema changes. Written atomically; a missing or unreadable file means "no state".
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

STATE = "state.json"


class TrafficState(BaseModel):
    """Where the simulated world's clock and account creation stand."""

    model_config = ConfigDict(extra="ignore")

    sim_now_ns: int = Field(description="Simulated time reached, nanoseconds since the epoch (UTC).")
    next_user: int = Field(description="Index of the next user to create an account (ids are index + 1).")
    world_seed: int = Field(description="Seed of the world the state belongs to.")
    world_users: int = Field(description="Users of the world the state belongs to.")
    updated_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def sim_now(self) -> datetime:
        """The simulated time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.sim_now_ns / 1e9, tz=UTC)


def read_state(sim_dir: Path) -> TrafficState | None:
    """The saved state, or None when absent or unreadable."""
    try:
        return TrafficState.model_validate_json((sim_dir / STATE).read_text())
    except (OSError, ValidationError):
        return None


def write_state(sim_dir: Path, state: TrafficState) -> None:
    """Replace the saved state atomically."""
    sim_dir.mkdir(parents=True, exist_ok=True)
    tmp = sim_dir / f"{STATE}.{os.getpid()}.tmp"
    tmp.write_text(state.model_dump_json(indent=2))
    os.replace(tmp, sim_dir / STATE)


class SimTimeReader:
    """The simulated time for readers in other processes, re-read at most once per `ttl_s`."""

    def __init__(self, sim_dir: Path, ttl_s: float = 1.0) -> None:
        self._sim_dir = sim_dir
        self._ttl_s = ttl_s
        self._read_at = -1e18
        self._value: int | None = None

    def now_ns(self) -> int:
        """Simulated now from the state file, else the wall clock."""
        mono = time.monotonic()
        if mono - self._read_at >= self._ttl_s:
            state = read_state(self._sim_dir)
            self._value = None if state is None else state.sim_now_ns
            self._read_at = mono
        return self._value if self._value is not None else time.time_ns()
