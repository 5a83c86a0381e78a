"""The dashboard loaded in headless Chromium: every chart decodes, missing inputs are cards; a screenshot is kept.

Inputs are synthetic files in the committed formats (monitoring.layout) plus a real Prometheus
(the Debian binary) scraping this process's real metric objects (serving's latency histogram,
ingestion's DLQ counter and lag gauge, the monitor's lag gauge), so the Prometheus panels are
drawn from range queries. A second report with Prometheus unreachable shows the fallbacks.
Chromium comes from `make prereqs` (recsys/stack/prereqs.py); without it the test fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY, start_http_server

from core.settings import resolve_var_dir
from ingestion import metrics as ingest_metrics
from monitoring import metrics as monitor_metrics
from monitoring.layout import MonitorLayout
from monitoring.report import write_report
from monitoring.settings import MonitorSettings
from serving import metrics as serving_metrics
from tests.integration.conftest import free_port
from tests.report_inputs import busy_windows, write_dlq, write_drift, write_ratings, write_skew, write_windows

pytestmark = pytest.mark.integration

CHARTS = ("availability", "latency", "latency_server", "hit_rate_arm", "hit_rate_model", "hit_rate_path",
          "cost_per_1k", "cost_per_watch", "model_versions", "drift", "skew", "skew_replay", "dlq", "consumer_lag")  # fmt: skip
SCREENSHOT = resolve_var_dir() / "monitoring" / "report-browser-test.png"
"""Kept after the run: what the dashboard looks like with every panel drawn (synthetic inputs)."""
WIDTH = 1760
"""Browser window width (px): two chart columns."""
FIGURE = re.compile(
    r'<figure class="chart" data-chart="([^"]+)" data-state="([^"]+)" data-rendered="([^"]*)"'
)


def chromium(*args: str, profile: Path) -> str:
    """Runs headless Chromium (a private profile, so parallel runs do not share one) and returns stdout."""
    binary = shutil.which("chromium")
    assert binary, (
        "chromium is missing: run `make prereqs` (recsys stack prereqs installs the Debian package)"
    )
    sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium refuses to run as root with a sandbox
    argv = [binary, "--headless", *sandbox, "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
            f"--user-data-dir={profile}", "--virtual-time-budget=10000", *args]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def rendered(page: Path, profile: Path) -> tuple[dict[str, tuple[str, str]], int]:
    """Per figure (data-chart): its state and what the page's own script saw after load; and the page height."""
    dom = chromium("--dump-dom", f"--window-size={WIDTH},1000", page.as_uri(), profile=profile)
    assert '<body data-height="' in dom and 'data-checked="true"' in dom, "the page's load script did not run"
    height = int(re.search(r'data-height="(\d+)"', dom)[1])  # type: ignore[index]
    return {key: (state, seen) for key, state, seen in FIGURE.findall(dom)}, height


@pytest.fixture
def live_prometheus(tmp_path: Path) -> Iterator[str]:
    """A real Prometheus scraping this process's metrics every second, with traffic flowing; yields its URL."""
    exporter_port, prom_port = free_port(), free_port()
    server, _ = start_http_server(exporter_port, addr="127.0.0.1", registry=REGISTRY)
    home = tmp_path / "prometheus"
    home.mkdir()
    (home / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: report-test\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n"
    )
    stop = threading.Event()

    def traffic() -> None:  # counters must move between scrapes for rate() to have a value
        i = 0
        while not stop.wait(0.05):
            i += 1
            serving_metrics.LATENCY.observe(0.02 + (i % 50) / 100)
            ingest_metrics.DLQ.labels(reason="bad_json" if i % 3 else "unknown_movie").inc()
            ingest_metrics.LAG.labels(partition="0").set(i % 40)
            monitor_metrics.LAG.labels(topic="movielog", partition="0").set(i % 25)

    feeder = threading.Thread(target=traffic, daemon=True)
    feeder.start()
    prom_log = (home / "prometheus.log").open("wb")
    prom = subprocess.Popen(
        [str(shutil.which("prometheus")), f"--config.file={home / 'prometheus.yml'}",
         f"--storage.tsdb.path={home / 'data'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=prom_log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{prom_port}"
    try:
        deadline = time.monotonic() + 60
        query = "histogram_quantile(0.5, sum by (le) (rate(recsys_request_latency_seconds_bucket[5m])))"
        while True:  # ready, and the latency quantile has a few points (so the chart shows a line)
            try:
                now = time.time()
                params = {"query": query, "start": str(now - 60), "end": str(now), "step": "1"}
                r = httpx.get(f"{url}/api/v1/query_range", params=params, timeout=2)
                result = r.json()["data"]["result"] if r.status_code == 200 else []
                if result and len(result[0]["values"]) >= 4:
                    break
            except httpx.HTTPError:
                pass
            assert prom.poll() is None, (home / "prometheus.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "Prometheus had no latency samples after 60 s"
            time.sleep(0.5)
        yield url
    finally:
        stop.set()
        prom.terminate()
        prom.wait(timeout=30)
        prom_log.close()
        server.shutdown()
        server.server_close()


def test_every_chart_renders_in_chromium(tmp_path: Path, live_prometheus: str) -> None:
    var = tmp_path / "var"
    layout = MonitorLayout(var)
    write_windows(layout, busy_windows(48))
    write_ratings(layout, [5, 4, 4, 2])
    write_drift(layout, {f"feature_{i}": i / 20 for i in range(12)})
    write_skew(layout, {f"feature_{i}": i / 30 for i in range(10)})
    write_dlq(var / "offline")
    profile = tmp_path / "chromium"

    started = time.perf_counter()
    page = write_report(MonitorSettings(var_dir=var, prometheus_url=live_prometheus), prometheus_hours=0.1)
    seconds = time.perf_counter() - started
    assert seconds < 30, f"report took {seconds:.1f} s"
    html = page.read_text()
    assert not re.search(r'(src|href)="(?!data:)', html)  # self-contained
    figures, height = rendered(page, profile)
    assert set(figures) == set(CHARTS)
    for key, (state, seen) in figures.items():
        assert state == "chart", f"{key}: {state} ({seen})"
        assert re.fullmatch(r"image [1-9]\d*x[1-9]\d*", seen), f"{key} did not render in Chromium: {seen!r}"

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    chromium(
        f"--screenshot={SCREENSHOT}",
        f"--window-size={WIDTH},{max(height, 800)}",
        page.as_uri(),
        profile=profile,
    )
    assert SCREENSHOT.stat().st_size > 50_000  # a page of charts, not a blank one
    print(f"report written in {seconds:.2f} s; screenshot {SCREENSHOT}")

    # Prometheus gone: its panels become cards naming the URL; the DLQ rate comes from the offline store.
    down = f"http://127.0.0.1:{free_port()}"
    page = write_report(MonitorSettings(var_dir=var, prometheus_url=down))
    figures, _ = rendered(page, profile)
    for key in ("latency_server", "consumer_lag"):
        assert figures[key] == ("nodata", "nodata")
    assert f"No data because Prometheus not reachable at {down}" in page.read_text()
    assert figures["dlq"][0] == "chart" and figures["dlq"][1].startswith("image ")
    assert all(
        state == "chart"
        for key, (state, _) in figures.items()
        if key not in ("latency_server", "consumer_lag")
    )
