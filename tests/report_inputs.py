"""Synthetic monitoring outputs in the committed formats (monitoring.layout), for the dashboard's tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from monitoring.layout import RATING_COLUMNS, WINDOW_COLUMNS, MonitorLayout

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
"""Log time of the first synthetic window."""


def window_row(start: datetime, arm: str, model: str, path: str, **counts: float) -> dict[str, Any]:
    """One windows row; counts not given are 0, percentiles default to 40/120/300 ms."""
    row: dict[str, Any] = {c: 0 for c in WINDOW_COLUMNS}
    row.update(window_start=start, window_s=300, arm=arm, model=model, path=path,
               latency_p50_ms=40.0, latency_p95_ms=120.0, latency_p99_ms=300.0)  # fmt: skip
    row.update(counts)
    return row


def write_windows(layout: MonitorLayout, rows: list[dict[str, Any]], part: int = 0) -> Path:
    """Writes `rows` as windows/part-<part>.parquet with the contract's column types."""
    floats = {"latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "hit_rank_sum", "hit_minutes_sum",
              "hit_completion_sum", "list_cost_sum", "hit_cost_sum"}  # fmt: skip
    arrays = []
    for col in WINDOW_COLUMNS:
        values = [r[col] for r in rows]
        if col == "window_start":
            arrays.append(pa.array(values, pa.timestamp("us", tz="UTC")))
        elif col in ("arm", "model", "path"):
            arrays.append(pa.array(values, pa.string()))
        else:
            arrays.append(pa.array(values, pa.float64() if col in floats else pa.int64()))
    layout.windows.mkdir(parents=True, exist_ok=True)
    path = layout.windows / f"part-{part:06d}.parquet"
    pq.write_table(pa.Table.from_arrays(arrays, names=list(WINDOW_COLUMNS)), path)
    return path


def busy_windows(n: int = 24, seed: int = 7) -> list[dict[str, Any]]:
    """`n` five-minute windows over two arms, two model versions (one promoted mid-way) and every path."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        start = START + timedelta(seconds=300 * i)
        model = "v3" if i < n // 2 else "v4"
        for arm in ("control", "treatment"):
            for path, m, share in (
                ("model", model, 0.85),
                ("fallback", "none", 0.1),
                ("cold_start", "none", 0.05),
            ):
                req = int(rng.integers(800, 1200) * share) + 1
                ok = req - int(rng.integers(0, 5))
                hits = int(ok * rng.uniform(0.05, 0.2))
                rows.append(window_row(
                    start, arm, m, path, requests=req, ok=ok, available=ok - int(rng.integers(0, 3)),
                    hits=hits, hit_rank_sum=hits * 4.0, hit_minutes_sum=hits * 60.0,
                    hit_completion_sum=hits * 0.6, hit_completion_n=hits,
                    list_cost_sum=ok * rng.uniform(3.0, 6.0), list_cost_n=ok, hit_cost_sum=hits * rng.uniform(20.0, 40.0),
                    latency_p50_ms=rng.uniform(20, 60), latency_p95_ms=rng.uniform(100, 200),
                    latency_p99_ms=rng.uniform(250, 700),
                ))  # fmt: skip
    return rows


def write_ratings(layout: MonitorLayout, stars: list[int]) -> None:
    """Ratings credited to recommendations (RATING_COLUMNS), one per value of `stars`."""
    n = len(stars)
    table = pa.table({
        "ts": pa.array([START] * n, pa.timestamp("us", tz="UTC")),
        "window_start": pa.array([START] * n, pa.timestamp("us", tz="UTC")),
        "arm": ["control"] * n, "model": ["v3"] * n, "path": ["model"] * n,
        "user_id": pa.array(range(n), pa.int64()), "movie_id": [f"m{i}" for i in range(n)],
        "rating": pa.array(stars, pa.int64()),
    })  # fmt: skip
    assert tuple(table.column_names) == RATING_COLUMNS
    layout.ratings.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, layout.ratings / "part-000000.parquet")


def write_drift(layout: MonitorLayout, scores: dict[str, float], threshold: float = 0.2) -> None:
    """drift/latest.json (DRIFT_JSON) with one `features` row per score and one schema change."""
    rows = [{"profile": "features", "feature": f, "kind": "numeric", "metric": "hellinger", "score": s,
             "p_value": None, "drifted": s > threshold} for f, s in scores.items()]  # fmt: skip
    result = {"computed_at": START.isoformat(), "reference": {"model_version": 4, "rows": 1000},
              "window": {"start": START.isoformat(), "end": (START + timedelta(hours=2)).isoformat()},
              "threshold": threshold, "rows": rows,
              "schema": [{"source": "metadata", "field": "budget", "change": "retyped", "detail": "int -> str"}]}  # fmt: skip
    layout.drift.mkdir(parents=True, exist_ok=True)
    (layout.drift / "latest.json").write_text(json.dumps(result))


def write_skew(layout: MonitorLayout, psi: dict[str, float], threshold: float = 0.2) -> None:
    """skew/latest.json (SKEW_JSON) with one row per PSI; the replay's mismatch share is PSI / 4."""
    rows = [{"feature": f, "psi": p, "mean_train": 1.0, "mean_served": 1.0 + p, "mean_shift": p,
             "mismatch_share": p / 4, "skewed": p > threshold, "note": ""} for f, p in psi.items()]  # fmt: skip
    result = {"computed_at": START.isoformat(), "model_version": 4, "served_rows": 500, "train_rows": 5000,
              "threshold": threshold, "mismatch_threshold": 0.05, "replayed_rows": 500, "replay": "ok",
              "rows": rows}  # fmt: skip
    layout.skew.mkdir(parents=True, exist_ok=True)
    (layout.skew / "latest.json").write_text(json.dumps(result))


def write_dlq(offline_root: Path, minutes: int = 120) -> None:
    """Dead letters in the offline store's raw/dlq layout (ingestion.sink's schema), a few per minute."""
    ts = [START + timedelta(seconds=20 * i) for i in range(minutes * 3)]
    reasons = ["bad_json" if i % 3 else "unknown_movie" for i in range(len(ts))]
    table = pa.table({
        "ts": pa.array(ts, pa.timestamp("ns", tz="UTC")), "reason": reasons, "detail": ["x"] * len(ts),
        "raw": pa.array([b"garbage"] * len(ts), pa.binary()),
        "kafka_partition": pa.array([0] * len(ts), pa.int32()),
        "kafka_offset": pa.array(range(len(ts)), pa.int64()),
    })  # fmt: skip
    folder = offline_root / "raw" / "dlq" / f"date={START:%Y-%m-%d}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / "movielog-p0-000000000000-000000000359.parquet")
