"""Training at full scale: time and peak RSS of building the training set, training LambdaRank and evaluating.

Streaming ~10M watch sessions (~700M minute lines) through Kafka and the ingestion workers is
out of reach on a 2-core machine, so this benchmark writes the offline store *directly*, in
the layout and schemas ingestion writes, from the simulator's world and behaviour model,
vectorised with NumPy (a child process; its time and peak RSS are reported apart, not part
of the targets):

1. World: `simulator.world.generate_world(users, movies, seed)`, stored with `save_world`
   under `<var>/sim` (the oracle reads the ground truth from there).
2. Watch sessions over `--days` days, open loop as `simulator.traffic` runs it: who watches
   is drawn in proportion to the users' `activity` (`Behaviour.pick_users`), the movie is the
   user's own choice from a popularity/genre/random consideration set by softmax on true
   affinity (`Behaviour.own_choice`), minutes watched and the resume point come from
   `Behaviour.watch`, ratings (`rating_share` x (0.5 + share watched) of sessions, stars
   around the expected rating) from `Behaviour.rate`. Time as `simulator.temporal` models it
   (the world's period is the history: `START` for `--days`): start times follow the weekly
   (and daily) rhythm, and each hour's sessions choose among the movies out at the hour's
   first session, new releases weighted by their rise-and-decay attractiveness then;
   the first minute comes 5-90 s after the start (browsing), one minute line per minute, a
   rating 10-300 s after the last minute. Written as `offline/sessions/date=D/sessions.parquet`
   (what `ingestion.sessions` derives from the minute lines; the minute lines themselves are
   not written), `offline/raw/play/date=D/` (one row at each session's first minute, as the
   worker lands them) and `offline/raw/rate/date=D/` (Kafka partition = user id mod 4 and
   offsets numbered per partition in time order stand in for the broker's).
3. Feature tables under `offline/features/<view>/`, schemas from `feature_repo.config.arrow_schema`:
   the movie views by `ingestion.movie_features.movie_rows` + `write_rows` (the hourly
   event-time grid, metadata from the simulator's public movie records as `MovieMeta`); the
   user views on a daily grid of event time: one row per user and day with an event, stamped
   at the user's last event of that day (a minute line or a rating, as `UserAgg.last_ts_ns`)
   and holding what `ingestion.state` holds after every minute and rating at or before that
   stamp (point in time by construction; minutes of a session still going count up to the
   stamp): 1 d window = the 24 hour buckets up to the stamp's hour, 7 d = the 7 day buckets,
   each minute counted in the bucket of its own time; counts are sessions as ingestion cuts
   them (per user and movie: a run starting while that movie is still playing or within the
   30 min gap of its last minute continues one), started in the window / in total; recent ids
   are up to 50 distinct movies, most recent session start first (folded from the user's last
   64 session starts, the rows where that could cut a list short are counted); genre affinity
   = minutes x 1/len(genres) per genre, as shares. `tests/unit/test_bench_parity.py` checks
   these rows against ingestion's own on a small world. `user_profile` holds one row
   per user, stamped at their first minute watched, with the world's public demographics
   (`account_created_ts` null: every account predates the history, as for users whose
   `create_account` line came before the stream).

Then, in this process, each timed separately under a 50 ms peak-RSS sampler: `prepare`
(offline store -> cut-offs -> candidates -> Feast point-in-time features; `--max-users`
users per cut-off, drawn by `build_split` uniformly without replacement, seed 7, among the
users with history before the cut-off and activity in its label window), `Ranker.train` on
the train cut-offs with early stopping on valid, and `compare` (baselines, the λ sweep,
LambdaRank at λ=0 and at the chosen λ, the simulator's oracle). Where `prepare` spends its
time is reported per stage (`trainset_breakdown_seconds`, wrappers that only time).
The default of 10,000 users per cut-off (1,200,000 rows each) fits the time target at full
scale: Feast is asked once per distinct user and once per distinct movie (a fixed ~9 s per
cut-off, mostly reading `user_watch_stats`), ALS is fit on 200,000 users per cut-off
(`ranking.dataset.ALS_USERS`), and the rest grows with the users sampled.
Targets on this 2-core machine: training set <= 5 min, training <= 10 min, peak RSS <= 12 GB.
Run one benchmark at a time, after a small run (Redis must be up: `recsys stack up`); with
`--work DIR --generate-only` the offline store is generated once and reused by later runs
with the same `--work` and sizes (`generation.reused` in the figures):

    flock /tmp/recsys-bench.lock .venv/bin/python benchmarks/training.py --users 50000 --movies 2000 \\
        --sessions 300000 --out /tmp/training-small.json
    flock /tmp/recsys-bench.lock .venv/bin/python benchmarks/training.py
"""

from __future__ import annotations

import os

# One BLAS thread: implicit's ALS runs its own threads and warns (and slows) otherwise.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import datetime as dt
import json
import multiprocessing as mp
import platform
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import Progress

from core.noise import quiet_third_party

# Scripts in this folder are named like the packages they measure (simulator.py, ingestion.py);
# run as a script, the folder would come first on the import path and shadow those packages
# (which are therefore imported inside the functions).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

