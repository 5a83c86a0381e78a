"""Team-Draft Interleaving (Radlinski, Kurup & Joachims, CIKM 2008): one list merged from two models' rankings.

In each round the team with fewer picks so far picks next; when both have as many, a coin decides.
The picking team adds its highest-ranked movie not already in the merged list. A team whose list is
used up passes its turn to the other, so the merge stops only at `k` or when both lists are used up.
Every position remembers which team placed it: a later watch of that movie is a click for that
team (`monitoring.interleave_credit`).

The coins come from BLAKE2b over the seed (the request id), not from `random`: the same request id
gives the same list in every process, Python version and language, so a logged answer can be
rebuilt and checked. The record string (`to_record`) is one character per position, `A` or `B`,
plain text so monitoring can parse it without importing serving.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

TEAM_A: Final = "A"
"""The first model's team (the `a` list of `team_draft`)."""
TEAM_B: Final = "B"
"""The second model's team (the `b` list of `team_draft`)."""
TEAMS: Final = frozenset({TEAM_A, TEAM_B})
_PERSON: Final = b"team-draft"
"""BLAKE2b personalisation: the coins are independent of any other hash of the same string (e.g. the
experiment bucket of `"<salt>:<user_id>"`), so the interleaving coins cannot correlate with arm assignment."""


@dataclass(frozen=True)
class Interleaved:
    """An interleaved answer: the merged movies and, position by position, the team that placed each."""

    movies: tuple[str, ...]
    teams: tuple[str, ...]
    """`A` or `B` per position of `movies`."""

    def __post_init__(self) -> None:
        if len(self.movies) != len(self.teams):
            raise ValueError(f"{len(self.movies)} movies but {len(self.teams)} teams")
        if len(set(self.movies)) != len(self.movies):
            raise ValueError("an interleaved list cannot repeat a movie")
        bad = set(self.teams) - TEAMS
        if bad:
            raise ValueError(f"teams must be 'A' or 'B', got {sorted(bad)}")

    def team_of(self, movie: str) -> str | None:
        """The team that placed a movie (None: the movie is not in the list)."""
        try:
            return self.teams[self.movies.index(movie)]
        except ValueError:
            return None

    def to_record(self) -> str:
        """The teams as one character per position (`"ABBA…"`), for the provenance record next to the list."""
        return "".join(self.teams)

    @classmethod
    def from_record(cls, movies: Sequence[str], record: str) -> Interleaved:
        """Rebuild from the answered list and its `to_record` string; ValueError if they do not fit together."""
        return cls(tuple(movies), tuple(record))


def team_draft(a: Sequence[str], b: Sequence[str], k: int, seed: int | bytes | str) -> Interleaved:
    """Merge two rankings by team draft into at most `k` distinct movies; the same seed gives the same list."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    ranked = {TEAM_A: a, TEAM_B: b}
    cursor = {TEAM_A: 0, TEAM_B: 0}  # next unread rank in each list: both lists are read once, O(|a| + |b|)
    picks = {TEAM_A: 0, TEAM_B: 0}
    placed: set[str] = set()
    movies: list[str] = []
    teams: list[str] = []
    coins = _coins(seed)

    def next_of(team: str) -> str | None:
        """The team's highest-ranked movie not yet placed (advances its cursor past placed ones)."""
        items, i = ranked[team], cursor[team]
        while i < len(items) and items[i] in placed:
            i += 1
        cursor[team] = i
        return items[i] if i < len(items) else None

    while len(movies) < k:
        if picks[TEAM_A] == picks[TEAM_B]:
            # A coin only on a tie: the team behind always catches up, so over a round of two picks
            # each team leads half the time and neither gets the top position systematically.
            first = TEAM_A if next(coins) else TEAM_B
        else:
            first = TEAM_A if picks[TEAM_A] < picks[TEAM_B] else TEAM_B
        team = first
        movie = next_of(team)
        if movie is None:  # this team is used up: the other keeps filling the list
            team = TEAM_B if first == TEAM_A else TEAM_A
            movie = next_of(team)
            if movie is None:
                break
        placed.add(movie)
        movies.append(movie)
        teams.append(team)
        picks[team] += 1
    return Interleaved(tuple(movies), tuple(teams))


def _seed_bytes(seed: int | bytes | str) -> bytes:
    if isinstance(seed, bytes):
        return seed
    return str(seed).encode()  # an int seeds like its decimal string: request id 42 and "42" agree


def _coins(seed: int | bytes | str) -> Iterator[bool]:
    """Fair coins, most significant bit first, from BLAKE2b-512 blocks of the seed (block number as salt)."""
    data = _seed_bytes(seed)
    block = 0
    while True:  # one block (512 coins) covers any k up to 1024; more blocks only for longer lists
        digest = hashlib.blake2b(
            data, digest_size=64, person=_PERSON, salt=block.to_bytes(16, "big")
        ).digest()
        for byte in digest:
            for shift in range(7, -1, -1):
                yield bool((byte >> shift) & 1)
        block += 1
