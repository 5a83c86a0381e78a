"""Matplotlib (Agg) charts of the dashboard, each returned as a base64 PNG so the page needs no external file."""

from __future__ import annotations

import base64
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: the report is written by a CLI, a test or a scheduler

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pandas as pd

SIZE = (9.0, 3.2)
"""Inches of a time-series chart (at DPI: 810 x 288 px)."""
DPI = 90
"""Resolution of the PNGs: sharp on screen, a few tens of kB each."""
OK, BAD, LINE = "#4c78a8", "#e45756", "#888888"
"""Bar colours (below / above the threshold) and the reference-line colour."""


def _png(fig: Any) -> str:
    """The figure as base64 PNG text (and closed, so long runs do not keep figures alive)."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _time_axis(ax: Any, xlabel: str, index: pd.DatetimeIndex) -> None:
    if len(index) and index.min() == index.max():  # one instant: else the locator spans years around it
        ax.set_xlim(index.min() - pd.Timedelta(minutes=5), index.max() + pd.Timedelta(minutes=5))
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    ax.set_xlabel(xlabel)
    ax.grid(True, alpha=0.3)


def lines(
    frame: pd.DataFrame,
    title: str,
    ylabel: str,
    xlabel: str,
    *,
    percent: bool = False,
    reference: tuple[float, str] | None = None,
    from_zero: bool = True,
) -> str:
    """One line per column over the time index; `reference` draws a dashed (value, label) line.

    `from_zero=False` lets the y axis zoom in (availability near 100% is flat on a 0-100 axis).
    """
    fig, ax = plt.subplots(figsize=SIZE)
    index = pd.DatetimeIndex(frame.index).tz_convert("UTC").tz_localize(None)
    marker = "o" if len(frame) <= 30 else None  # few windows: points stay visible
    for col in frame.columns:
        values = frame[col].to_numpy(dtype=float) * (100.0 if percent else 1.0)
        ax.plot(index, values, marker=marker, markersize=3, linewidth=1.4, label=str(col))
    if reference is not None:
        value, label = reference
        ax.axhline(value * (100.0 if percent else 1.0), color=LINE, linestyle="--", linewidth=1, label=label)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if from_zero:
        ax.set_ylim(bottom=0)
    elif percent:
        ax.set_ylim(top=min(ax.get_ylim()[1], 100.5))
    _time_axis(ax, xlabel, index)
    if len(frame.columns) > 1 or reference is not None:
        ax.legend(fontsize=8, loc="best", ncol=min(4, len(frame.columns) + 1))
    return _png(fig)


def stacked(frame: pd.DataFrame, title: str, ylabel: str, xlabel: str) -> str:
    """Stacked areas over the time index (e.g. requests per model version per window)."""
    fig, ax = plt.subplots(figsize=SIZE)
    index = pd.DatetimeIndex(frame.index).tz_convert("UTC").tz_localize(None)
    values = [frame[c].to_numpy(dtype=float) for c in frame.columns]
    if len(frame) == 1:  # one window: an area needs two points, bars show it
        bottom = 0.0
        for col, v in zip(frame.columns, values, strict=True):
            ax.bar(index, v, bottom=bottom, width=0.002, label=str(col))
            bottom += float(v[0])
    else:
        ax.stackplot(index, *values, labels=[str(c) for c in frame.columns], alpha=0.85)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    _time_axis(ax, xlabel, index)
    ax.legend(fontsize=8, loc="upper left", ncol=min(6, len(frame.columns)))
    return _png(fig)


def bars(frame: pd.DataFrame, title: str, xlabel: str, threshold: float, threshold_label: str) -> str:
    """Horizontal bars of `value` per `name` (red when `flag`), with the threshold as a dashed line."""
    shown = frame.head(40).iloc[::-1]  # largest on top; a long tail adds nothing readable
    height = min(12.0, max(2.4, 0.28 * len(shown) + 1.2))
    fig, ax = plt.subplots(figsize=(9.0, height))
    colours = [BAD if f else OK for f in shown["flag"]]
    ax.barh(shown["name"].astype(str), shown["value"].astype(float), color=colours)
    ax.axvline(threshold, color=LINE, linestyle="--", linewidth=1, label=threshold_label)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("feature")
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)