REPO = _HERE.parent
RESULTS = _HERE / "results" / "training.json"
PLOT = _HERE / "results" / "training_cost_pareto.png"
BASELINES = ("popularity", "recency_popularity", "item_item", "als")
"""The baselines LambdaRank must beat (`ranking.candidate_index.POLICIES`)."""
REDIS_URL = "redis://127.0.0.1:6379/7"
TARGETS = {"trainset_seconds": 300.0, "train_seconds": 600.0, "peak_rss_mb": 12_288.0}
START = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
"""First instant of the simulated history."""
NS, MIN_NS, HOUR_NS, DAY_NS = 10**9, 60 * 10**9, 3_600 * 10**9, 86_400 * 10**9
SESSION_CHUNK = 20_000
"""Sessions drawn per step: own_choice builds (chunk x 192 x 35) float32 arrays, ~0.5 GB at this size."""
USER_BLOCK = 100_000
"""Users whose feature rows are folded at once (bounds the memory of the list and cumulative arrays)."""
RECENT_MAX, RECENT_WINDOW = 50, 64
SESSION_GAP_NS = 1_800 * NS
"""Ingestion's defaults (`IngestSettings.recent_movies`, `.session_gap_s`); tests/unit/test_bench_parity.py checks them."""
PARTITIONS = 4
GENERATED = "_bench_generated.json"
I64 = npt.NDArray[np.int64]

console = Console()


# --- peak RSS ------------------------------------------------------------------------------------


class PeakRss:
    """Samples this process's RSS every 50 ms; `mark()` starts a new phase and returns the last phase's peak."""

    def __init__(self) -> None:
        self.peak = 0
        self.phase_peak = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._proc = psutil.Process()

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self._proc.memory_info().rss
            with self._lock:
                self.peak = max(self.peak, rss)
                self.phase_peak = max(self.phase_peak, rss)
            time.sleep(0.05)

    def mark(self) -> float:
        """Peak RSS (MB) since the previous mark; the next phase starts at the current RSS."""
        rss = self._proc.memory_info().rss
        with self._lock:
            peak = max(self.phase_peak, rss)
            self.peak = max(self.peak, peak)
            self.phase_peak = rss
        return peak / 2**20

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _log(message: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}", highlight=False)


@contextmanager
def step_timer(seconds: dict[str, float]) -> Iterator[None]:
    """Accumulate the time `prepare` spends in each stage (wrappers that only time; restored on exit)."""
    import ranking.candidate_index as ci
    import ranking.dataset as ds
    import ranking.train as tr

    targets: list[tuple[str, Any, str]] = [
        ("load", tr, "load_sessions"), ("load", tr, "load_ratings"), ("load", tr, "load_movies"),
        ("half_life_tuning", tr, "tune_half_life"), ("history", ds, "history"),
        ("popularity_fit", ci.PopularityGenerator, "fit"), ("als_fit", ci.ALSGenerator, "fit"),
        ("item_item_fit", ci.ItemItemGenerator, "fit"), ("labels", ds, "labels"),
        ("candidates", ds, "candidate_rows"), ("feast_join", ds, "join_features"), ("model_matrix", ds, "model_matrix"),
    ]  # fmt: skip

    def timed(step: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[step] = seconds.get(step, 0.0) + time.perf_counter() - t

        return call

    # Class attributes through __dict__: the plain function, so restoring leaves the class as it was.
    saved = [(owner, name, vars(owner)[name]) for _, owner, name in targets]
    try:
        for step, owner, name in targets:
            setattr(owner, name, timed(step, vars(owner)[name]))
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


# --- generation: sessions and raw tables ----------------------------------------------------------


def _ts(ns: I64) -> pa.Array:
    return pa.array(ns, pa.int64()).cast(pa.timestamp("ns", tz="UTC"))


def _slugs(slugs: pa.Array, idx: npt.NDArray[np.integer[Any]]) -> pa.Array:
    return pc.take(slugs, pa.array(idx, pa.int32()))


def _by_date(ns: I64) -> dict[str, I64]:
    """Row indices per UTC date of `ns`."""
    day = ns // DAY_NS
    out = {}
    for d in np.unique(day).tolist():
        out[(dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=d)).date().isoformat()] = (
            np.flatnonzero(day == d)
        )
    return out


def _write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")


def simulate_sessions(
    world: Any, n_sessions: int, days: float, seed: int, rating_share: float
) -> dict[str, Any]:
    """Sessions (user id, movie index, first minute, minutes, first-minute ns) and ratings, in time order.

    Exactly `n_sessions` start times over `days` from START by the world's activity rhythm, then
    drawn in chunks that never cross an hour (at most SESSION_CHUNK sessions): a chunk's users
    choose at its first start time, so no movie is watched before its release.
    """
    from simulator.behaviour import Behaviour
    from simulator.drift import DriftSchedule
    from simulator.temporal import HOUR_NS, Temporal

    c, p = world.catalog, world.population
    temporal = Temporal.for_world(world)
    behaviour = Behaviour(
        world.affinity_model(), DriftSchedule.for_world([], c, p), runtime=c.runtime, popularity=c.popularity,
        movie_genres=c.genres, activity=p.activity, temporal=temporal,
    )  # fmt: skip
    t0, span = int(START.timestamp()) * NS, int(days * DAY_NS)
    starts = temporal.session_starts(np.random.default_rng([seed, 18]), t0, t0 + span, n=n_sessions)
    hour = starts // HOUR_NS
    cuts = np.union1d(np.flatnonzero(np.diff(hour)) + 1, np.arange(0, n_sessions, SESSION_CHUNK))
    edges = np.union1d(cuts, [0, n_sessions]).tolist()
    parts: dict[str, list[Any]] = {k: [] for k in ("user", "movie", "first", "minutes", "start", "rated", "stars",
                                                   "rate_ts")}  # fmt: skip
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("sessions", total=n_sessions)
        for i in range(len(edges) - 1):
            lo, hi = edges[i], edges[i + 1]
            n = hi - lo
            rng = np.random.default_rng([seed, 17, i])
            users = behaviour.pick_users(rng, n, len(p))
            start = starts[lo:hi]
            movie, aff = behaviour.own_choice(rng, users, int(start[0]))
            first, minutes, share = behaviour.watch(rng, movie, aff)
            rates, stars = behaviour.rate(rng, aff, share, rating_share)
            watch_start = start + ((5 + rng.random(n) * 85) * NS).astype(np.int64)
            rate_ts = watch_start + minutes * MIN_NS + ((10 + rng.random(n) * 290) * NS).astype(np.int64)
            for key, value in (("user", users + 1), ("movie", movie.astype(np.int32)), ("first", first),
                               ("minutes", minutes), ("start", watch_start), ("rated", rates),
                               ("stars", stars.astype(np.int8)), ("rate_ts", rate_ts)):  # fmt: skip
                parts[key].append(value)
            bar.advance(task, n)
    return {k: np.concatenate(v) for k, v in parts.items()}


