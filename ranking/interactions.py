"""Reading the offline store for training: watch sessions, ratings and movie runtimes/costs, cut at times.

Leakage rules (tested): a session belongs to history only if it *ended* before the cut-off,
and to a label window only if it *started* inside it; a session spanning the cut-off is in
neither, so no minute watched after a cut-off can reach the features or candidates of that
cut-off.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from ranking import columns as C  # noqa: N812 (the Recommenders idiom: C.USER, C.ITEM)


def _read(glob: str, select: str) -> pd.DataFrame:
    con = duckdb.connect()
    try:
        df: pd.DataFrame = con.sql(f"SELECT {select} FROM read_parquet('{glob}', union_by_name=true)").df()
        return df
    finally:
        con.close()


def load_sessions(offline: Path) -> pd.DataFrame:
    """All watch sessions: user_id, movie_id, minutes_watched, start_ts, end_ts (UTC)."""
    files = list((offline / "sessions").glob("date=*/*.parquet"))
    if not files:
        raise FileNotFoundError(f"no sessions under {offline / 'sessions'}: run `recsys ingest` first")
    df = _read(
        str(offline / "sessions" / "date=*" / "*.parquet"),
        "user_id, movie_id, minutes_watched, start_ts, end_ts",
    )
    for col in (C.START_TS, C.END_TS):
        df[col] = pd.to_datetime(df[col], utc=True).dt.floor("us")
    return df


def load_ratings(offline: Path) -> pd.DataFrame:
    """All ratings: user_id, movie_id, rating, ts (UTC); empty when none."""
    base = offline / "raw" / "rate"
    if not any(base.glob("date=*/*.parquet")):
        return pd.DataFrame({C.USER: pd.Series(dtype="int64"), C.ITEM: pd.Series(dtype="str"),
                             C.RATING: pd.Series(dtype="int64"), "ts": pd.Series(dtype="datetime64[us, UTC]")})  # fmt: skip
    df = _read(str(base / "date=*" / "*.parquet"), "user_id, movie_id, rating, ts")
    df["ts"] = pd.to_datetime(df["ts"], utc=True).dt.floor("us")
    return df


def last_days(
    sessions: pd.DataFrame, ratings: pd.DataFrame, days: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sessions that end, and ratings given, within `days` of the latest session's end: a training window.

    Retraining then costs the same every day instead of growing with the log, and old tastes stop
    weighing on a model that must follow drift.
    """
    cut = sessions[C.END_TS].max() - pd.Timedelta(days=days)
    return (
        sessions[sessions[C.END_TS] >= cut].reset_index(drop=True),
        ratings[ratings["ts"] >= cut].reset_index(drop=True),
    )


def load_movies(offline: Path) -> pd.DataFrame:
    """Latest catalogue facts per movie (movie_id, cost, runtime, genres) from the movie_metadata view."""
    base = offline / "features" / "movie_metadata"
    if not any(base.glob("*.parquet")):
        return pd.DataFrame({C.ITEM: pd.Series(dtype="str"), C.COST: pd.Series(dtype="float64"),
                             "runtime": pd.Series(dtype="float64")})  # fmt: skip
    df = _read(str(base / "*.parquet"), "movie_id, cost, runtime, genres, event_timestamp, created")
    df = df.sort_values(["event_timestamp", "created"]).drop_duplicates(C.ITEM, keep="last")
    return df[[C.ITEM, C.COST, "runtime", "genres"]].reset_index(drop=True)


def history(sessions: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Sessions known at `cutoff` as generator input: user_id, movie_id, minutes_watched, event_timestamp."""
    # Compare and copy the timestamps as the DatetimeArray (int64 inside): `.to_numpy()` of a
    # tz-aware column makes one Timestamp object per row, which is slow at millions of rows.
    end = sessions[C.END_TS].array
    keep = np.asarray(end < cutoff, dtype=bool)
    return pd.DataFrame({
        C.USER: sessions[C.USER].to_numpy()[keep], C.ITEM: sessions[C.ITEM].to_numpy()[keep],
        C.MINUTES: sessions[C.MINUTES].to_numpy()[keep], C.TIMESTAMP: end[keep],
    })  # fmt: skip


def labels(
    sessions: pd.DataFrame,
    ratings: pd.DataFrame,
    runtime: dict[str, float],
    start: pd.Timestamp,
    end: pd.Timestamp,
    default_runtime: float = 100.0,
) -> pd.DataFrame:
    """Graded relevance (0..4) of what users did in [start, end): user_id, movie_id, gain.

    Watching: 1 for under a quarter of the runtime, 2 under three quarters, 3 beyond; a rating
    of 4+ adds 1, a rating of 2 or less caps the gain at 1; a rating alone counts 2 (4+), 1 (3).
    """
    s = sessions[(sessions[C.START_TS] >= start) & (sessions[C.START_TS] < end)]
    share = s[C.MINUTES].to_numpy() / s[C.ITEM].map(runtime).fillna(default_runtime).clip(lower=1).to_numpy()
    watch = pd.DataFrame({C.USER: s[C.USER].to_numpy(), C.ITEM: s[C.ITEM].to_numpy(),
                          "w": (1 + (share >= 0.25) + (share >= 0.75)).astype("int64")})  # fmt: skip
    watch = watch.groupby([C.USER, C.ITEM], as_index=False).agg(w=("w", "max"))
    r = ratings[(ratings["ts"] >= start) & (ratings["ts"] < end)]
    r = r.groupby([C.USER, C.ITEM], as_index=False).agg(rating=(C.RATING, "max"))
    both = watch.merge(r, on=[C.USER, C.ITEM], how="outer")
    w = both["w"].fillna(0).to_numpy()
    rt = both[C.RATING].fillna(0).to_numpy()
    gain = w.copy()
    gain = gain + ((rt >= 4) & (w > 0))
    gain[(rt > 0) & (rt <= 2)] = gain[(rt > 0) & (rt <= 2)].clip(max=1)
    only_rating = w == 0
    gain[only_rating & (rt >= 4)] = 2
    gain[only_rating & (rt == 3)] = 1
    out = pd.DataFrame(
        {C.USER: both[C.USER].astype("int64"), C.ITEM: both[C.ITEM], C.GAIN: gain.clip(0, 4).astype("int64")}
    )
    return out[out[C.GAIN] > 0].reset_index(drop=True)
