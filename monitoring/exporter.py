"""The monitor's /metrics endpoint: the online job's counters plus drift and skew gauges read from their latest results.

Drift and skew are computed by separate runs (`recsys monitor drift|skew`, a scheduler's jobs);
their `latest.json` is read at scrape time, so the gauges always show the newest result and a
stale one is visible through `recsys_monitor_result_age_seconds`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitoring import metrics as M  # noqa: N812
from monitoring.layout import MonitorLayout
from monitoring.settings import MonitorSettings

log = logging.getLogger(__name__)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _age(result: dict[str, Any]) -> float | None:
    try:
        return time.time() - datetime.fromisoformat(str(result["computed_at"])).timestamp()
    except (KeyError, ValueError, TypeError):
        return None


class ResultCollector(Collector):
    """Drift and skew gauges (skew: PSI, mismatch share, detected) from `drift/latest.json` and `skew/latest.json` (formats in monitoring.layout)."""

    def __init__(self, layout: MonitorLayout) -> None:
        self.layout = layout

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One family per gauge; absent results give empty families (no stale values)."""
        score = GaugeMetricFamily(
            M.DRIFT_SCORE, "Drift score against the training reference.", labels=["profile", "feature"]
        )
        drifted = GaugeMetricFamily(
            M.DRIFT_DETECTED, "1 when the drift score is above the threshold.", labels=["profile", "feature"]
        )
        schema = GaugeMetricFamily(
            M.SCHEMA_CHANGES, "Schema changes by source and kind.", labels=["source", "change"]
        )
        psi = GaugeMetricFamily(M.SKEW_PSI, "PSI of served against training values.", labels=["feature"])
        mismatch = GaugeMetricFamily(
            M.SKEW_MISMATCH,
            "Share of replayed served rows whose value differs from the training path's.",
            labels=["feature"],
        )
        skewed = GaugeMetricFamily(
            M.SKEW_DETECTED,
            "1 when the feature is skewed (mismatch share, or PSI where not recomputed).",
            labels=["feature"],
        )
        age = GaugeMetricFamily(M.RESULT_AGE, "Seconds since the latest result.", labels=["check"])
        drift = _read(self.layout.drift / "latest.json")
        if drift is not None:
            for row in drift.get("rows", []):
                labels = [str(row.get("profile")), str(row.get("feature"))]
                score.add_metric(labels, float(row.get("score") or 0.0))
                drifted.add_metric(labels, 1.0 if row.get("drifted") else 0.0)
            counts: dict[tuple[str, str], int] = {}
            for change in drift.get("schema", []):
                key = (str(change.get("source")), str(change.get("change")))
                counts[key] = counts.get(key, 0) + 1
            for source in ("stream", "metadata"):
                for kind in ("new", "missing", "retyped"):
                    schema.add_metric([source, kind], float(counts.get((source, kind), 0)))
            if (seconds := _age(drift)) is not None:
                age.add_metric(["drift"], seconds)
        skew = _read(self.layout.skew / "latest.json")
        if skew is not None:
            for row in skew.get("rows", []):
                psi.add_metric([str(row.get("feature"))], float(row.get("psi") or 0.0))
                skewed.add_metric([str(row.get("feature"))], 1.0 if row.get("skewed") else 0.0)
                if row.get("mismatch_share") is not None:
                    mismatch.add_metric([str(row.get("feature"))], float(row["mismatch_share"]))
            if (seconds := _age(skew)) is not None:
                age.add_metric(["skew"], seconds)
        yield from (score, drifted, schema, psi, mismatch, skewed, age)


_registered: set[Path] = set()


def start_exporter(settings: MonitorSettings) -> bool:
    """Serve /metrics on the monitor's port (the job's counters and the result gauges); False when disabled."""
    layout = MonitorLayout(settings.var_dir)
    if layout.root not in _registered:
        REGISTRY.register(ResultCollector(layout))
        _registered.add(layout.root)
    M.COST_BUDGET.set(settings.cost_budget_per_1k)
    if not settings.metrics_port:
        return False
    start_http_server(settings.metrics_port, addr=settings.metrics_host)
    log.info("monitor metrics on %s:%s", settings.metrics_host, settings.metrics_port)
    return True
