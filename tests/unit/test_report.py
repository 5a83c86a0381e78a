"""The dashboard's figures from synthetic windows, and its "no data because …" cards when inputs are missing."""

from __future__ import annotations

import math
import re
import socket
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from monitoring import report_data as D  # noqa: N812
from monitoring.layout import MonitorLayout
from monitoring.report import build_panels, write_report
from monitoring.report_sources import dlq_from_parquet
from monitoring.settings import MonitorSettings
from tests.report_inputs import (
    START,
    window_row,
    write_dlq,
    write_drift,
    write_ratings,
    write_skew,
    write_windows,
)

LATER = START + timedelta(minutes=5)
PANELS = {
    "availability", "latency", "latency_server", "hit_rate_arm", "hit_rate_model", "hit_rate_path",
    "cost_per_1k", "cost_per_watch", "model_versions", "drift", "skew", "skew_replay", "dlq", "consumer_lag",
}  # fmt: skip


def closed_url() -> str:
    """An http URL on a loopback port nobody listens on (Prometheus "not reachable")."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def settings(var: Path) -> MonitorSettings:
    return MonitorSettings(var_dir=var, prometheus_url=closed_url(), cost_budget_per_1k=3000.0)


@pytest.fixture
def windows(tmp_path: Path) -> pd.DataFrame:
    """Two windows: a healthy one over two arms and models, then an outage (nothing answered 200)."""
    rows = [
        window_row(START, "control", "v3", "model", requests=100, ok=98, available=95, hits=10,
                   list_cost_sum=490.0, hit_cost_sum=4.0, latency_p50_ms=40.0),
        window_row(START, "treatment", "v4", "model", requests=300, ok=300, available=300, hits=90,
                   list_cost_sum=900.0, hit_cost_sum=18.0, latency_p50_ms=80.0),
        window_row(LATER, "control", "v3", "fallback", requests=50, ok=0, available=0),
    ]  # fmt: skip
    layout = MonitorLayout(tmp_path)
    write_windows(layout, rows[:2], part=0)
    write_windows(layout, rows[2:], part=1)  # parts of later flushes are read together
    frame = D.read_windows(layout.windows)
    assert isinstance(frame, pd.DataFrame)
    return frame


def test_availability_hit_rate_and_cost_per_window(windows: pd.DataFrame) -> None:
    avail = D.availability(windows)
    assert avail["available within SLA"].tolist() == pytest.approx([395 / 400, 0.0])
    assert avail["answered 200"].tolist() == pytest.approx([398 / 400, 0.0])
    by_arm = D.hit_rate(windows, "arm")
    assert by_arm.loc[pd.Timestamp(START), "control"] == pytest.approx(10 / 98)
    assert by_arm.loc[pd.Timestamp(START), "treatment"] == pytest.approx(0.3)
    assert math.isnan(by_arm.loc[pd.Timestamp(LATER), "control"])  # nothing answered: a gap, not 0 or inf
    by_model = D.hit_rate(windows, "model")
    assert set(by_model.columns) == {"v3", "v4"}
    cost = D.cost(windows)
    assert cost[D.LIST_PER_1K].iloc[0] == pytest.approx(1390 / 398 * 1000)
    assert cost[D.WATCH_PER_1K].iloc[0] == pytest.approx(22 / 398 * 1000)
    assert cost["per watch (hit)"].iloc[0] == pytest.approx(22 / 100)
    assert D.latency(windows)["p50"].iloc[0] == pytest.approx((40 * 100 + 80 * 300) / 400)
    models = D.model_requests(windows)
    assert models.loc[pd.Timestamp(START)].to_dict() == {"v3": 100, "v4": 300}
    assert models.loc[pd.Timestamp(LATER)].to_dict() == {"v3": 50, "v4": 0}


def test_headline_over_the_whole_period(windows: pd.DataFrame, tmp_path: Path) -> None:
    layout = MonitorLayout(tmp_path)
    write_drift(layout, {"a": 0.5, "b": 0.1, "c": 0.3})
    write_skew(layout, {"a": 0.05})
    write_ratings(layout, [5, 4, 3])
    drift = D.read_result(layout.drift / "latest.json", "recsys monitor drift")
    skew = D.read_result(layout.skew / "latest.json", "recsys monitor skew")
    ratings = D.read_parquet_dir(layout.ratings, ["rating"], "ratings")
    head = D.headline(windows, ratings, drift, skew, budget=3000.0)
    assert head.requests == 450
    assert head.availability == pytest.approx(395 / 450)
    assert head.hit_rate == pytest.approx(100 / 398)
    assert head.cost_per_1k == pytest.approx(22 / 398 * 1000)  # what the budget and the cost alert count
    assert head.list_cost_per_1k == pytest.approx(1390 / 398 * 1000)
    assert (head.drifted, head.skewed, head.mean_rating) == ((2, 3), (0, 1), pytest.approx(4.0))


def test_dlq_rate_from_the_offline_store(tmp_path: Path) -> None:
    write_dlq(tmp_path / "offline", minutes=10)  # 3 dead letters a minute, 2 of them bad_json
    rate = dlq_from_parquet(tmp_path / "offline", window_s=300)
    assert isinstance(rate, pd.DataFrame)
    assert rate["bad_json"].tolist() == pytest.approx([2.0, 2.0])
    assert rate["unknown_movie"].tolist() == pytest.approx([1.0, 1.0])


def test_missing_inputs_give_no_data_cards_not_exceptions(tmp_path: Path) -> None:
    s = settings(tmp_path / "empty")
    head, panels = build_panels(s)
    assert {p.key for p in panels} == PANELS
    reasons = {p.key: p.missing.reason for p in panels if p.missing is not None}
    assert set(reasons) == PANELS and not any(p.png for p in panels)
    assert "no Parquet files under" in reasons["availability"]
    assert "does not exist (run `recsys monitor drift`)" in reasons["drift"]
    assert f"Prometheus not reachable at {s.prometheus_url}" in reasons["consumer_lag"]
    assert "no Parquet files under" in reasons["dlq"] and "Prometheus not reachable" in reasons["dlq"]
    assert all(isinstance(v, D.NoData) for v in (head.requests, head.availability, head.drifted, head.skewed))
    page = write_report(s).read_text()
    assert page.count('data-state="nodata"') == len(PANELS)
    assert "No data because" in page
    assert not re.search(r'(src|href)="(?!data:)', page)  # self-contained: nothing fetched from elsewhere


def test_unreadable_inputs_give_no_data_cards(tmp_path: Path) -> None:
    layout = MonitorLayout(tmp_path)
    layout.windows.mkdir(parents=True)
    (layout.windows / "part-000000.parquet").write_bytes(b"not parquet")
    layout.drift.mkdir(parents=True)
    (layout.drift / "latest.json").write_text("{truncated")
    write_skew(layout, {})  # a run that compared no feature
    _, panels = build_panels(settings(tmp_path))
    reasons = {p.key: p.missing.reason for p in panels if p.missing is not None}
    assert "unreadable" in reasons["availability"]
    assert "unreadable" in reasons["drift"]
    assert "holds no feature rows" in reasons["skew"]


def test_one_window_still_draws(tmp_path: Path) -> None:
    layout = MonitorLayout(tmp_path)
    write_windows(layout, [window_row(START, "control", "v3", "model", requests=10, ok=10, available=10)])
    _, panels = build_panels(settings(tmp_path))
    drawn = {p.key for p in panels if p.png}
    assert {"availability", "latency", "hit_rate_arm", "cost_per_1k", "model_versions"} <= drawn
    # No hits: cost per watch has nothing to divide by, and says so.
    assert next(p for p in panels if p.key == "cost_per_watch").missing == D.NoData(
        "no hits, so no cost per watch"
    )