def write_raw(offline: Path, s: dict[str, Any], slugs: pa.Array) -> int:
    """sessions/, raw/play/ and raw/rate/ files per UTC date; returns the number of ratings."""
    start, minutes = s["start"], s["minutes"]
    end = start + (minutes - 1) * MIN_NS
    for date, day_rows in _by_date(start).items():
        # ingestion.sessions orders a date's sessions by user, then start.
        idx = day_rows[np.lexsort((start[day_rows], s["user"][day_rows]))]
        first = s["first"][idx]
        table = pa.table({
            "user_id": pa.array(s["user"][idx], pa.int64()), "movie_id": _slugs(slugs, s["movie"][idx]),
            "first_minute": pa.array(first, pa.int32()),
            "last_minute": pa.array(first + minutes[idx] - 1, pa.int32()),
            "minutes_watched": pa.array(minutes[idx], pa.int32()),
            "start_ts": _ts(start[idx]), "end_ts": _ts(end[idx]),
        })  # fmt: skip
        _write(table, offline / "sessions" / f"date={date}" / "sessions.parquet")
        order = idx[np.argsort(start[idx], kind="stable")]
        play = pa.table({"ts": _ts(start[order]), "user_id": pa.array(s["user"][order], pa.int64()),
                         "movie_id": _slugs(slugs, s["movie"][order])})  # fmt: skip
        _write(play, offline / "raw" / "play" / f"date={date}" / "movielog-bench.parquet")
    r = np.flatnonzero(s["rated"])
    r = r[np.argsort(s["rate_ts"][r], kind="stable")]
    part = (s["user"][r] % PARTITIONS).astype(np.int32)
    offset = np.empty(len(r), np.int64)
    for k in range(PARTITIONS):
        sel = part == k
        offset[sel] = np.arange(int(sel.sum()))
    for date, idx in _by_date(s["rate_ts"][r]).items():
        rows = r[idx]
        table = pa.table({
            "ts": _ts(s["rate_ts"][rows]), "user_id": pa.array(s["user"][rows], pa.int64()),
            "movie_id": _slugs(slugs, s["movie"][rows]), "rating": pa.array(s["stars"][rows], pa.int8()),
            "kafka_partition": pa.array(part[idx], pa.int32()), "kafka_offset": pa.array(offset[idx], pa.int64()),
        })  # fmt: skip
        _write(table, offline / "raw" / "rate" / f"date={date}" / "movielog-bench.parquet")
    return len(r)


# --- generation: user feature views ---------------------------------------------------------------


def _expand(lo: I64, hi: I64) -> tuple[I64, I64]:
    """(row, index) for every index in [lo[row], hi[row]) — ranges flattened without a Python loop."""
    n = np.maximum(hi - lo, 0)
    rows = np.repeat(np.arange(len(lo)), n)
    return rows, lo[rows] + np.arange(len(rows)) - np.repeat(np.cumsum(n) - n, n)


