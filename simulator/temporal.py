"""Time in the simulated world: release dates, new-release popularity that rises and decays, weekly rhythm.

- Releases: `released_share` of the catalogue is out before the simulated period
  [start, start + days); the rest comes out during it, uniformly, `friday_share` of them moved
  to the next Friday 00:00 UTC. With `steady_start`, the 4 τ days before the start see releases
  at the in-period rate, so the period opens with recent releases already in their decay.
- Attractiveness of a movie at time t, age a = t - release in days:
  m(a) = 0 before release; 1 + A * min(1, a / ramp) * exp(-a / τ) after (A = `hype_amplitude`,
  ramp = `hype_ramp_days`, τ = `hype_decay_days`); old movies are at ~1.
- Activity: sessions start at rate `sessions_per_hour` x w[weekday] x d[hour], both factors
  normalised to a mean of 1 (UTC), so the configured rate stays the weekly mean;
  d(h) = 1 + a cos(2π (h + 0.5 - peak) / 24), flat by default.

Release draws come from their own child of the world seed (see `simulator.world`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from simulator.world import World

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
DAY_S, YEAR_S = 86_400, 365.25 * 86_400
SEC = 1_000_000_000
HOUR_NS, DAY_NS = 3_600 * SEC, 86_400 * SEC
FRIDAY = 4
"""Weekday number of Friday (Monday = 0); 1970-01-01, day 0 of the epoch, was a Thursday (3)."""


class TemporalConfig(BaseModel):
    """Every knob of the temporal model; stored with the world (world.json) so all processes agree."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: datetime | None = Field(
        None, description="First instant of the simulated period (naive = UTC); None: 1 January of now_year."
    )
    days: float = Field(56.0, gt=0, description="Length of the simulated period in days.")
    released_share: float = Field(
        0.85, ge=0, le=1, description="Share of the catalogue already released when the period starts."
    )
    friday_share: float = Field(
        0.5, ge=0, le=1, description="Share of in-period releases moved to the next Friday 00:00 UTC."
    )
    steady_start: bool = Field(
        True, description="Releases in the 4 τ days before the start come at the in-period rate."
    )
    mean_age_years: float = Field(
        15.0, gt=0, description="Mean age (exponential) of the other pre-period movies at the start."
    )
    hype_amplitude: float = Field(
        5.0, ge=0, description="A: extra attractiveness of a new release, m = 1 + A ramp(a) exp(-a/τ)."
    )
    hype_ramp_days: float = Field(2.0, ge=0, description="Days over which the extra attractiveness ramps up.")
    hype_decay_days: float = Field(
        14.0, gt=0, description="τ: days for the extra attractiveness to fall by e."
    )
    weekday_weights: tuple[float, float, float, float, float, float, float] = Field(
        (1.0, 1.0, 1.0, 1.0, 1.0, 1.3, 1.3),
        description="Session activity by UTC weekday, Monday first (normalised to a mean of 1).",
    )
    daily_amplitude: float = Field(
        0.0, ge=0, lt=1, description="Hour-of-day rhythm a: d(h) = 1 + a cos(2π(h + 0.5 - peak)/24); 0: flat."
    )
    daily_peak_hour: float = Field(20.0, ge=0, lt=24, description="UTC hour of the daily activity peak.")

    @field_validator("start")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @field_validator("weekday_weights")
    @classmethod
    def _positive(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if min(value) <= 0:
            raise ValueError("weekday weights must be positive")
        return value

    @classmethod
    def static(cls, start: datetime | None = None) -> TemporalConfig:
        """No time effects: everything out before `start`, no new-release hype, flat activity."""
        return cls(start=start, released_share=1.0, hype_amplitude=0.0, weekday_weights=(1.0,) * 7)

    def centred(self, now: datetime) -> TemporalConfig:
        """This config with the period starting half its length before `now`'s day (midnight UTC), so a
        history ending now and a live run after it both fall inside the period."""
        day = int(now.timestamp()) // DAY_S - round(self.days / 2)
        return self.model_copy(update={"start": datetime.fromtimestamp(day * DAY_S, UTC)})

    def resolved(self, now_year: int) -> TemporalConfig:
        """This config with `start` filled in (1 January of `now_year` when unset)."""
        if self.start is not None:
            return self
        return self.model_copy(update={"start": datetime(now_year, 1, 1, tzinfo=UTC)})

    def period_s(self) -> tuple[int, int]:
        """(start, end) of the simulated period in unix seconds; `start` must be resolved."""
        if self.start is None:
            raise ValueError("the period has no start: call resolved(now_year) first")
        start = int(self.start.timestamp())
        return start, start + round(self.days * DAY_S)


def weekday(ts_s: I64) -> I64:
    """UTC weekday (Monday = 0) of unix seconds."""
    return np.asarray((ts_s // DAY_S + 3) % 7, dtype=np.int64)


def draw_releases(rng: np.random.Generator, n: int, cfg: TemporalConfig) -> I64:
    """Release time (unix seconds) of each of `n` movies for a resolved config."""
    start, end = cfg.period_s()
    n_new = round((1.0 - cfg.released_share) * n)
    order = rng.permutation(n)
    new, old = order[:n_new], order[n_new:]
    out = np.empty(n, dtype=np.int64)
    t = start + np.floor(rng.random(n_new) * (end - start)).astype(np.int64)
    midnight = -(-t // DAY_S)
    friday = (midnight + (FRIDAY - weekday(midnight * DAY_S)) % 7) * DAY_S
    snap = (rng.random(n_new) < cfg.friday_share) & (friday < end)
    out[new] = np.where(snap, friday, t)
    oldest = datetime.fromtimestamp(start, UTC).year - 1920
    age = np.minimum(rng.exponential(cfg.mean_age_years, len(old)), oldest)
    before = start - np.maximum(np.round(age * YEAR_S), 1).astype(np.int64)
    if cfg.steady_start and n_new:
        lookback = 4 * cfg.hype_decay_days * DAY_S
        k = min(len(old), round(n_new / cfg.days * 4 * cfg.hype_decay_days))
        before[:k] = start - 1 - np.floor(rng.random(k) * lookback).astype(np.int64)
    out[old] = before
    return out


def hype(age_days: F64, cfg: TemporalConfig) -> F64:
    """m(a): 0 before release, then 1 + A min(1, a/ramp) exp(-a/τ)."""
    a = np.maximum(age_days, 0.0)
    ramp = np.ones_like(a) if cfg.hype_ramp_days <= 0 else np.minimum(1.0, a / cfg.hype_ramp_days)
    m = 1.0 + cfg.hype_amplitude * ramp * np.exp(-a / cfg.hype_decay_days)
    return np.asarray(np.where(age_days < 0, 0.0, m), dtype=np.float64)


class Temporal:
    """The temporal model bound to a world's release times: gating, attractiveness and activity."""

    def __init__(self, cfg: TemporalConfig, release_s: I64) -> None:
        self.cfg = cfg
        self.release_s = np.asarray(release_s, dtype=np.int64)
        self._release_ns = self.release_s * SEC
        week = np.asarray(cfg.weekday_weights, dtype=np.float64)
        hours = np.arange(24) + 0.5
        day = 1.0 + cfg.daily_amplitude * np.cos(2 * np.pi * (hours - cfg.daily_peak_hour) / 24)
        self._hourly = np.outer(week / week.mean(), day / day.mean()).reshape(-1)
        """Activity by hour of the week (Monday 00:00 first), mean 1."""

    @classmethod
    def for_world(cls, world: World) -> Temporal:
        """The model of a world: its stored config (none for worlds made before time existed: static)."""
        cfg = world.meta.temporal or TemporalConfig.static()
        return cls(cfg, world.catalog.release_s)

    def released(self, ts_ns: int) -> NDArray[np.bool_]:
        """Per movie: out at `ts_ns`."""
        return np.asarray(self._release_ns <= ts_ns)

    def attractiveness(self, ts_ns: int) -> F64:
        """Per movie: the multiplier m at `ts_ns` (0 for movies not yet out)."""
        return hype((ts_ns - self._release_ns) / (DAY_S * SEC), self.cfg)

    def log_attractiveness(self, ts_ns: int) -> NDArray[np.float32]:
        """log m per movie (-inf for movies not yet out): what is added to choice scores."""
        with np.errstate(divide="ignore"):
            return np.log(self.attractiveness(ts_ns)).astype(np.float32)

    def activity(self, ts_ns: I64) -> F64:
        """Session-rate multiplier at each instant (weekly mean 1)."""
        hour_of_week = (weekday(ts_ns // SEC) * 24 + (ts_ns % DAY_NS) // HOUR_NS).astype(np.int64)
        return np.asarray(self._hourly[hour_of_week], dtype=np.float64)

    def session_starts(
        self, rng: np.random.Generator, t0_ns: int, t1_ns: int, per_hour: float = 0.0, n: int | None = None
    ) -> I64:
        """Sorted start times in [t0, t1): Poisson at `per_hour` x activity, or exactly `n` by activity."""
        if t1_ns <= t0_ns:
            return np.zeros(0, dtype=np.int64)
        hours = np.arange(t0_ns // HOUR_NS, -(-t1_ns // HOUR_NS), dtype=np.int64)
        lo = np.maximum(hours * HOUR_NS, t0_ns)
        length = np.minimum((hours + 1) * HOUR_NS, t1_ns) - lo
        weight = self.activity(hours * HOUR_NS) * length
        if n is None:
            n = int(rng.poisson(per_hour * weight.sum() / HOUR_NS))
        counts = rng.multinomial(n, weight / weight.sum())
        piece = np.repeat(np.arange(len(hours)), counts)
        starts = lo[piece] + np.floor(rng.random(n) * length[piece]).astype(np.int64)
        return np.sort(starts)
