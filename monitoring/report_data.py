"""The dashboard's offline inputs (the online job's windows, drift and skew results) shaped into chart series.

Every loader returns either data or a `NoData` carrying the reason, so the page shows "no data
because …" instead of a broken chart and one missing input never stops the others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.dataset as pads

from monitoring.layout import WINDOW_COLUMNS

COUNT_COLUMNS = (
    "requests",
    "ok",
    "available",
    "hits",
    "hit_rank_sum",
    "hit_minutes_sum",
    "hit_completion_sum",
    "hit_completion_n",
    "list_cost_sum",
    "list_cost_n",
    "hit_cost_sum",
)
"""Window columns that add up across arms, models, paths and duplicate rows."""
LIST_PER_1K = "lists served, per 1,000 answered requests"
"""Cost column: summed list cost / requests answered 200 * 1000."""
WATCH_PER_1K = "watches that followed, per 1,000 answered requests"
"""Cost column: cost incurred by hit plays / requests answered 200 * 1000 (the budgeted figure)."""
PERCENTILES = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms")
"""Window columns that do not add up: combined as a request-weighted mean."""


@dataclass(frozen=True)
class NoData:
    """Why a panel or a number has nothing to show (rendered as a card, never an exception)."""

    reason: str


def read_parquet_dir(path: Path, columns: list[str], what: str) -> pd.DataFrame | NoData:
    """All Parquet files under `path` (only `columns`), or why there are none."""
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else []
    if not files:
        return NoData(f"no {what} yet: no Parquet files under {path}")
    try:
        table = pads.dataset([str(f) for f in files], format="parquet").to_table(columns=columns)
    except Exception as exc:  # any unreadable part turns into a card, not a failed report
        return NoData(f"{what} unreadable under {path}: {exc}")
    frame: pd.DataFrame = table.to_pandas()
    if frame.empty:
        return NoData(f"no {what} yet: the files under {path} hold no rows")
    return frame


def read_windows(path: Path) -> pd.DataFrame | NoData:
    """The online job's window rows (WINDOW_COLUMNS), `window_start` as UTC timestamps."""
    frame = read_parquet_dir(path, list(WINDOW_COLUMNS), "online metrics windows (`recsys monitor stream`)")
    if isinstance(frame, NoData):
        return frame
    frame["window_start"] = pd.to_datetime(frame["window_start"], utc=True)
    for col in ("arm", "model", "path"):
        frame[col] = frame[col].astype(str)
    return frame


def read_result(path: Path, command: str) -> dict[str, Any] | NoData:
    """A drift or skew `latest.json`, or why it is missing."""
    if not path.exists():
        return NoData(f"no result yet: {path} does not exist (run `{command}`)")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return NoData(f"{path} unreadable: {exc}")
    if not isinstance(data, dict) or not data.get("rows"):
        return NoData(f"{path} holds no feature rows")
    return data


