"""Open-loop traffic: the contract of every line, determinism, stream faults, drifts, backfill files."""

from __future__ import annotations

import gzip
import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from events import (
    AccountEvent,
    ParseError,
    RateEvent,
    RecommendationEvent,
    WatchEvent,
    format_line,
    parse_line,
)
from simulator.drift import GenreSurge
from simulator.history import backfill
from simulator.settings import SimSettings
from simulator.sinks import ListSink
from simulator.state import read_state
from simulator.traffic import Traffic
from simulator.vocab import GENRE_NAMES
from simulator.world import World, generate_world

START = datetime(2026, 1, 1, tzinfo=UTC)
START_NS = int(START.timestamp()) * 10**9
HOUR = 3600 * 10**9


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(2_000, 300, seed=21)


def _run(
    world: World, hours: float, seed: int = 1, **settings: object
) -> tuple[list[str], list[int], Traffic]:
    settings.setdefault("preroll_hours", 0.0)  # most tests do not need sessions already running
    traffic = Traffic(world, SimSettings(**settings), "open", START_NS, seed=seed)  # type: ignore[arg-type]
    lines: list[str] = []
    bad: list[int] = []
    for batch in traffic.batches(START_NS + int(hours * HOUR)):
        bad += [len(lines) + i for i in batch.malformed]
        lines += batch.lines
    return lines, bad, traffic


@pytest.fixture(scope="module")
def clean(world: World) -> tuple[list[str], list[int], Traffic]:
    return _run(world, 3, sessions_per_hour=1_500, new_users_per_hour=200)


def test_every_clean_line_parses_and_formats_back(clean: tuple[list[str], list[int], Traffic]) -> None:
    lines, bad, traffic = clean
    assert bad == [] and len(lines) > 50_000
    kinds: Counter[str] = Counter()
    for line in lines:
        event = parse_line(line)
        assert not isinstance(event, ParseError), (line, event)
        assert format_line(event) == line
        kinds[type(event).__name__] += 1
    assert set(kinds) == {"WatchEvent", "RateEvent", "AccountEvent", "RecommendationEvent"}
    assert traffic.stats.lines == len(lines)
    assert kinds["RecommendationEvent"] == traffic.stats.by_kind["rec"]


def test_clean_stream_is_in_time_order_and_starts_with_accounts(
    clean: tuple[list[str], list[int], Traffic], world: World
) -> None:
    lines = clean[0]
    events = [parse_line(line) for line in lines]
    times = [e.ts_ns for e in events if not isinstance(e, ParseError)]
    assert times == sorted(times)
    assert times[0] >= START_NS and times[-1] < START_NS + 3 * HOUR
    initial = round(SimSettings().initial_active_share * len(world.population))
    created = [e.user_id for e in events if isinstance(e, AccountEvent)]
    assert created == list(range(initial + 1, initial + 1 + len(created)))
    first_seen: dict[int, int] = {}
    for i, e in enumerate(events):
        if not isinstance(e, ParseError):
            first_seen.setdefault(e.user_id, i)
    assert all(isinstance(events[first_seen[u]], AccountEvent) for u in created)  # nothing before sign-up


def test_open_loop_request_lines_log_the_trending_list(clean: tuple[list[str], list[int], Traffic]) -> None:
    recs = [e for e in map(parse_line, clean[0]) if isinstance(e, RecommendationEvent)]
    assert recs and all(e.status == 200 and len(e.results) == 20 and e.error is None for e in recs)
    assert {e.server for e in recs} == {SimSettings().open_loop_server}


def test_sessions_are_minutes_in_sequence_and_ratings_are_stars(
    clean: tuple[list[str], list[int], Traffic],
) -> None:
    events = [e for e in map(parse_line, clean[0]) if isinstance(e, WatchEvent | RateEvent)]
    by_session: dict[tuple[int, str], list[WatchEvent]] = {}
    for e in events:
        if isinstance(e, WatchEvent):
            by_session.setdefault((e.user_id, e.movie_id), []).append(e)
        else:
            assert 1 <= e.rating <= 5
    steps = {b.minute - a.minute for s in by_session.values() for a, b in itertools.pairwise(s)}
    assert 1 in steps
    gaps = {b.ts_ns - a.ts_ns for s in by_session.values() for a, b in itertools.pairwise(s)}
    assert 60 * 10**9 in gaps


def test_same_seed_same_stream_other_seed_other_stream(world: World) -> None:
    a, _, _ = _run(world, 1, seed=5, malformed_rate=0.01, duplicate_rate=0.01, late_rate=0.01)
    b, _, _ = _run(world, 1, seed=5, malformed_rate=0.01, duplicate_rate=0.01, late_rate=0.01)
    c, _, _ = _run(world, 1, seed=6, malformed_rate=0.01, duplicate_rate=0.01, late_rate=0.01)
    assert a == b
    assert a != c