def _minutes_in(start: I64, minutes: I64, lo: I64, hi: I64) -> I64:
    """Minutes of each run (minute j at start + j min) whose own time is in [lo, hi]."""
    upto = np.clip((hi - start) // MIN_NS + 1, 0, minutes)
    before = np.clip(-((start - lo) // MIN_NS), 0, minutes)  # ceil((lo - start) / 1 min)
    inside: I64 = np.maximum(upto - before, 0)
    return inside


def session_starts(user: I64, movie: I64, start: I64, end: I64, gap_ns: int) -> npt.NDArray[np.bool_]:
    """Which runs start a session as `ingestion.state.UserState.watch` counts them.

    A session is per (user, movie): a run continues one when it starts while an earlier run of
    the same movie is still going or at most `gap_ns` after that movie's latest minute (a
    re-watch soon after, or two screens on one movie, is one session there, not two).
    """
    order = np.lexsort((start, movie, user))
    u, m = user[order], movie[order]
    first = np.r_[True, (u[1:] != u[:-1]) | (m[1:] != m[:-1])]
    group = np.cumsum(first)
    # Latest minute of the movie before each run: a running maximum of the earlier runs' ends.
    latest = pd.Series(end[order]).groupby(group).cummax().to_numpy()
    prev = np.r_[np.int64(0), latest[:-1]]
    new_sorted = first | (start[order] - prev > gap_ns)
    out = np.empty(len(order), bool)
    out[order] = new_sorted
    return out


def user_rows(
    block: dict[str, Any], ratings: dict[str, Any], genre_share: np.ndarray, max_minutes: int
) -> dict[str, Any]:
    """Feature columns of one block of users on the daily grid (see the module docstring).

    `block`: runs (one session as drawn: consecutive minutes of one movie) sorted by (user,
    start) with user/movie/minutes/start and `new` (`session_starts`); `ratings`: sorted by
    (user, ts) with user/ts/stars. Times are ns; a row at stamp T is `ingestion.state` after
    every minute line and rating at or before T: minutes of runs still going at T count up to
    T. Per-user searches use one sorted key per row, user * span + microseconds since the base,
    so a user's rows never see another's.
    """
    users, start, minutes, movie, new = (
        block["user"], block["start"], block["minutes"], block["movie"], block["new"],
    )  # fmt: skip
    end = start + (minutes - 1) * MIN_NS
    base_user = int(users.min())
    base_ns = int(start.min()) - DAY_NS
    span = int((max(int(end.max()), int(ratings["ts"].max(initial=0))) - base_ns) // 1000 + 1)

    def key(u: I64, ns: I64) -> I64:
        return (u - base_user) * span + np.clip(ns - base_ns, 0, None) // 1000

    s_key, r_key = key(users, start), key(ratings["user"], ratings["ts"])
    # Grid rows: each (user, day) with a minute line or a rating, stamped at the last of them: a
    # run's last minute, a rating, or the last minute before midnight of a run that crosses it.
    midnight = (start // DAY_NS + 1) * DAY_NS
    cross = end >= midnight
    before_midnight = start[cross] + (midnight[cross] - 1 - start[cross]) // MIN_NS * MIN_NS
    ev_u = np.concatenate([users, users[cross], ratings["user"]])
    ev_t = np.concatenate([end, before_midnight, ratings["ts"]])
    order = np.lexsort((ev_t, ev_u))
    ev_u, ev_t = ev_u[order], ev_t[order]
    day = ev_t // DAY_NS
    last = np.r_[(ev_u[1:] != ev_u[:-1]) | (day[1:] != day[:-1]), True]
    row_u, row_t = ev_u[last], ev_t[last]
    row_key = key(row_u, row_t)
    k = np.searchsorted(s_key, row_key, side="right")  # runs started by the stamp: [s0, k)
    s0 = np.searchsorted(s_key, key(row_u, np.full(len(row_u), base_ns)), side="left")
    cum_min = np.r_[0, np.cumsum(minutes, dtype=np.int64)]
    cum_new = np.r_[0, np.cumsum(new, dtype=np.int64)]
    # Runs still going at the stamp (only those started within one runtime before it can be):
    # their minutes after the stamp are not watched yet.
    c = np.maximum(np.searchsorted(s_key, key(row_u, row_t - (max_minutes + 1) * MIN_NS), side="left"), s0)
    g_rows, g_idx = _expand(c, k)
    ahead = minutes[g_idx] - _minutes_in(start[g_idx], minutes[g_idx], start[g_idx], row_t[g_rows])

    def window(w0: I64) -> tuple[I64, I64]:
        """(minutes with their own time in [w0, stamp], sessions started in it) as of the stamp."""
        a = np.clip(np.searchsorted(s_key, key(row_u, w0), side="left"), s0, k)
        mins = (
            cum_min[k]
            - cum_min[a]
            - np.bincount(g_rows, ahead * (g_idx >= a[g_rows]), len(a)).astype(np.int64)
        )
        # Runs started before w0 within one runtime of it may still have minutes in the window.
        lo = np.clip(np.searchsorted(s_key, key(row_u, w0 - (max_minutes + 1) * MIN_NS), side="left"), s0, a)
        rows, idx = _expand(lo, a)
        inside = _minutes_in(start[idx], minutes[idx], w0[rows], row_t[rows])
        mins += np.bincount(rows, inside, len(a)).astype(np.int64)
        return mins, cum_new[k] - cum_new[a]

    min_1d, _ = window((row_t // HOUR_NS - 23) * HOUR_NS)
    min_7d, count_7d = window((row_t // DAY_NS - 6) * DAY_NS)

    # Recent movies: the movies of the last RECENT_WINDOW session starts, most recent first, first
    # occurrence of each movie kept (ingestion moves a movie to the front when a session of it starts).
    starts = np.flatnonzero(new)
    kn, s0n = cum_new[k], cum_new[s0]
    j = np.arange(RECENT_WINDOW)
    idx = kn[:, None] - 1 - j[None, :]
    valid = idx >= s0n[:, None]
    mv = np.where(valid, movie[starts[np.maximum(idx, 0)]], np.iinfo(np.int32).max).astype(np.int64)
    srt = np.argsort(mv * RECENT_WINDOW + j[None, :], axis=1)
    mv_sorted = np.take_along_axis(mv, srt, axis=1)
    dup_sorted = np.c_[np.zeros(len(mv), bool), mv_sorted[:, 1:] == mv_sorted[:, :-1]]
    dup = np.empty_like(dup_sorted)
    np.put_along_axis(dup, srt, dup_sorted, axis=1)
    keep = valid & ~dup
    keep &= np.cumsum(keep, axis=1) <= RECENT_MAX
    recent_len = keep.sum(axis=1)
    # Rows whose list may be cut short: more session starts than the window, fewer than 50 distinct in it.
    short = int(np.sum(((kn - s0n) > RECENT_WINDOW) & (recent_len < RECENT_MAX)))

    # Genre affinity: minutes x 1/len(genres) per genre, over the minutes watched by the stamp.
    cum_g = np.zeros((len(users) + 1, genre_share.shape[1]), np.float64)
    np.cumsum(genre_share[movie] * minutes[:, None], axis=0, out=cum_g[1:])
    g = cum_g[k] - cum_g[s0]
    np.subtract.at(g, g_rows, genre_share[movie[g_idx]] * ahead[:, None])
    total = g.sum(axis=1, keepdims=True)
    affinity = np.where(total > 0, g / np.where(total > 0, total, 1.0), 0.0).astype(np.float32)

    rk = np.searchsorted(r_key, row_key, side="right")
    r0 = np.searchsorted(r_key, key(row_u, np.full(len(row_u), base_ns)), side="left")
    cum_stars = np.r_[0, np.cumsum(ratings["stars"], dtype=np.int64)]
    first_start = start[np.flatnonzero(np.r_[True, users[1:] != users[:-1]])]
    return {
        "row_user": row_u, "row_ts": row_t, "min_1d": min_1d, "min_7d": min_7d, "count_7d": count_7d,
        "count_total": kn - s0n, "recent_flat": mv[keep], "recent_len": recent_len, "affinity": affinity,
        "rating_count": rk - r0, "rating_sum": cum_stars[rk] - cum_stars[r0], "short_lists": short,
        "profile_user": np.unique(users), "profile_ts": first_start,
    }  # fmt: skip


def _us(ns: I64) -> pa.Array:
    return pa.array(ns // 1000, pa.int64()).cast(pa.timestamp("us", tz="UTC"))


def user_tables(
    f: dict[str, Any], slugs: pa.Array, world: Any, created_ns: int, views: dict[str, Any]
) -> dict[str, pa.Table]:
    """The block's rows of user_watch_stats, user_rating_stats and user_profile, in the views' Arrow schemas."""
    from feature_repo.config import arrow_schema
    from simulator.users import GENDERS
    from simulator.vocab import OCCUPATIONS

    n = len(f["row_user"])
    created = _us(np.full(n, created_ns, np.int64))
    offsets = pa.array(np.r_[0, np.cumsum(f["recent_len"])].astype(np.int32))
    n_genres = f["affinity"].shape[1]
    watch = {
        "user_id": pa.array(f["row_user"], pa.int64()),
        "watch_minutes_1d": pa.array(f["min_1d"].astype(np.float32)),
        "watch_minutes_7d": pa.array(f["min_7d"].astype(np.float32)),
        "watch_count_7d": pa.array(f["count_7d"], pa.int64()),
        "watch_count_total": pa.array(f["count_total"], pa.int64()),
        "last_active_ts": pa.array(f["row_ts"] // NS, pa.int64()),
        "recent_movie_ids": pa.ListArray.from_arrays(offsets, _slugs(slugs, f["recent_flat"])),
        "genre_affinity": pa.ListArray.from_arrays(
            pa.array(np.arange(0, (n + 1) * n_genres, n_genres, dtype=np.int32)),
            pa.array(f["affinity"].ravel()),
        ),
        "event_timestamp": _us(f["row_ts"]),
        "created": created,
    }
    rated = f["rating_count"] > 0
    rating = {
        "user_id": pa.array(f["row_user"][rated], pa.int64()),
        "rating_count": pa.array(f["rating_count"][rated], pa.int64()),
        "rating_mean": pa.array((f["rating_sum"][rated] / f["rating_count"][rated]).astype(np.float32)),
        "event_timestamp": _us(f["row_ts"][rated]),
        "created": created.slice(0, int(rated.sum())),
    }
    pu = f["profile_user"]
    p = world.population
    profile = {
        "user_id": pa.array(pu, pa.int64()),
        "age": pa.array(p.age[pu - 1].astype(np.int64)),
        "gender": pc.take(pa.array(GENDERS), pa.array(p.gender[pu - 1].astype(np.int32))),
        "occupation": pc.take(pa.array(OCCUPATIONS), pa.array(p.occupation[pu - 1].astype(np.int32))),
        "account_created_ts": pa.nulls(len(pu), pa.int64()),
        "event_timestamp": _us(f["profile_ts"]),
        "created": _us(np.full(len(pu), created_ns, np.int64)),
    }
    out = {}
    for name, cols in (("user_watch_stats", watch), ("user_rating_stats", rating), ("user_profile", profile)):
        schema = arrow_schema(views[name])
        out[name] = pa.table({fld.name: cols[fld.name] for fld in schema}).cast(schema)
    return out


def write_user_features(offline: Path, s: dict[str, Any], world: Any, slugs: pa.Array) -> dict[str, int]:
    """All users' rows of the three user views, block by block; returns rows per view and list cut-offs."""
    from events.metadata import GENRE_INDEX
    from feature_repo.user_features import user_profile, user_rating_stats, user_watch_stats
    from simulator.vocab import GENRE_NAMES

    views = {v.name: v for v in (user_watch_stats, user_rating_stats, user_profile)}
    c = world.catalog
    # Columns in events.metadata.GENRES order (the order `genre_affinity` is documented in).
    genre = np.zeros((len(c), len(GENRE_INDEX)), np.float32)
    for i, name in enumerate(GENRE_NAMES):
        genre[:, GENRE_INDEX[name.lower()]] = c.genres[:, i]
    genre_share = genre / np.maximum(genre.sum(axis=1, keepdims=True), 1.0)
    max_minutes = int(c.runtime.max())

    end = s["start"] + (s["minutes"] - 1) * MIN_NS
    new = session_starts(s["user"], s["movie"], s["start"], end, SESSION_GAP_NS)
    order = np.lexsort((s["start"], s["user"]))
    sess = {"user": s["user"][order], "movie": s["movie"][order], "minutes": s["minutes"][order].astype(np.int64),
            "start": s["start"][order], "new": new[order]}  # fmt: skip
    r = np.flatnonzero(s["rated"])
    r = r[np.lexsort((s["rate_ts"][r], s["user"][r]))]
    rates = {"user": s["user"][r], "ts": s["rate_ts"][r], "stars": s["stars"][r].astype(np.int64)}
    created_ns = time.time_ns()
    counts = {"user_watch_stats": 0, "user_rating_stats": 0, "user_profile": 0, "short_recent_lists": 0}
    bounds = np.arange(0, int(sess["user"].max()) + USER_BLOCK + 1, USER_BLOCK)
    s_cut = np.searchsorted(sess["user"], bounds + 1)
    r_cut = np.searchsorted(rates["user"], bounds + 1)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("user features", total=len(bounds) - 1)
        for b in range(len(bounds) - 1):
            lo, hi = s_cut[b], s_cut[b + 1]
            if hi > lo:
                block = {key: v[lo:hi] for key, v in sess.items()}
                rb = {key: v[r_cut[b] : r_cut[b + 1]] for key, v in rates.items()}
                f = user_rows(block, rb, genre_share, max_minutes)
                counts["short_recent_lists"] += f["short_lists"]
                for view, table in user_tables(f, slugs, world, created_ns, views).items():
                    _write(table, offline / "features" / view / f"bench-{b:04d}.parquet")
                    counts[view] += table.num_rows
            bar.advance(task)
    return counts


def generate(
    work: Path, users: int, movies: int, n_sessions: int, days: float, seed: int, rating_share: float
) -> None:
    """Child process: world, raw tables, sessions and every feature view under `<work>/var`; writes the marker."""
    from events.metadata import MovieMeta
    from ingestion.layout import OfflineLayout
    from ingestion.movie_features import movie_rows, write_rows
    from simulator.store import movies_table, save_world
    from simulator.temporal import TemporalConfig
    from simulator.world import generate_world

    var = work / "var"
    offline = var / "offline"
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    # The world's simulated period is the history, so releases fall inside it (simulator.temporal).
    world = generate_world(
        users, movies, seed, temporal=TemporalConfig(start=START, days=days), progress=True
    )
    save_world(world, var / "sim")
    seconds["world"] = time.perf_counter() - t
    _log(f"world {users:,} users x {movies:,} movies: {seconds['world']:.1f} s")

    t = time.perf_counter()
    s = simulate_sessions(world, n_sessions, days, seed, rating_share)
    seconds["sessions"] = time.perf_counter() - t
    _log(
        f"{n_sessions:,} sessions drawn ({int(s['minutes'].sum()):,} minutes watched): {seconds['sessions']:.1f} s"
    )

    t = time.perf_counter()
    slugs = pa.array(world.catalog.slug, pa.string())
    n_ratings = write_raw(offline, s, slugs)
    seconds["raw_write"] = time.perf_counter() - t
    _log(f"sessions, plays and {n_ratings:,} ratings written: {seconds['raw_write']:.1f} s")

    t = time.perf_counter()
    meta = {r["id"]: MovieMeta.model_validate(r) for r in movies_table(world.catalog).to_pylist()}
    layout = OfflineLayout(offline)
    stamp = time.time_ns()
    rows = movie_rows(layout, meta, stamp)
    write_rows(layout, rows, stamp)
    seconds["movie_features"] = time.perf_counter() - t
    movie_counts = {view: table.num_rows for view, table in rows.items()}
    _log(f"movie features {movie_counts}: {seconds['movie_features']:.1f} s")
    del rows, meta

    t = time.perf_counter()
    user_counts = write_user_features(offline, s, world, slugs)
    seconds["user_features"] = time.perf_counter() - t
    _log(f"user features {user_counts}: {seconds['user_features']:.1f} s")
    (work / GENERATED).write_text(json.dumps({
        "users": users, "movies": movies, "watch_sessions": n_sessions, "days": days, "seed": seed,
        "rating_share": rating_share, "ratings": n_ratings, "minutes_watched": int(s["minutes"].sum()),
        "active_users": len(np.unique(s["user"])), "feature_rows": movie_counts | user_counts,
        "seconds": seconds, "schema": feature_schema(),
    }, indent=2))  # fmt: skip


def feature_schema() -> dict[str, list[str]]:
    """Each offline feature view's field names: a cache generated for other views is stale (regenerated)."""
    from feast import FeatureView

    from feature_repo import movie_features, user_features

    views = [
        v for m in (movie_features, user_features) for v in vars(m).values() if isinstance(v, FeatureView)
    ]
    return {v.name: sorted(f.name for f in v.features) for v in sorted(views, key=lambda v: v.name)}


# --- the timed part --------------------------------------------------------------------------------


def _score(scores: list[Any], name: str) -> Any:
    return next(s for s in scores if s.model == name)


def run(
    var: Path, max_users: int | None, report_dir: Path, tune_seconds: float, test_users: int | None
) -> dict[str, Any]:
    """`ranking.train.train_and_evaluate` as `recsys train` runs it, each phase timed; the figures as a dict."""
    from ingestion.feast_bridge import open_feature_store
    from ranking.train import train_and_evaluate
    from recsys.training import simulator_oracle

    out: dict[str, Any] = {}
    with PeakRss() as rss:
        t = time.perf_counter()
        store = open_feature_store(var, REDIS_URL)
        out["store_open_seconds"] = time.perf_counter() - t
        _log(f"Feast store open/applied: {out['store_open_seconds']:.1f} s; training")
        steps: dict[str, float] = {}
        with step_timer(steps):
            result = train_and_evaluate(var, store, var / "models" / "bench", report_dir, simulator_oracle(var),
                                        max_users=max_users, progress=_log, tune_seconds=tune_seconds,
                                        tune_trials=100, test_users=test_users)  # fmt: skip
    sec = result.seconds
    out["peak_rss_mb"] = rss.peak / 2**20
    out |= {f"{k}_seconds": v for k, v in sec.items()}
    # The candidate index shipped with the model is fit inside train_and_evaluate, after evaluation.
    out["trainset_breakdown_seconds"] = steps | {"other": max(0.0, sec["trainset"] - sum(
        v for k, v in steps.items()))}  # fmt: skip
    cmp = result.comparison
    by = {x.model: x for x in cmp.scores}
    served = cmp.verdict.candidate
    named = {"popularity": by["popularity"], "recency_popularity": by["recency_popularity"],
             "item_item": by["item_item"], "als": by["als"], "lambdarank": by[served],
             "lambdarank_lambda0": by["lambdarank (λ=0)"], "oracle": by.get("oracle")}  # fmt: skip
    for metric in ("ndcg20", "cost20", "recall20", "map20", "coverage"):
        out[metric] = {k: (getattr(v, metric) if v is not None else None) for k, v in named.items()}
    out["share_of_oracle"] = {
        k: v.share_of_oracle for k, v in named.items() if v is not None and k != "oracle"
    }
    out["served_rule"] = served
    out["verdict"] = cmp.verdict.as_dict()
    out["candidate_recall"] = cmp.candidate_recall
    out["cost_cut_at_5pct_ndcg_loss"] = cmp.cost_test.get("cost_cut_at_5pct_ndcg_loss")
    out["cost_rule_test"] = cmp.cost_test.get("chosen")
    out["chosen_cost_rule"] = result.cost.rule.label
    out["half_life_days"] = result.half_life
    out["tuning"] = None if result.tuning is None else {
        "trials": result.tuning.trials, "best_valid_ndcg20": result.tuning.best_valid_ndcg,
        "params": {k: v for k, v in vars(result.tuning.params).items() if k != "label_gain"}}  # fmt: skip
    out["scoring_p99_ms"] = by[served].p99_ms
    out["test_users"] = cmp.users
    out["rows"] = result.rows
    return out


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4) if abs(value) < 100 else round(value, 1)
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    return value


def main() -> None:
    """Generate (or reuse) the offline store, run the timed phases, print and write the figures."""
    quiet_third_party()  # figures, not Feast/MLflow/httpx chatter
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000, help="Users in the world.")
    parser.add_argument("--movies", type=int, default=20_000, help="Movies in the world.")
    parser.add_argument("--sessions", type=int, default=10_000_000, help="Watch sessions of history.")
    parser.add_argument("--days", type=float, default=14.0, help="Days the history spans.")
    parser.add_argument("--max-users", type=int, default=10_000, help="Users sampled per cut-off (0: all).")
    parser.add_argument("--seed", type=int, default=42, help="World and traffic seed.")
    parser.add_argument(
        "--rating-share", type=float, default=0.25, help="Base share of sessions rated (simulator's)."
    )
    parser.add_argument("--work", type=Path, help="Work folder; an offline store generated there with the same "
                        "arguments is reused (default: a new folder under var/, removed at the end).")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="Keep the work folder.")
    parser.add_argument("--generate-only", action="store_true", help="Generate (or reuse) the offline store in "
                        "--work and stop: a later run with the same arguments reuses it.")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS, help="Where to write the JSON figures.")
    parser.add_argument("--tune-seconds", type=float, default=300.0, help="Optuna time box (reported apart).")
    parser.add_argument("--test-users", type=int, default=40_000, help="Users sampled on the test cut-off "
                        "(the verdict's power; 0: as --max-users).")  # fmt: skip
    args = parser.parse_args()
    if args.generate_only and args.work is None:
        parser.error("--generate-only needs --work (a default work folder is removed at the end)")

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-training-", dir=REPO / "var"))
    work = work.resolve()
    keep = args.keep or args.work is not None
    wanted = {"users": args.users, "movies": args.movies, "watch_sessions": args.sessions, "days": args.days,
              "seed": args.seed, "rating_share": args.rating_share, "schema": feature_schema()}  # fmt: skip
    marker = work / GENERATED
    try:
        reused = marker.exists() and all(
            json.loads(marker.read_text()).get(k) == v for k, v in wanted.items()
        )
        gen_peak_mb = None
        if reused:
            _log(f"reusing the offline store in {work}")
        else:
            shutil.rmtree(work / "var", ignore_errors=True)
            marker.unlink(missing_ok=True)
            _log(
                f"generating {args.sessions:,} sessions for {args.users:,} users x {args.movies:,} movies in {work}"
            )
            t = time.perf_counter()
            child = mp.get_context("spawn").Process(
                target=generate,
                args=(work, args.users, args.movies, args.sessions, args.days, args.seed, args.rating_share),
            )
            child.start()
            child.join()
            if child.exitcode != 0:
                raise SystemExit(f"data generation failed (exit code {child.exitcode})")
            # ru_maxrss of waited-for children: the generator's true high-water mark (KB on Linux).
            gen_peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            gen = json.loads(marker.read_text())
            gen |= {"peak_rss_mb": gen_peak_mb, "process_seconds": time.perf_counter() - t}
            marker.write_text(json.dumps(gen, indent=2))
            _log(f"generation: {gen['process_seconds']:.1f} s, peak RSS {gen_peak_mb:,.0f} MB")
        gen = json.loads(marker.read_text())
        if args.generate_only:
            print(f"offline store ready in {work}")
            return
        figures = run(work / "var", args.max_users or None, work / "report", args.tune_seconds,
                      args.test_users or None)  # fmt: skip
        if (work / "report" / "cost_pareto.png").exists() and args.out == RESULTS:
            shutil.copyfile(work / "report" / "cost_pareto.png", PLOT)
        if args.out == RESULTS:
            shutil.copyfile(
                work / "report" / "model_comparison.md", RESULTS.with_name("training_comparison.md")
            )
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)

    failed = [k for k, limit in TARGETS.items() if figures[k] > limit]
    best_baseline = max(figures["ndcg20"][k] for k in BASELINES)
    quality = {
        "share_of_oracle_lambdarank_ge_0.70": (figures["share_of_oracle"].get("lambdarank") or 0) >= 0.70,
        "lambdarank_ge_1.05x_best_baseline": figures["ndcg20"]["lambdarank"] >= 1.05 * best_baseline,
        "cost_cut_at_5pct_ndcg_loss_ge_0.30": (figures["cost_cut_at_5pct_ndcg_loss"] or 0) >= 0.30,
    }
    result = {
        "users": args.users,
        "movies": args.movies,
        "watch_sessions": args.sessions,
        "days": args.days,
        "ratings": gen["ratings"],
        "active_users": gen["active_users"],
        "minutes_watched": gen["minutes_watched"],
        "max_users_per_cutoff": args.max_users or None,
        "test_users_sampled": args.test_users or args.max_users or None,
        "trainset_seconds": figures["trainset_seconds"],
        "tune_seconds": figures["tune_seconds"],
        "train_seconds": figures["train_seconds"],
        "evaluate_seconds": figures["evaluate_seconds"],
        "testset_seconds": figures["testset_seconds"],
        "candidate_index_seconds": figures["candidate_index_seconds"],
        "trainset_breakdown_seconds": figures["trainset_breakdown_seconds"],
        "peak_rss_mb": figures["peak_rss_mb"],
        "store_open_seconds": figures["store_open_seconds"],
        "ndcg20": figures["ndcg20"],
        "cost20": figures["cost20"],
        "recall20": figures["recall20"],
        "map20": figures["map20"],
        "coverage20": figures["coverage"],
        "share_of_oracle": figures["share_of_oracle"],
        "ndcg20_vs_best_baseline": figures["ndcg20"]["lambdarank"] / best_baseline if best_baseline else None,
        "candidate_recall": figures["candidate_recall"],
        "cost_cut_at_5pct_ndcg_loss": figures["cost_cut_at_5pct_ndcg_loss"],
        "cost_rule_test": figures["cost_rule_test"],
        "chosen_cost_rule": figures["chosen_cost_rule"],
        "served_rule": figures["served_rule"],
        "verdict": figures["verdict"],
        "half_life_days": figures["half_life_days"],
        "tuning": figures["tuning"],
        "scoring_p99_ms": figures["scoring_p99_ms"],
        "test_users": figures["test_users"],
        "rows": figures["rows"],
        "generation": {
            "seconds": gen["seconds"],
            "process_seconds": gen.get("process_seconds"),
            "peak_rss_mb": gen.get("peak_rss_mb"),
            "reused": reused,
            "feature_rows": gen["feature_rows"],
        },
        "targets": TARGETS,
        "meets_targets": not failed,
        "failed_targets": failed,
        "quality_targets": quality,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GB RAM",
    }
    result = _round(result)
    print(f"world {args.users:,} users x {args.movies:,} movies; {args.sessions:,} sessions over {args.days:g} days, "
          f"{gen['ratings']:,} ratings; {args.max_users or 'all':,} users per cut-off")  # fmt: skip
    print(f"training set   : {result['trainset_seconds']:>8.1f} s (target {TARGETS['trainset_seconds']:.0f}); "
          + ", ".join(f"{k} {v:,}" for k, v in result["rows"].items()))  # fmt: skip
    print(
        "  breakdown    : "
        + ", ".join(f"{k} {v:.1f} s" for k, v in result["trainset_breakdown_seconds"].items())
    )
    print(f"tuning         : {result['tune_seconds']:>8.1f} s (reported apart); {result['tuning']}")
    print(f"training       : {result['train_seconds']:>8.1f} s (target {TARGETS['train_seconds']:.0f})")
    print(f"evaluation     : {result['evaluate_seconds']:>8.1f} s (test set {result['testset_seconds']:.1f} s of it); "
          f"{result['test_users']:,} test users")  # fmt: skip
    print(f"peak RSS       : {result['peak_rss_mb']:>8,.0f} MB (target {TARGETS['peak_rss_mb']:,.0f})")
    for model, ndcg in result["ndcg20"].items():
        if ndcg is not None:
            share = result["share_of_oracle"].get(model)
            print(f"  {model:22s} NDCG@20 {ndcg:.4f}  cost@20 {result['cost20'][model]:.3f} USD"
                  + (f"  {share:.0%} of oracle" if share is not None else ""))  # fmt: skip
    print(f"candidate recall: {result['candidate_recall']}")
    print(f"verdict        : {result['verdict']['reason']}")
    print(
        f"cost cut at ≤5% NDCG loss (test): {result['cost_cut_at_5pct_ndcg_loss']} ({result['cost_rule_test']})"
    )
    g = result["generation"]
    print(f"generation     : {g['process_seconds'] or 0:>8.1f} s, peak RSS {g['peak_rss_mb'] or 0:,.0f} MB "
          f"(not part of the targets{'; reused' if reused else ''})")  # fmt: skip
    print(
        f"meets targets  : {result['meets_targets']}" + (f" (failed: {', '.join(failed)})" if failed else "")
    )
    print(f"quality targets: {quality}")
    from ingestion.progress import atomic_write

    atomic_write(args.out, (json.dumps(result, indent=2, ensure_ascii=False) + "\n").encode())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