def _by_window(windows: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    keys = ["window_start"] if by is None else ["window_start", by]
    return windows.groupby(keys, sort=True)[list(COUNT_COLUMNS)].sum()


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    """num / den with 0 denominators giving NaN (a gap in the line), not inf."""
    return num / den.where(den > 0)


def availability(windows: pd.DataFrame) -> pd.DataFrame:
    """Per window: share of requests answered 200 within the SLA, and share answered 200 at all."""
    w = _by_window(windows)
    return pd.DataFrame(
        {
            "available within SLA": _ratio(w["available"], w["requests"]),
            "answered 200": _ratio(w["ok"], w["requests"]),
        }
    )


def latency(windows: pd.DataFrame) -> pd.DataFrame:
    """Per window: p50/p95/p99 (ms), each a request-weighted mean over the window's arm/model/path rows."""
    rows = windows.dropna(subset=list(PERCENTILES))
    rows = rows[rows["requests"] > 0]
    weighted = rows[list(PERCENTILES)].mul(rows["requests"], axis=0)
    weighted["window_start"] = rows["window_start"]
    weighted["requests"] = rows["requests"]
    sums = weighted.groupby("window_start", sort=True).sum()
    out = sums[list(PERCENTILES)].div(sums["requests"], axis=0)
    return out.rename(columns={c: c.removeprefix("latency_").removesuffix("_ms") for c in PERCENTILES})


def hit_rate(windows: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per window, one column per value of `by` (arm, model or path): hits / lists answered 200."""
    w = _by_window(windows, by)
    rates: pd.DataFrame = _ratio(w["hits"], w["ok"]).unstack(by)
    return rates.sort_index(axis=1)


def cost(windows: pd.DataFrame) -> pd.DataFrame:
    """Per window (USD): cost of the lists served and of the watches that followed, per 1,000 answered requests; per watch.

    The budget applies to the watches' cost, as in the OnlineCostOverBudget alert; the lists' cost
    is what the served lists would cost if every movie on them were played.
    """
    w = _by_window(windows)
    return pd.DataFrame(
        {
            LIST_PER_1K: _ratio(w["list_cost_sum"], w["ok"]) * 1000.0,
            WATCH_PER_1K: _ratio(w["hit_cost_sum"], w["ok"]) * 1000.0,
            "per watch (hit)": _ratio(w["hit_cost_sum"], w["hits"]),
        }
    )


def model_requests(windows: pd.DataFrame) -> pd.DataFrame:
    """Per window, one column per `model` label: requests it answered (the model versions over time)."""
    return _by_window(windows, "model")["requests"].unstack("model", fill_value=0).sort_index(axis=1)


def feature_scores(result: dict[str, Any], value: str, label: list[str]) -> pd.DataFrame:
    """Rows of a drift or skew result as (name, value, flagged), highest value first."""
    rows = []
    for row in result.get("rows", []):
        name = "/".join(str(row.get(k)) for k in label)
        score = row.get(value)
        flagged = row.get("drifted", row.get("skewed", False))
        rows.append(
            {
                "name": name,
                "value": float(score) if score is not None else float("nan"),
                "flag": bool(flagged),
            }
        )
    frame = pd.DataFrame(rows, columns=["name", "value", "flag"]).dropna(
        subset=["value"]
    )  # not measured: no bar
    return frame.sort_values("value", ascending=False)


@dataclass(frozen=True)
class Headline:
    """The numbers on top of the page; each is a value or the reason it is missing."""

    requests: int | NoData
    availability: float | NoData
    hit_rate: float | NoData
    cost_per_1k: float | NoData
    """Watch cost per 1,000 answered requests (the budgeted figure)."""
    list_cost_per_1k: float | NoData
    cost_budget_per_1k: float
    drifted: tuple[int, int] | NoData
    skewed: tuple[int, int] | NoData
    mean_rating: float | NoData


def _flagged(result: dict[str, Any] | NoData, flag: str) -> tuple[int, int] | NoData:
    if isinstance(result, NoData):
        return result
    rows = result.get("rows", [])
    return sum(1 for r in rows if r.get(flag)), len(rows)


def headline(
    windows: pd.DataFrame | NoData,
    ratings: pd.DataFrame | NoData,
    drift: dict[str, Any] | NoData,
    skew: dict[str, Any] | NoData,
    budget: float,
) -> Headline:
    """Whole-period figures: availability, hit rate, cost per 1,000 vs budget, drifted and skewed features."""
    drifted, skewed = _flagged(drift, "drifted"), _flagged(skew, "skewed")
    rating: float | NoData = (
        ratings if isinstance(ratings, NoData) else float(pd.to_numeric(ratings["rating"]).mean())
    )
    if isinstance(windows, NoData):
        return Headline(windows, windows, windows, windows, windows, budget, drifted, skewed, rating)
    t = windows[list(COUNT_COLUMNS)].sum()
    requests, ok = int(t["requests"]), float(t["ok"])
    none = NoData("no recommendation requests in the windows")
    none_ok = NoData("no request was answered 200")
    return Headline(
        requests=requests,
        availability=float(t["available"]) / requests if requests else none,
        hit_rate=float(t["hits"]) / ok if ok else none_ok,
        cost_per_1k=float(t["hit_cost_sum"]) / ok * 1000.0 if ok else none_ok,
        list_cost_per_1k=float(t["list_cost_sum"]) / ok * 1000.0 if ok else none_ok,
        cost_budget_per_1k=budget,
        drifted=drifted,
        skewed=skewed,
        mean_rating=rating,
    )
