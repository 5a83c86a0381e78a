"""The risk study's poisoning probe: fake accounts watch and rate one obscure movie; does the next retrain push it?

A measurement of a gap, not a mitigation. On the risk benchmark's main arm after its days: the
script picks a released movie that almost nobody watched in the window and that the API did not
list for a sample of warm users, then `accounts` new user ids (no sign-up needed: nothing checks
that a user id was created) each watch `minutes` minutes of it and rate it `rating` stars, in
course-format lines produced to `movielog` like the front end's, dated in the two simulated
hours after the loop's end (the newest events: the hourly movie features count them, late ones
would not be folded back). The platform's own nightly path follows: ingestion, a retrain as `recsys train` runs it,
the API's hot swap. The same warm users are asked again: how many lists now hold the movie, and
at which rank. Nothing caps one account's weight (`docs/risk-analysis.md`, threats).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx


@dataclass
class PoisonRecord:
    """What the probe injected and what the lists did."""

    movie: str
    accounts: int
    minutes: int
    rating: int
    lines: int = 0
    lists_before: int = 0
    listed_before: int = 0
    lists_after: int = 0
    listed_after: int = 0
    ranks_after: list[int] = field(default_factory=list)
    champion_before: str | None = None
    champion_after: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the shares of lists holding the movie."""
        return asdict(self) | {
            "share_before": self.listed_before / self.lists_before if self.lists_before else None,
            "share_after": self.listed_after / self.lists_after if self.lists_after else None,
        }


def _lists(serving_url: str, users: list[int]) -> tuple[list[list[str]], str | None]:
    """Each user's answered list, and the model version of the last answer."""
    out, version = [], None
    with httpx.Client(timeout=5) as client:
        for user in users:
            r = client.get(f"{serving_url}/recommend/{user}")
            if r.status_code == 200:
                out.append([m for m in r.text.strip().split(",") if m])
                version = r.headers.get("X-Model-Version", version)
    return out, version


def run_poison(
    serving_url: str,
    movie: str,
    users: list[int],
    start_ns: int,
    retrain: Callable[[], Any],
    first_fake_user: int,
    accounts: int = 200,
    minutes: int = 30,
    rating: int = 5,
    log: Callable[[str], None] = print,
) -> PoisonRecord:
    """Inject the fake accounts' watches and ratings of `movie` from `start_ns` on, retrain (the callable), compare lists."""
    from events.codec import format_line
    from events.topics import MOVIELOG
    from events.types import RateEvent, WatchEvent
    from simulator.sinks import KafkaSink

    t0 = time.monotonic()
    rec = PoisonRecord(movie, accounts, minutes, rating)
    before, rec.champion_before = _lists(serving_url, users)
    rec.lists_before, rec.listed_before = len(before), sum(movie in x for x in before)
    lines: list[str] = []
    ids: list[int] = []
    emit: list[int] = []
    span = 2 * 3600 * 10**9
    for i in range(accounts):
        user = first_fake_user + i
        start = start_ns + i * (span // (accounts + 1))
        for m in range(minutes):
            lines.append(format_line(WatchEvent(start + m * 60 * 10**9, user, movie, m, 0)))
        lines.append(format_line(RateEvent(start + minutes * 60 * 10**9, user, movie, rating, 0)))
        ids += [user] * (minutes + 1)
        emit += [start] * (minutes + 1)
    sink = KafkaSink(MOVIELOG)
    sink.write(lines, ids, emit)
    sink.close()
    rec.lines = len(lines)
    log(
        f"poison: {len(lines):,} lines of {accounts} fake accounts watching and rating {movie} ({sink.failed} failed)"
    )
    retrain()
    after, rec.champion_after = _lists(serving_url, users)
    rec.lists_after, rec.listed_after = len(after), sum(movie in x for x in after)
    rec.ranks_after = sorted(x.index(movie) + 1 for x in after if movie in x)
    rec.seconds = round(time.monotonic() - t0, 1)
    log(f"poison: {movie} in {rec.listed_before}/{rec.lists_before} lists before ({rec.champion_before}), "
        f"{rec.listed_after}/{rec.lists_after} after the retrain ({rec.champion_after})")  # fmt: skip
    return rec
