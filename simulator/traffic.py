"""The traffic generator: sessions of the simulated world turned into course-format log lines, in steps.

Each step covers `step_ns` of simulated time and draws from its own generator (seed, step),
so a run is reproducible. A step creates accounts, starts sessions (existing users by
activity; new users soon after sign-up), lets the front end answer the browsing ones (open
loop: the legacy trending list; closed loop: the platform), decides the movie, watch length
and rating, and files every line in the timeline. Session start times follow the world's weekly
(and daily) rhythm; movies not yet out at the step's start are never watched (`simulator.temporal`); then it writes the lines due in the step
through the event codec (`events.format_line`), with the configured stream faults.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from events import AccountEvent, RateEvent, RecommendationEvent, WatchEvent, format_line
from simulator.behaviour import Behaviour
from simulator.clock import SimClock
from simulator.drift import DriftSchedule
from simulator.faults import StreamFaults
from simulator.frontend import FrontEnd
from simulator.recommend import RecommendClient
from simulator.settings import SimSettings
from simulator.temporal import Temporal
from simulator.timeline import ACCOUNT, RATE, REC, WATCH, Timeline, make_lines
from simulator.world import World

Mode = Literal["open", "closed"]
I64 = NDArray[np.int64]
SEC = 1_000_000_000
UNPACED_SESSIONS_PER_STEP = 2_000
"""Unpaced runs grow the step to about this many sessions (fewer, larger NumPy operations)."""
NEW_USER_FIRST_SESSION, NEW_USER_BROWSES = 0.9, 0.9


@dataclass(slots=True)
class Batch:
    """Lines of one step in write order, with their Kafka key (user id) and emission time."""

    lines: list[str]
    users: list[int]
    emit_ns: list[int]
    malformed: list[int]
    """Indices (into `lines`) of lines damaged on purpose."""
    end_ns: int
    """Simulated time at the end of the step."""


@dataclass(slots=True)
class TrafficStats:
    """Counters of a run."""

    lines: int = 0
    malformed: int = 0
    sessions: int = 0
    accounts: int = 0
    requests: int = 0
    requests_failed: int = 0
    accepted: int = 0
    """Sessions that watched a recommended movie."""
    by_kind: dict[str, int] = field(default_factory=lambda: {"watch": 0, "rate": 0, "account": 0, "rec": 0})
    accepted_lists: list[tuple[int, int]] = field(default_factory=list)
    """(user id, time of the recommendation line in ns) of each session that took a listed movie,
    kept only when the traffic was built with `record_accepted=True` (tests: the ground truth of hits)."""


class Traffic:
    """Generates the world's log lines step by step from `start_ns`."""

    def __init__(
        self,
        world: World,
        settings: SimSettings,
        mode: Mode,
        start_ns: int,
        *,
        next_user: int | None = None,
        recommender: RecommendClient | None = None,
        clock: SimClock | None = None,
        seed: int | None = None,
        record_accepted: bool = False,
    ) -> None:
        self.s = settings
        self.record_accepted = record_accepted
        self.clock = clock or SimClock(start_ns, 0.0)
        self.seed = world.meta.seed if seed is None else seed
        c, p = world.catalog, world.population
        self.n_users = len(p)
        self.slugs = c.slug
        schedule = DriftSchedule.for_world(list(settings.drifts), c, p)
        self.temporal = Temporal.for_world(world)
        self.behaviour = Behaviour(
            world.affinity_model(), schedule, runtime=c.runtime, popularity=c.popularity,
            movie_genres=c.genres, activity=p.activity, temporal=self.temporal,
        )  # fmt: skip
        self.frontend = FrontEnd(
            mode, settings, self.behaviour, c.slug, c.popularity,
            seed=self.seed, recommender=recommender, clock=self.clock,
        )  # fmt: skip
        step_s = settings.chunk_seconds
        if not self.clock.paced:
            step_s = min(3600.0, max(step_s, UNPACED_SESSIONS_PER_STEP * 3600 / settings.sessions_per_hour))
        self.step_ns = int(step_s * SEC)
        self.timeline = Timeline(start_ns, self.step_ns)
        self.step = 0
        self.next_user = (
            round(settings.initial_active_share * self.n_users) if next_user is None else next_user
        )
        self.faults = StreamFaults(
            settings.malformed_rate, settings.duplicate_rate, settings.late_rate,
            int(settings.late_max_seconds * SEC),
        )  # fmt: skip
        self.stats = TrafficStats()
        self._payloads: dict[int, RecommendationEvent] = {}
        self._payload_seq = 0
        self._later: tuple[I64, I64, NDArray[np.bool_]] = (
            np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool),
        )  # fmt: skip
        self._preroll(start_ns, settings.preroll_hours)

    @property
    def now_ns(self) -> int:
        """Start of the next step (simulated time reached so far)."""
        return self.timeline.origin_ns + self.step * self.step_ns

    def batches(self, until_ns: int | None = None) -> Iterator[Batch]:
        """Steps until simulated time `until_ns` (forever when None); lines due after it are not written."""
        while until_ns is None or self.now_ns < until_ns:
            yield self.advance(until_ns)

    def advance(self, until_ns: int | None = None) -> Batch:
        """Generate one step and return the lines due in it (and before `until_ns`)."""
        rng = np.random.default_rng([self.seed, 1, self.step])
        self.faults.seed(self.seed * 1_000_003 + self.step)
        t0 = self.now_ns
        self.timeline.add(self._sessions(rng, t0), not_before=self.step)
        due = self.timeline.pop(self.step)
        self.step += 1
        end_ns = t0 + self.step_ns
        if until_ns is not None and end_ns > until_ns:
            due, end_ns = due[due["emit"] < until_ns], until_ns
        return self._format(rng, due, end_ns)

    def _preroll(self, start_ns: int, hours: float) -> None:
        """File the remaining minutes of sessions begun in the `hours` before the start, so a run starts
        in the steady state (sessions in progress) instead of ramping up from an empty world. These
        sessions are existing users' own choices: no accounts, no recommendation calls, not counted."""
        steps = int(np.ceil(hours * 3600 * SEC / self.step_ns))
        counters, self.stats = self.stats, TrafficStats()
        for k in range(steps):
            t0 = start_ns - (steps - k) * self.step_ns
            lines = self._sessions(np.random.default_rng([self.seed, 3, k]), t0, live=False)
            self.timeline.add(lines[lines["emit"] >= start_ns])
        self.stats = counters

    def _starts(
        self, rng: np.random.Generator, t0: int, live: bool
    ) -> tuple[NDArray[np.void], I64, I64, NDArray[np.bool_]]:
        """Account lines, then (user index, start ns, browses?) of the sessions starting in the step."""
        step_h = self.step_ns / SEC / 3600
        n_new = min(int(rng.poisson(self.s.new_users_per_hour * step_h)), self.n_users - self.next_user)
        n_new = n_new if live else 0
        new_users = np.arange(self.next_user, self.next_user + n_new, dtype=np.int64)
        created = t0 + np.sort((rng.random(n_new) * self.step_ns).astype(np.int64))
        old_start = self.temporal.session_starts(rng, t0, t0 + self.step_ns, self.s.sessions_per_hour)
        old = self.behaviour.pick_users(rng, len(old_start), self.next_user)
        self.next_user += n_new
        self.stats.accounts += n_new
        first = rng.random(n_new) < NEW_USER_FIRST_SESSION
        n_first = int(first.sum())
        # New users come back 0.5 to 20 minutes after sign-up, often in a later step: such sessions
        # wait in `_later` until their step, so a closed-loop call is never made ahead of its time.
        users = np.concatenate([self._later[0], old, new_users[first]])
        start = np.concatenate([
            self._later[1],
            old_start[: len(old)],
            created[first] + ((30 + rng.random(n_first) * 1170) * SEC).astype(np.int64),
        ])  # fmt: skip
        browse = np.concatenate([
            self._later[2],
            (rng.random(len(old)) < self.s.rec_request_share) & live,
            rng.random(n_first) < NEW_USER_BROWSES,
        ])  # fmt: skip
        now = start < t0 + self.step_ns
        self._later = (users[~now], start[~now], browse[~now])
        order = np.argsort(start[now], kind="stable")
        zeros = np.zeros(n_new, np.int64)
        accounts = make_lines(created, new_users + 1, ACCOUNT, zeros, zeros)
        return accounts, users[now][order], start[now][order], browse[now][order]

    def _sessions(self, rng: np.random.Generator, t0: int, live: bool = True) -> NDArray[np.void]:
        """All lines of the accounts and sessions starting in the step at `t0` (`live=False`: pre-roll)."""
        accounts, users, start, browse = self._starts(rng, t0, live)
        self.stats.sessions += len(users)
        movie = np.full(len(users), -1, dtype=np.int64)
        aff = np.zeros(len(users), dtype=np.float32)
        delay_ms = np.zeros(len(users), dtype=np.int64)
        idx = np.flatnonzero(browse)
        shown = self.frontend.browse(rng, users[idx], start[idx], t0)
        movie[idx], aff[idx], delay_ms[idx] = shown.taken, shown.affinity, shown.response_ms
        self.stats.requests += len(idx)
        self.stats.requests_failed += shown.failed
        self.stats.accepted += int((shown.taken >= 0).sum())
        if self.record_accepted:
            took = shown.taken >= 0
            self.stats.accepted_lists.extend(
                zip((users[idx][took] + 1).tolist(), start[idx][took].tolist(), strict=True)
            )
        ids = np.arange(self._payload_seq, self._payload_seq + len(idx), dtype=np.int64)
        self._payload_seq += len(idx)
        self._payloads.update(zip(ids.tolist(), shown.events, strict=True))
        recs = make_lines(start[idx], users[idx] + 1, REC, np.zeros(len(idx), np.int64), ids)

        own = movie < 0
        movie[own], aff[own] = self.behaviour.own_choice(rng, users[own], t0)
        first_min, minutes, share = self.behaviour.watch(rng, movie, aff)
        browse_s = 5 + rng.random(len(users)) * 85
        watch_start = start + delay_ms * 1_000_000 + (browse_s * SEC).astype(np.int64)
        sess = np.repeat(np.arange(len(users)), minutes)
        offset = np.arange(len(sess)) - np.repeat(np.cumsum(minutes) - minutes, minutes)
        watch = make_lines(
            watch_start[sess] + offset * 60 * SEC,
            users[sess] + 1,
            WATCH,
            movie[sess],
            first_min[sess] + offset,
        )
        rates, stars = self.behaviour.rate(rng, aff, share, self.s.rating_share)
        r = np.flatnonzero(rates)
        rate_ts = (
            watch_start[r] + minutes[r] * 60 * SEC + ((10 + rng.random(len(r)) * 290) * SEC).astype(np.int64)
        )
        out = np.concatenate(
            [accounts, recs, watch, make_lines(rate_ts, users[r] + 1, RATE, movie[r], stars[r])]
        )
        out["emit"] += self.faults.delays(rng, len(out))
        return out

    def _format(self, rng: np.random.Generator, due: NDArray[np.void], end_ns: int) -> Batch:
        """Course-format lines of `due` through the event codec, then stream faults."""
        slugs, payloads = self.slugs, self._payloads
        lines: list[str] = []
        append = lines.append
        kinds = due["kind"]
        columns = (
            due["ts"].tolist(),
            due["user"].tolist(),
            kinds.tolist(),
            due["movie"].tolist(),
            due["value"].tolist(),
        )
        for ts, user, kind, movie, value in zip(*columns, strict=True):
            if kind == WATCH:
                append(format_line(WatchEvent(ts, user, slugs[movie], value)))
            elif kind == RATE:
                append(format_line(RateEvent(ts, user, slugs[movie], value)))
            elif kind == ACCOUNT:
                append(format_line(AccountEvent(ts, user)))
            else:
                append(format_line(payloads.pop(value)))
        counts = np.bincount(kinds, minlength=4)
        for name, k in (("watch", WATCH), ("rate", RATE), ("account", ACCOUNT), ("rec", REC)):
            self.stats.by_kind[name] += int(counts[k])
        out, users, emit, bad = self.faults.apply(rng, lines, due["user"].tolist(), due["emit"].tolist())
        self.stats.lines += len(out)
        self.stats.malformed += len(bad)
        return Batch(out, users, emit, bad, end_ns)
