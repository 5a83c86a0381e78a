"""The dashboard's live inputs: Prometheus range queries (latency, DLQ, consumer lag) and the DLQ's Parquet rows.

Prometheus is probed once with a short timeout; when it does not answer every Prometheus panel
says so (with the URL), and the DLQ panel falls back to what ingestion landed offline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from monitoring.report_data import NoData, read_parquet_dir

LATENCY_QUANTILES = (0.5, 0.95, 0.99)
"""Quantiles of the service's latency histogram drawn from Prometheus."""
LATENCY_EXPR = "histogram_quantile({q}, sum by (le) (rate(recsys_request_latency_seconds_bucket[5m])))"
"""Server-side latency quantile (seconds) over 5 minutes, as the availability rules compute it."""
DLQ_EXPR = "sum by (reason) (rate(recsys_ingest_dlq_total[5m])) * 60"
"""Dead letters per minute by reason."""
INGEST_LAG_EXPR = "sum by (partition) (recsys_ingest_consumer_lag)"
"""Ingestion's messages behind the high watermark, per partition."""
MONITOR_LAG_EXPR = "sum by (topic) (recsys_monitor_consumer_lag)"
"""The online metrics job's messages behind, per topic."""


@dataclass
class Prometheus:
    """A Prometheus HTTP API at `url`, probed once; `range` returns series or why there are none."""

    url: str
    hours: float = 6.0
    timeout_s: float = 2.0
    now: float = field(default_factory=time.time)
    _down: NoData | None = field(default=None, init=False)
    _probed: bool = field(default=False, init=False)

    def _get(self, path: str, params: dict[str, str]) -> Any:
        response = httpx.get(self.url.rstrip("/") + path, params=params, timeout=self.timeout_s)
        response.raise_for_status()
        return response.json()

    def reachable(self) -> NoData | None:
        """None when Prometheus answers; else the card's reason (probed on first call only)."""
        if not self._probed:
            self._probed = True
            try:
                self._get("/api/v1/query", {"query": "1"})
            except (httpx.HTTPError, ValueError) as exc:
                self._down = NoData(f"Prometheus not reachable at {self.url} ({type(exc).__name__}: {exc})")
        return self._down

    def range(self, expr: str, label: str, scale: float = 1.0) -> pd.DataFrame | NoData:
        """`expr` over the last `hours` as one column per series (named by `label`'s value), times `scale`."""
        if (down := self.reachable()) is not None:
            return down
        step = max(1, round(self.hours * 3600 / 240))  # about 240 points whatever the span
        params = {
            "query": expr,
            "start": str(self.now - self.hours * 3600),
            "end": str(self.now),
            "step": str(step),
        }
        try:
            body = self._get("/api/v1/query_range", params)
        except (httpx.HTTPError, ValueError) as exc:
            return NoData(f"Prometheus at {self.url} failed the query {expr!r}: {exc}")
        columns: dict[str, pd.Series] = {}
        for series in body.get("data", {}).get("result", []):
            name = str(series.get("metric", {}).get(label, "all")) if label else "value"
            ts, values = zip(*series.get("values", []), strict=True) if series.get("values") else ((), ())
            index = pd.to_datetime([float(t) for t in ts], unit="s", utc=True)
            columns[name] = pd.Series([float(v) * scale for v in values], index=index)
        frame = pd.DataFrame(columns).sort_index()
        if frame.empty or frame.isna().all().all():
            return NoData(f"Prometheus at {self.url} has no samples of {expr!r} in the last {self.hours:g} h")
        return frame

    def latency_ms(self) -> pd.DataFrame | NoData:
        """p50/p95/p99 of the service's latency histogram (ms) over the last hours."""
        parts: dict[str, pd.Series] = {}
        for q in LATENCY_QUANTILES:
            frame = self.range(LATENCY_EXPR.format(q=q), "", scale=1000.0)
            if isinstance(frame, NoData):
                return frame
            parts[f"p{round(q * 100)}"] = frame.iloc[:, 0]
        return pd.DataFrame(parts)

    def consumer_lag(self) -> pd.DataFrame | NoData:
        """Messages behind: ingestion per partition and the online job per topic, one column each."""
        ingest = self.range(INGEST_LAG_EXPR, "partition")
        monitor = self.range(MONITOR_LAG_EXPR, "topic")
        frames = [
            f.add_prefix(prefix)
            for f, prefix in ((ingest, "ingestion p"), (monitor, "monitor "))
            if not isinstance(f, NoData)
        ]
        if not frames:
            assert isinstance(ingest, NoData)
            return ingest
        return pd.concat(frames, axis=1).sort_index()


def dlq_from_parquet(offline_root: Path, window_s: int) -> pd.DataFrame | NoData:
    """Dead letters per minute by reason, per `window_s` window of Kafka time, from raw/dlq Parquet."""
    rows = read_parquet_dir(
        offline_root / "raw" / "dlq", ["ts", "reason"], "dead letters in the offline store"
    )
    if isinstance(rows, NoData):
        return rows
    ts = pd.to_datetime(rows["ts"], utc=True).dt.floor(f"{window_s}s")
    counts = (
        rows.assign(window_start=ts)
        .groupby(["window_start", "reason"])
        .size()
        .unstack("reason", fill_value=0)
    )
    return counts.astype(float) / (window_s / 60.0)


def dlq_rate(prometheus: Prometheus, offline_root: Path, window_s: int) -> tuple[pd.DataFrame | NoData, str]:
    """The DLQ rate and where it came from: Prometheus when it has series, else the offline store."""
    live = prometheus.range(DLQ_EXPR, "reason")
    if not isinstance(live, NoData):
        return live, f"Prometheus ({prometheus.url}), rate over 5 min"
    offline = dlq_from_parquet(offline_root, window_s)
    if isinstance(offline, NoData):
        return NoData(f"{live.reason}; and {offline.reason}"), ""
    return (
        offline,
        f"offline store raw/dlq Parquet, {window_s} s windows of Kafka time (because {live.reason})",
    )
