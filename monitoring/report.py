"""`recsys monitor report`: one self-contained HTML dashboard from the windows, drift, skew, DLQ and Prometheus.

Each panel is built on its own: an input that is missing (or a chart that fails) becomes a
"no data because …" card, so the page is always written and always says what it could not show.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from monitoring import charts
from monitoring import report_data as D  # noqa: N812
from monitoring.layout import MonitorLayout
from monitoring.report_html import RESULT_EXPLANATIONS, Panel, render
from monitoring.report_sources import Prometheus, dlq_rate
from monitoring.settings import MonitorSettings

log = logging.getLogger(__name__)

LOG_TIME = "window start (UTC, log time of the front end's lines)"
"""X label of charts over the online job's windows."""
WALL_TIME = "time (UTC, Prometheus samples)"
"""X label of charts over Prometheus range queries."""


def _panel(
    key: str, title: str, explanation: str, draw: Callable[[], str | D.NoData], source: str = ""
) -> Panel:
    """Runs `draw`; its NoData, an empty series or an exception become the panel's card."""
    try:
        result = draw()
    except Exception as exc:  # one bad input must not cost the whole page
        log.warning("report panel %s failed", key, exc_info=True)
        result = D.NoData(f"the chart could not be drawn: {type(exc).__name__}: {exc}")
    if isinstance(result, D.NoData):
        return Panel(key, title, explanation, missing=result, source=source)
    return Panel(key, title, explanation, png=result, source=source)


def _series(
    frame: pd.DataFrame | D.NoData, empty: str, chart: Callable[[pd.DataFrame], str]
) -> Callable[[], str | D.NoData]:
    """A draw function: NoData passes through, an all-NaN frame becomes `empty`, else `chart(frame)`."""

    def draw() -> str | D.NoData:
        if isinstance(frame, D.NoData):
            return frame
        kept = frame.dropna(how="all")
        if kept.empty or kept.isna().all().all():
            return D.NoData(empty)
        return chart(kept)

    return draw


def _hit_chart(frame: pd.DataFrame, title: str) -> str:
    return charts.lines(frame, title, "% of answered lists", LOG_TIME, percent=True)


def _windows_panels(w: pd.DataFrame | D.NoData, settings: MonitorSettings) -> list[Panel]:
    def derived(f: Callable[[pd.DataFrame], pd.DataFrame]) -> pd.DataFrame | D.NoData:
        return w if isinstance(w, D.NoData) else f(w)

    win = f"{settings.window_s} s"
    pct, ms, usd = "% of requests", "milliseconds", "USD"
    panels = [
        _panel(
            "availability",
            "Availability",
            f"Share of recommendation requests the front end logged as answered 200 within {settings.sla_ms} ms "
            f"(the course's availability) and answered 200 at all, per {win} window, all arms and models.",
            _series(
                derived(D.availability),
                "no requests in any window",
                lambda f: charts.lines(
                    f, "Availability per window", pct, LOG_TIME, percent=True, from_zero=False
                ),
            ),
        ),
        _panel(
            "latency",
            "Latency percentiles (front end's view)",
            "p50/p95/p99 response time from the front end's log lines per window; across arms, models and paths "
            f"each percentile is the request-weighted mean of theirs. Dashed: the {settings.sla_ms} ms SLA.",
            _series(
                derived(D.latency),
                "no latency percentiles in the windows",
                lambda f: charts.lines(
                    f, "Latency per window", ms, LOG_TIME, reference=(settings.sla_ms, "SLA")
                ),
            ),
        ),
    ]
    for by, what in (("arm", "experiment arm"), ("model", "model version"), ("path", "answer path")):
        panels.append(
            _panel(
                f"hit_rate_{by}",
                f"Hit rate by {what}",
                f"Share of lists answered 200 that were followed by a watch of a listed movie within the hit "
                f"window ({settings.hit_window_s // 60} min), per {win} window and {what}.",
                _series(
                    derived(partial(D.hit_rate, by=by)),
                    "no answered lists",
                    partial(_hit_chart, title=f"Hit rate by {what}"),
                ),
            )
        )
    costs = derived(D.cost)
    budget = settings.cost_budget_per_1k
    panels += [
        _panel(
            "cost_per_1k",
            "Licence cost per 1,000 requests",
            f"Licence cost per 1,000 requests answered 200, per {win} window: of the watches that followed a "
            f"list (the budgeted figure, as in the cost alert) and of the lists served (every listed movie "
            f"played). Dashed: the budget ({budget:,.0f} USD).",
            _series(
                costs if isinstance(costs, D.NoData) else costs[[D.WATCH_PER_1K, D.LIST_PER_1K]],
                "no answered lists",
                lambda f: charts.lines(
                    f, "Cost per 1,000 answered requests", usd, LOG_TIME, reference=(budget, "budget")
                ),
            ),
        ),
        _panel(
            "cost_per_watch",
            "Licence cost per watch",
            f"Licence cost incurred by the plays that followed a recommendation, divided by those hits, per {win} window.",
            _series(
                costs if isinstance(costs, D.NoData) else costs[["per watch (hit)"]],
                "no hits, so no cost per watch",
                lambda f: charts.lines(f, "Cost per watch that followed a list", usd, LOG_TIME),
            ),
        ),
        _panel(
            "model_versions",
            "Model versions over time",
            f"Requests per {win} window by the `model` that answered (`none`: fallback or cold start without a model).",
            _series(
                derived(D.model_requests),
                "no requests in any window",
                lambda f: charts.stacked(f, "Requests by model version", "requests per window", LOG_TIME),
            ),
        ),
    ]
    return panels