def test_injected_malformed_lines_are_exactly_the_rejected_ones(world: World) -> None:
    lines, bad, traffic = _run(world, 2, malformed_rate=0.03, duplicate_rate=0.02, late_rate=0.02)
    rejected = [i for i, line in enumerate(lines) if isinstance(parse_line(line), ParseError)]
    assert rejected == bad
    assert len(bad) == traffic.stats.malformed
    assert 0.02 < len(bad) / len(lines) < 0.04
    assert all("\n" not in line and "\r" not in line for line in lines)
    reasons = Counter(r.reason for r in (parse_line(lines[i]) for i in bad) if isinstance(r, ParseError))
    assert len(reasons) >= 6  # many kinds of damage, not one


def test_duplicates_and_late_lines(world: World) -> None:
    lines, _, _ = _run(world, 2, duplicate_rate=0.02, late_rate=0.02, late_max_seconds=300)
    repeats = sum(a == b for a, b in itertools.pairwise(lines))
    assert 0.01 < repeats / len(lines) < 0.03
    times = [e.ts_ns for e in map(parse_line, lines) if not isinstance(e, ParseError)]
    behind = sum(t < m for t, m in zip(times[1:], np.maximum.accumulate(times)[:-1], strict=True))
    assert 0.01 < behind / len(times) < 0.03


def test_genre_surge_raises_the_genres_share_of_watches(world: World) -> None:
    horror = {
        s
        for s, g in zip(world.catalog.slug, world.catalog.genres[:, GENRE_NAMES.index("Horror")], strict=True)
        if g
    }
    surge = GenreSurge(start=START + timedelta(hours=3), genre="Horror", factor=6.0)
    lines, _, _ = _run(world, 6, sessions_per_hour=2_000, drifts=[surge])
    cut = int((START + timedelta(hours=3)).timestamp()) * 10**9
    first_minutes = (parse_line(line) for line in lines if line.endswith("/0.mpg"))
    starts = [e for e in first_minutes if isinstance(e, WatchEvent)]
    before = np.mean([e.movie_id in horror for e in starts if e.ts_ns < cut])
    after = np.mean([e.movie_id in horror for e in starts if e.ts_ns >= cut + HOUR])
    assert after > 1.5 * before


def test_backfill_writes_daily_gzip_files_and_state(world: World, tmp_path: Path) -> None:
    settings = SimSettings(var_dir=tmp_path / "var", sessions_per_hour=400)
    start = int(datetime(2026, 2, 1, 20, tzinfo=UTC).timestamp()) * 10**9
    result, files = backfill(world, settings, 0.25, start_ns=start, to_kafka=False, out_dir=tmp_path / "logs",
                             progress=False)  # fmt: skip
    assert [f.name for f in files] == ["movielog-2026-02-01.log.gz", "movielog-2026-02-02.log.gz"]
    lines = [raw.decode() for f in files for raw in gzip.decompress(f.read_bytes()).splitlines()]
    assert len(lines) == result.stats.lines > 0
    assert all(not isinstance(parse_line(line), ParseError) for line in lines)
    state = read_state(settings.sim_dir)
    assert state is not None and state.sim_now_ns == start + 6 * HOUR and state.world_seed == 21


def test_list_sink_keeps_keys_and_times(world: World) -> None:
    traffic = Traffic(world, SimSettings(), "open", START_NS)
    sink = ListSink()
    batch = traffic.advance()
    sink.write(batch.lines, batch.users, batch.emit_ns)
    for line, user in zip(sink.lines[:200], sink.users, strict=False):
        assert line.split(",")[1] == str(user)


def test_preroll_starts_in_the_steady_state(world: World) -> None:
    def watch_lines_per_hour(preroll: float) -> list[int]:
        lines, _, _ = _run(world, 6, sessions_per_hour=1_000, preroll_hours=preroll)
        hours = [0] * 6
        for line in lines:
            if "/data/m/" in line:
                hours[
                    (
                        int(datetime.fromisoformat(line[:19]).replace(tzinfo=UTC).timestamp()) * 10**9
                        - START_NS
                    )
                    // HOUR
                ] += 1
        return hours

    cold, warm = watch_lines_per_hour(0.0), watch_lines_per_hour(4.0)
    assert cold[0] < 0.7 * cold[5]  # an empty world ramps up for hours
    assert 0.8 * warm[5] < warm[0] < 1.25 * warm[5]  # a pre-rolled one does not
