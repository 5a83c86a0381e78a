"""Per-user data of one experiment: impressions, credited ratings and pre-period watch minutes, one row per user.

The user is the unit of randomisation (a salted hash of the user id picks the arm), so every metric
is computed from per-user values: a user's lists share that user's taste and are not independent.

- Exposure: a user's rows are the impressions of the experiment in [started_at, stopped_at). Failed
  requests (non-200) carry no provenance record and so no experiment: they are not in an arm.
  With `path` (e.g. `cold_start`), only the lists answered by that path count: a cold-start
  experiment is read over the users who were cold, as the arms differ only for them.
- Arm: the arm of the user's first impression (intention to treat). Assignment is a stable hash, so
  a user sees one arm unless the routing changed mid-run; `several_arms` counts such users.
- Ratings: rows of `ratings/` by the experiment's users within the window, grouped by the user's
  arm (a rating row carries no experiment name).
- Pre-period minutes (CUPED's covariate): minutes watched in sessions that started in the
  `pre_days` before the start, read from ingestion's `offline/sessions/date=*/*.parquet`; 0 for a
  user with none. Read directly (monitoring does not import ranking).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from monitoring.layout import MonitorLayout
from monitoring.tables import read_impressions, read_ratings

USER_COLUMNS = (
    "user_id", "arm", "requests", "hit", "hits", "watch_minutes", "list_cost", "lists_priced", "hit_cost",
    "rating", "pre_minutes",
)  # fmt: skip
"""Columns of `ExperimentData.users`: per-user sums (`hit` 0/1: any hit; `rating`: mean stars, NaN if none)."""


@dataclass(frozen=True)
class ExperimentData:
    """One experiment's per-user frame and where it came from."""

    users: pd.DataFrame
    started_at: datetime | None
    """The start used (the given one, else the first impression's time)."""
    stopped_at: datetime | None
    several_arms: int
    """Users whose impressions came from more than one arm (kept in their first arm)."""
    pre_period: bool
    """Whether session files covered the pre-period (else `pre_minutes` is all 0 and CUPED is skipped)."""


def utc(when: datetime) -> pd.Timestamp:
    """A datetime as a UTC timestamp (a naive one is read as UTC, like the log's times)."""
    ts = pd.Timestamp(when)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _in_window(
    frame: pd.DataFrame, column: str, start: datetime | None, stop: datetime | None
) -> pd.DataFrame:
    keep = np.ones(len(frame), dtype=bool)
    if start is not None:
        keep &= (frame[column] >= utc(start)).to_numpy()
    if stop is not None:
        keep &= (frame[column] < utc(stop)).to_numpy()
    return frame[keep]


def read_impressions_of(
    var: Path,
    experiment: str,
    started_at: datetime | None,
    stopped_at: datetime | None,
    path: str | None = None,
) -> pd.DataFrame:
    """The experiment's impressions in [started_at, stopped_at), oldest first; only those answered by `path` when given."""
    frame = read_impressions(MonitorLayout(var))
    keep = frame["experiment"] == experiment
    if path is not None:
        keep &= frame["path"] == path
    frame = _in_window(frame[keep], "ts", started_at, stopped_at)
    return frame.sort_values("ts", kind="stable")


def pre_minutes(var: Path, users: pd.Index, start: datetime, days: float) -> pd.Series | None:
    """Minutes each user watched in sessions started in the `days` before `start` (None: no session files)."""
    files = sorted((var / "offline" / "sessions").glob("date=*/*.parquet"))
    lo = utc(start) - pd.Timedelta(days=days)
    # Only the dates that can hold the pre-period: a session belongs to the date it started on.
    wanted = {(lo + pd.Timedelta(days=d)).strftime("%Y-%m-%d") for d in range(int(np.ceil(days)) + 2)}
    files = [f for f in files if f.parent.name.removeprefix("date=") in wanted]
    if not files:
        return None
    cols = ["user_id", "minutes_watched", "start_ts"]
    sessions = pd.concat([pq.read_table(f, columns=cols).to_pandas() for f in files], ignore_index=True)
    sessions["start_ts"] = pd.to_datetime(sessions["start_ts"], utc=True)
    sessions = _in_window(sessions, "start_ts", lo.to_pydatetime(), start)
    sessions = sessions[sessions["user_id"].isin(users)]
    minutes = sessions.groupby("user_id")["minutes_watched"].sum().astype(np.float64)
    return minutes.reindex(users, fill_value=0.0)


def load(
    var: Path,
    experiment: str,
    started_at: datetime | None,
    stopped_at: datetime | None,
    pre_days: float = 14.0,
    path: str | None = None,
) -> ExperimentData:
    """The per-user frame (`USER_COLUMNS`) of one experiment (of the lists answered by `path` when given)."""
    imp = read_impressions_of(var, experiment, started_at, stopped_at, path)
    if started_at is None and len(imp):
        started_at = imp["ts"].iloc[0].to_pydatetime()
    arms_per_user = imp.groupby("user_id")["arm"].nunique()
    arm = imp.groupby("user_id")["arm"].first()  # sorted by time: the first exposure's arm
    priced = imp["list_cost"].notna()
    imp = imp.assign(list_cost=imp["list_cost"].fillna(0.0), lists_priced=priced.astype(np.int64))
    g = imp.groupby("user_id")
    users = pd.DataFrame(
        {"arm": arm, "requests": g.size(), "hit": (g["hit"].max() > 0).astype(np.int64), "hits": g["hit"].sum(),
         "watch_minutes": g["hit_minutes"].sum().astype(np.float64), "list_cost": g["list_cost"].sum(),
         "lists_priced": g["lists_priced"].sum(), "hit_cost": g["hit_cost"].sum()}
    )  # fmt: skip
    users.index.name = "user_id"
    ratings = _in_window(read_ratings(MonitorLayout(var)), "ts", started_at, stopped_at)
    ratings = ratings[ratings["user_id"].isin(users.index)]
    users["rating"] = ratings.groupby("user_id")["rating"].mean().astype(np.float64).reindex(users.index)
    pre = pre_minutes(var, users.index, started_at, pre_days) if started_at is not None else None
    users["pre_minutes"] = pre if pre is not None else 0.0
    users = users.reset_index()[list(USER_COLUMNS)]
    return ExperimentData(users, started_at, stopped_at, int((arms_per_user > 1).sum()), pre is not None)


def window_of(started_at: datetime | None, stopped_at: datetime | None) -> dict[str, str | None]:
    """The analysed window as ISO strings for the JSON record."""
    return {"started_at": started_at.isoformat() if started_at else None,
            "stopped_at": stopped_at.isoformat() if stopped_at else None}  # fmt: skip
