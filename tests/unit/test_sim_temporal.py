"""Time in the simulator: releases around the period, no play before release, rise and decay, weekly rhythm."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from benchmarks import training as bench
from simulator.behaviour import Behaviour
from simulator.drift import DriftSchedule
from simulator.frontend import FrontEnd
from simulator.settings import SimSettings
from simulator.store import TRUTH_MOVIES, load_world, save_world
from simulator.temporal import DAY_S, SEC, Temporal, TemporalConfig, hype
from simulator.traffic import Traffic
from simulator.truth import Truth
from simulator.world import World, generate_world

MONDAY = datetime(2026, 3, 2, tzinfo=UTC)
MONDAY_NS = int(MONDAY.timestamp()) * SEC
DAY_NS = DAY_S * SEC


def _behaviour(world: World) -> Behaviour:
    c, p = world.catalog, world.population
    return Behaviour(
        world.affinity_model(), DriftSchedule.for_world([], c, p), runtime=c.runtime, popularity=c.popularity,
        movie_genres=c.genres, activity=p.activity, temporal=Temporal.for_world(world),
    )  # fmt: skip


@pytest.fixture(scope="module")
def week() -> tuple[World, Traffic, list[str], list[int]]:
    """A week of open-loop traffic (Monday to Sunday) in a world whose period is that week; sessions per day."""
    world = generate_world(
        400, 150, seed=8, temporal=TemporalConfig(start=MONDAY, days=7, released_share=0.6)
    )
    settings = SimSettings(sessions_per_hour=40, new_users_per_hour=0, preroll_hours=0, rec_request_share=0.3)
    traffic = Traffic(world, settings, "open", MONDAY_NS, seed=3)
    lines: list[str] = []
    per_day = [0] * 7
    seen = 0
    for batch in traffic.batches(MONDAY_NS + 7 * DAY_NS):
        lines += batch.lines
        per_day[(batch.end_ns - 1 - MONDAY_NS) // DAY_NS] += traffic.stats.sessions - seen
        seen = traffic.stats.sessions
    return world, traffic, lines, per_day


def test_same_seed_same_releases_other_seed_other_releases() -> None:
    cfg = TemporalConfig(start=MONDAY, days=28)
    a, b = generate_world(300, 400, seed=4, temporal=cfg), generate_world(300, 400, seed=4, temporal=cfg)
    assert np.array_equal(a.catalog.release_s, b.catalog.release_s) and a.meta.temporal == b.meta.temporal
    assert not np.array_equal(
        a.catalog.release_s, generate_world(300, 400, seed=5, temporal=cfg).catalog.release_s
    )
    t = Temporal(cfg, a.catalog.release_s)
    draw = [
        t.session_starts(np.random.default_rng(9), MONDAY_NS, MONDAY_NS + DAY_NS, 500.0) for _ in range(2)
    ]
    assert np.array_equal(draw[0], draw[1]) and len(draw[0]) > 0


@pytest.mark.parametrize("share", [0.85, 0.6])
def test_the_configured_share_is_out_before_the_period_and_the_rest_comes_during_it(share: float) -> None:
    cfg = TemporalConfig(start=MONDAY, days=28, released_share=share)
    c = generate_world(200, 2_000, seed=6, temporal=cfg).catalog
    start, end = cfg.period_s()
    before = c.release_s < start
    assert before.mean() == pytest.approx(share, abs=0.001)
    assert ((c.release_s[~before] >= start) & (c.release_s[~before] < end)).all()
    fridays = ((c.release_s[~before] // DAY_S + 3) % 7 == 4).mean()
    assert fridays > 0.4  # half are moved to a Friday; a seventh of the others fall on one
    # The public date, the year and the slug's year are the release time's (UTC).
    for r, date, year, slug in zip(
        c.release_s.tolist(), c.release_date, c.year.tolist(), c.slug, strict=True
    ):
        assert date == datetime.fromtimestamp(r, UTC).date().isoformat()
        assert year == int(date[:4]) == int(slug.rsplit("+", 1)[1])


def test_popularity_rises_after_release_then_decays_to_one() -> None:
    cfg = TemporalConfig(hype_amplitude=5.0, hype_ramp_days=2.0, hype_decay_days=14.0)
    m = hype(np.array([-1.0, 0.0, 1.0, 2.0, 7.0, 14.0, 28.0, 365.0]), cfg)
    assert m[0] == 0.0 and m[1] == 1.0  # not out yet; out, not yet noticed
    assert m[3] == pytest.approx(1 + 5 * np.exp(-2 / 14)) and m[2] < m[3]
    assert m[3] > m[4] > m[5] > m[6] > 1.0 and m[7] == pytest.approx(1.0, abs=1e-9)


def test_live_traffic_never_plays_a_movie_before_its_release(
    week: tuple[World, Traffic, list[str], list[int]],
) -> None:
    world, _, lines, _ = week
    index = {slug: i for i, slug in enumerate(world.catalog.slug)}
    release = world.catalog.release_s
    played = checked = 0
    start, _ = world.meta.temporal.period_s()  # type: ignore[union-attr]
    for line in lines:
        ts, _, request = line.split(",", 2)
        if request.startswith("GET /data/m/") or request.startswith("GET /rate/"):
            slug = (
                request.split("/")[3] if "/data/" in request else request[len("GET /rate/") :].split("=")[0]
            )
            movie = index[slug]
            when = int(datetime.fromisoformat(ts).replace(tzinfo=UTC).timestamp())
            assert when >= release[movie], line
            checked += 1
            played += int(release[movie] >= start)
    assert checked > 100_000 and played > 1_000  # movies released during the week were watched


def test_weekend_days_get_more_sessions_by_the_configured_ratio(
    week: tuple[World, Traffic, list[str], list[int]],
) -> None:
    per_day = week[3]
    ratio = np.mean(per_day[5:]) / np.mean(per_day[:5])
    assert ratio == pytest.approx(1.3, abs=0.12)
    assert sum(per_day) == pytest.approx(40 * 24 * 7, rel=0.05)  # the configured rate is the weekly mean
    t = Temporal(TemporalConfig(), np.zeros(1, np.int64))
    starts = t.session_starts(np.random.default_rng(1), MONDAY_NS, MONDAY_NS + 28 * DAY_NS, n=200_000)
    days = np.bincount((starts - MONDAY_NS) // DAY_NS % 7, minlength=7)
    assert np.mean(days[5:]) / np.mean(days[:5]) == pytest.approx(1.3, abs=0.03)


def test_evening_peak_when_a_daily_rhythm_is_set() -> None:
    t = Temporal(TemporalConfig(daily_amplitude=0.5, daily_peak_hour=20), np.zeros(1, np.int64))
    starts = t.session_starts(np.random.default_rng(2), MONDAY_NS, MONDAY_NS + 14 * DAY_NS, n=100_000)
    hours = np.bincount((starts % DAY_NS) // (3600 * SEC), minlength=24)
    assert hours[20] > 2.5 * hours[8] and int(np.argmax(hours)) in (19, 20, 21)


def test_unreleased_movies_are_neither_chosen_accepted_nor_trending() -> None:
    world = generate_world(
        500, 300, seed=9, temporal=TemporalConfig(start=MONDAY, days=14, released_share=0.5)
    )
    b = _behaviour(world)
    out = world.catalog.release_s * SEC <= MONDAY_NS
    rng = np.random.default_rng(0)
    users = b.pick_users(rng, 3_000, 500)
    movies, _ = b.own_choice(rng, users, MONDAY_NS)
    assert out[movies].all()
    future = np.flatnonzero(~out)
    lists = np.tile(future[:20], (len(users), 1))
    taken, _ = b.accept(rng, users, lists, MONDAY_NS)
    assert (taken == -1).all()
    taken, _ = b.accept(rng, users, lists, MONDAY_NS + 15 * DAY_NS)  # all out by then
    assert (taken >= 0).mean() > 0.1
    front = FrontEnd("open", SimSettings(), b, world.catalog.slug, world.catalog.popularity, seed=1)
    index = {s: i for i, s in enumerate(world.catalog.slug)}
    assert all(out[index[s]] for s in front.trending(MONDAY_NS))


def _plays_by_age(world: World, s: dict[str, Any]) -> tuple[float, float]:
    """Plays per movie in days 0-7 and 14-21 after release, over movies released in the period's first week."""
    release = world.catalog.release_s
    start, _ = world.meta.temporal.period_s()  # type: ignore[union-attr]
    early = np.flatnonzero((release >= start) & (release < start + 7 * DAY_S))
    age = (s["start"] // SEC - release[s["movie"]]) / DAY_S
    mine = np.isin(s["movie"], early)
    first, third = (age < 7) & mine, (age >= 14) & (age < 21) & mine
    return float(first.sum() / len(early)), float(third.sum() / len(early))


@pytest.mark.parametrize("amplitude", [5.0, 0.0])
def test_benchmark_sessions_respect_releases_and_rise_then_decay(amplitude: float) -> None:
    cfg = TemporalConfig(start=bench.START, days=28, released_share=0.7, hype_amplitude=amplitude)
    world = generate_world(3_000, 400, seed=12, temporal=cfg)
    s = bench.simulate_sessions(world, 60_000, 28, 12, 0.25)
    assert len(s["user"]) == 60_000
    assert (s["start"] >= world.catalog.release_s[s["movie"]] * SEC).all()
    first_week, third_week = _plays_by_age(world, s)
    if amplitude:
        assert first_week > 2.0 * third_week > 0
    else:  # without hype, a new release is about as watched in its third week as in its first
        assert 0.6 * third_week < first_week < 1.6 * third_week
    days = np.bincount((s["start"] - int(bench.START.timestamp()) * SEC) // DAY_NS % 7, minlength=7)
    weekday = bench.START.weekday()
    weekend = [(5 - weekday) % 7, (6 - weekday) % 7]
    assert days[weekend].mean() / np.delete(days, weekend).mean() == pytest.approx(1.3, abs=0.06)


def test_world_keeps_its_release_times_and_the_oracle_leaves_out_unreleased_movies(tmp_path: Path) -> None:
    cfg = TemporalConfig(start=MONDAY, days=14, released_share=0.5)
    world = generate_world(200, 200, seed=13, temporal=cfg)
    save_world(world, tmp_path / "sim")
    loaded = load_world(tmp_path / "sim", texts=False)
    assert np.array_equal(loaded.catalog.release_s, world.catalog.release_s) and loaded.meta.temporal == cfg
    truth = Truth(loaded, SimSettings())
    out = truth.released(MONDAY)
    assert 0 < out.sum() < len(out)
    ranked = truth.oracle_ranking([1, 2, 3], k=150, at=MONDAY)
    index = {m: i for i, m in enumerate(truth.movie_ids)}
    assert all(len(r) == 100 and all(out[index[m]] for m in r) for r in ranked.values())
    assert all(out[index[m]] for m, _ in truth.top_movies(1, k=20, at=MONDAY))
    later = truth.oracle_ranking([1], k=20, at=MONDAY + timedelta(days=15))[1]
    assert later == truth.oracle_ranking([1], k=20)[1]  # everything out: the timeless ranking
    assert np.isneginf(truth.oracle_scores([1], MONDAY)[0, ~out]).all()
    # A world stored before release times existed: each movie came out at midnight of its date.
    table = pq.read_table(tmp_path / "sim" / TRUTH_MOVIES).drop_columns(["release_s"])
    pq.write_table(table, tmp_path / "sim" / TRUTH_MOVIES)
    old = load_world(tmp_path / "sim", texts=False).catalog
    assert np.array_equal(old.release_s, world.catalog.release_s // DAY_S * DAY_S)


def test_cli_world_takes_the_period_and_centres_it_on_today_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from simulator.cli import app
    from simulator.settings import get_sim_settings
    from simulator.store import load_meta

    monkeypatch.setenv("RECSYS_VAR_DIR", str(tmp_path))
    get_sim_settings.cache_clear()
    try:
        knobs = tmp_path / "knobs.json"
        knobs.write_text('{"hype_amplitude": 7.0, "weekday_weights": [1, 1, 1, 1, 1.2, 1.5, 1.5]}')
        args = ["world", "--users", "200", "--movies", "50", "--period-days", "10", "--temporal", str(knobs)]
        r = CliRunner().invoke(app, [*args, "--period-start", "2026-02-01"])
        assert r.exit_code == 0, r.output
        cfg = load_meta(tmp_path / "sim").temporal
        assert cfg == TemporalConfig(
            start=datetime(2026, 2, 1, tzinfo=UTC), days=10, hype_amplitude=7.0,
            weekday_weights=(1, 1, 1, 1, 1.2, 1.5, 1.5),
        )  # fmt: skip
        assert CliRunner().invoke(app, [*args, "--force"]).exit_code == 0
        start = load_meta(tmp_path / "sim").temporal.start  # type: ignore[union-attr]
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        assert start in (today - timedelta(days=5), today - timedelta(days=6))  # midnight may pass meanwhile
        bad = CliRunner().invoke(app, [*args[:-4], "--period-days", "-1", "--force"])
        assert bad.exit_code == 2
    finally:
        get_sim_settings.cache_clear()
