"""Parity of `benchmarks/training.py`'s NumPy user features with the real ingestion aggregation.

The training benchmark writes `user_watch_stats` and `user_rating_stats` straight into the
offline store (streaming its history through Kafka is out of reach), so its rows must be the
rows ingestion would have pushed. Here a small world's sessions, drawn by the benchmark's own
generation functions with a fixed seed, go both ways: through `write_user_features` (read back
from the Parquet it writes) and, as minute lines and ratings in time order, through
`ingestion.state.UserState` and `ingestion.user_features.user_rows`, snapshotted at each of the
benchmark's stamps. Every feature must agree exactly (genre shares to float32 rounding), but for
the benchmark's documented approximation: a recent-movies list is folded from the user's last
`RECENT_WINDOW` (64) session starts, so a heavy re-watcher's list may be cut short; there it
must be a prefix of ingestion's (rare at full scale: 20,000 movies, ~10 sessions per user).

A minute line repeating the movie's last minute number counts as a duplicate only within the
session gap (`test_ingestion_keeps_a_restart_at_the_same_minute`): a restart at the same minute
days later is a new watch on both sides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmarks import training as bench
from events.metadata import GENRE_INDEX
from ingestion.settings import IngestSettings
from ingestion.state import UserState
from ingestion.user_features import RATING_VIEW, WATCH_VIEW, user_rows
from simulator.store import movies_table
from simulator.world import generate_world

USERS, MOVIES, SESSIONS, DAYS, SEED = 300, 100, 3_000, 14.0, 5
"""A small world: ~10 sessions per user over two weeks, enough for overlaps, re-watches and midnights."""
EXACT = [
    "watch_minutes_1d", "watch_minutes_7d", "watch_count_7d", "watch_count_total", "last_active_ts",
]  # fmt: skip


def _read(offline: Path, view: str) -> pd.DataFrame:
    frame = pq.read_table(offline / "features" / view).to_pandas()
    return frame.sort_values(["user_id", "event_timestamp"]).reset_index(drop=True)


def _replay(s: dict[str, Any], world: Any, stamps: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Ingestion's rows at the benchmark's stamps: each user's events in time order, snapshotted at each stamp."""
    genres = {
        r["id"]: tuple(GENRE_INDEX[g.lower()] for g in r["genres"])
        for r in movies_table(world.catalog).to_pylist()
    }
    slug = world.catalog.slug
    events: dict[int, list[tuple[int, int, str, int]]] = {}
    for i in range(len(s["user"])):
        user, movie, start, first = (
            int(s["user"][i]),
            slug[int(s["movie"][i])],
            int(s["start"][i]),
            int(s["first"][i]),
        )
        lines = events.setdefault(user, [])
        lines.extend((start + j * bench.MIN_NS, 0, movie, first + j) for j in range(int(s["minutes"][i])))
        if s["rated"][i]:
            lines.append((int(s["rate_ts"][i]), 1, "", int(s["stars"][i])))
    # Stamps are written floored to microseconds: replay every event up to the end of that microsecond.
    wanted = stamps.groupby("user_id")["event_timestamp"].apply(lambda t: sorted(x.value for x in t))
    tables: dict[str, list[pa.Table]] = {WATCH_VIEW: [], RATING_VIEW: []}
    for user, lines in events.items():
        lines.sort(key=lambda e: e[0])
        state = UserState(genres.get)
        i = 0
        for stamp in wanted.get(user, []):
            while i < len(lines) and lines[i][0] // 1000 * 1000 <= stamp:
                ts, kind, movie, value = lines[i]
                if kind == 0:
                    state.watch(ts, user, movie, value)
                else:
                    state.rate(ts, user, value)
                i += 1
            # Ingestion stamps a row 1 us per earlier event after the latest event (`UserAgg.stamp_ns`:
            # an order-independent tiebreak for Redis); the benchmark's grid stamps it at the event.
            # Compared here at the event, as what must agree is the state at each instant.
            at = pa.array([state.users[user].last_ts_ns // 1000], pa.int64()).cast(
                pa.timestamp("us", tz="UTC")
            )
            for view, table in user_rows(state, [user], 0).items():
                tables[view].append(
                    table.set_column(table.schema.get_field_index("event_timestamp"), "event_timestamp", at)
                )
    return {
        view: pa.concat_tables(parts)
        .to_pandas()
        .sort_values(["user_id", "event_timestamp"])
        .reset_index(drop=True)
        for view, parts in tables.items()
    }


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The benchmark's rows, ingestion's rows at the same stamps, and the sessions they come from."""
    world = generate_world(USERS, MOVIES, SEED)
    s = bench.simulate_sessions(world, SESSIONS, DAYS, SEED, 0.25)
    offline = tmp_path_factory.mktemp("bench-parity") / "offline"
    bench.write_user_features(offline, s, world, pa.array(world.catalog.slug, pa.string()))
    watch, rating = _read(offline, WATCH_VIEW), _read(offline, RATING_VIEW)
    ingested = _replay(s, world, watch)
    return {"s": s, "bench": {WATCH_VIEW: watch, RATING_VIEW: rating}, "ingest": ingested}


def test_constants_are_ingestions_defaults() -> None:
    """The benchmark's session gap and recent-list length are ingestion's defaults."""
    fields = IngestSettings.model_fields
    assert int(fields["session_gap_s"].default) * bench.NS == bench.SESSION_GAP_NS
    assert int(fields["recent_movies"].default) == bench.RECENT_MAX


def test_world_exercises_the_hard_cases(both: dict[str, Any]) -> None:
    """The sample holds re-watches merged into one session, runs still going at a stamp and midnight crossings."""
    s = both["s"]
    end = s["start"] + (s["minutes"] - 1) * bench.MIN_NS
    new = bench.session_starts(s["user"], s["movie"], s["start"], end, bench.SESSION_GAP_NS)
    assert (~new).sum() >= 5
    assert (s["start"] // bench.DAY_NS != end // bench.DAY_NS).sum() >= 20
    order = np.lexsort((s["start"], s["user"]))
    u, start, stop = s["user"][order], s["start"][order], end[order]
    assert ((u[1:] == u[:-1]) & (start[1:] <= stop[:-1])).sum() >= 20  # overlapping runs of one user


def test_user_rows_match_ingestion(both: dict[str, Any]) -> None:
    """Every watch and rating feature, row by row at the benchmark's stamps, equals ingestion's."""
    for view in (WATCH_VIEW, RATING_VIEW):
        b, g = both["bench"][view], both["ingest"][view]
        assert len(b) == len(g)
        assert (b["user_id"].to_numpy() == g["user_id"].to_numpy()).all()
        assert (b["event_timestamp"] == g["event_timestamp"]).all()
    b, g = both["bench"][WATCH_VIEW], both["ingest"][WATCH_VIEW]
    for column in EXACT:
        assert (b[column].to_numpy() == g[column].to_numpy()).all(), column
    cut = 0
    columns = (b["watch_count_total"], b["recent_movie_ids"], g["recent_movie_ids"])
    for count, ours, reference in zip(*columns, strict=True):
        mine, theirs = list(ours), list(reference)
        if count > bench.RECENT_WINDOW and len(mine) < bench.RECENT_MAX:
            # Folded from the last RECENT_WINDOW session starts only: a prefix of ingestion's list.
            assert mine == theirs[: len(mine)]
            cut += mine != theirs
        else:
            assert mine == theirs
    assert cut < 0.05 * len(b)
    np.testing.assert_allclose(
        np.stack(b["genre_affinity"]), np.stack(g["genre_affinity"]), rtol=0, atol=1e-6
    )
    rb, rg = both["bench"][RATING_VIEW], both["ingest"][RATING_VIEW]
    assert (rb["rating_count"].to_numpy() == rg["rating_count"].to_numpy()).all()
    assert (rb["rating_mean"].to_numpy() == rg["rating_mean"].to_numpy()).all()


def test_ingestion_keeps_a_restart_at_the_same_minute() -> None:
    """A one-minute watch from minute 0, then a restart from minute 0 a day later: two sessions, two minutes."""
    state = UserState(lambda _: (0,))
    state.watch(0, 1, "m", 0)
    state.watch(bench.DAY_NS, 1, "m", 0)
    agg = state.users[1]
    assert (agg.sessions_total, agg.minutes_total) == (2, 2)