def _result_panel(
    key: str,
    title: str,
    result: dict[str, Any] | D.NoData,
    value: str,
    label: list[str],
    axis: str,
    fallback: float,
) -> Panel:
    threshold_key = "mismatch_threshold" if key == "skew_replay" else "threshold"
    threshold = fallback if isinstance(result, D.NoData) else float(result.get(threshold_key) or fallback)
    explanation = RESULT_EXPLANATIONS[key].format(t=f"{threshold:g}")
    extra = ""
    if isinstance(result, dict):
        explanation += f" Computed at {result.get('computed_at', '?')}."
        schema = result.get("schema") or []
        if schema:
            from html import escape

            items = "".join(
                f"<li>{escape(str(c.get('source')))}: {escape(str(c.get('field')))} {escape(str(c.get('change')))}"
                f" ({escape(str(c.get('detail', '')))})</li>"
                for c in schema
            )
            extra = f'<p class="why">Schema changes:</p><ul class="schema">{items}</ul>'
    draw = _series(
        result if isinstance(result, D.NoData) else D.feature_scores(result, value, label).set_index("name"),
        "no feature scores in the result",
        lambda f: charts.bars(f.reset_index(), title, axis, threshold, f"threshold {threshold:g}"),
    )
    panel = _panel(key, title, explanation, draw)
    return Panel(panel.key, panel.title, panel.explanation, panel.png, panel.missing, panel.source, extra)


def build_panels(
    settings: MonitorSettings, *, prometheus_hours: float = 6.0
) -> tuple[D.Headline, list[Panel]]:
    """Reads every input once and returns the headline numbers and every panel, in page order."""
    layout = MonitorLayout(settings.var_dir)
    windows = D.read_windows(layout.windows)
    ratings = D.read_parquet_dir(layout.ratings, ["rating"], "ratings credited to recommendations")
    drift = D.read_result(layout.drift / "latest.json", "recsys monitor drift")
    skew = D.read_result(layout.skew / "latest.json", "recsys monitor skew")
    prom = Prometheus(settings.prometheus_url, hours=prometheus_hours)
    panels = _windows_panels(windows, settings)
    panels.insert(
        2,
        _panel(
            "latency_server",
            "Latency percentiles (service's histogram)",
            f"p50/p95/p99 of recsys_request_latency_seconds over 5-minute rates, last {prometheus_hours:g} h.",
            _series(
                prom.latency_ms(),
                "no latency samples",
                lambda f: charts.lines(
                    f, "Server-side latency", "milliseconds", WALL_TIME, reference=(settings.sla_ms, "SLA")
                ),
            ),
            source=settings.prometheus_url,
        ),
    )
    panels.append(
        _result_panel(
            "drift",
            "Drift per feature",
            drift,
            "score",
            ["profile", "feature"],
            "drift score (Hellinger distance)",
            settings.drift_threshold,
        )
    )
    panels.append(
        _result_panel(
            "skew",
            "Train/serve skew per feature",
            skew,
            "psi",
            ["feature"],
            "PSI (served vs training)",
            settings.skew_psi_threshold,
        )
    )
    panels.append(
        _result_panel(
            "skew_replay",
            "Train/serve skew: served vs recomputed rows",
            skew,
            "mismatch_share",
            ["feature"],
            "share of rows that differ",
            settings.skew_mismatch_threshold,
        )
    )
    dlq, dlq_source = dlq_rate(prom, settings.var_dir / "offline", settings.window_s)
    panels.append(
        _panel(
            "dlq",
            "Dead-letter rate",
            "Lines ingestion could not parse or validate, sent to the dead-letter topic, per minute by reason.",
            _series(
                dlq,
                "no dead letters",
                lambda f: charts.lines(f, "Dead letters per minute", "lines per minute", "time (UTC)"),
            ),
            source=dlq_source,
        )
    )
    panels.append(
        _panel(
            "consumer_lag",
            "Consumer lag",
            "Messages behind the high watermark: ingestion per partition (recsys_ingest_consumer_lag) and the online "
            "metrics job per topic (recsys_monitor_consumer_lag).",
            _series(
                prom.consumer_lag(),
                "no lag samples",
                lambda f: charts.lines(f, "Consumer lag", "messages behind", WALL_TIME),
            ),
            source=settings.prometheus_url,
        )
    )
    return D.headline(windows, ratings, drift, skew, settings.cost_budget_per_1k), panels


def write_report(settings: MonitorSettings, *, prometheus_hours: float = 6.0) -> Path:
    """Writes var/monitoring/report.html (replaced atomically) and returns its path."""
    started = time.perf_counter()
    head, panels = build_panels(settings, prometheus_hours=prometheus_hours)
    path = MonitorLayout(settings.var_dir).report
    path.parent.mkdir(parents=True, exist_ok=True)
    page = render(head, panels, settings, seconds=time.perf_counter() - started)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)  # a browser or a test never reads a half-written page
    return path
