"""The sampled feature log: a uniform sample of the rows the ranker scored, written as Parquet off the request path.

A request pays for one random draw (`sample`) and, when drawn, one `put_nowait` of references
to arrays the ranker already built (`ScoredRows`): no copy, no recompute, no I/O. A daemon
thread takes the queued answers, draws up to `rows_per_request` of each answer's candidate rows
uniformly, and writes a Parquet file under `<var>/monitoring/feature_log/date=YYYY-MM-DD/` every
`flush_s` seconds or `flush_rows` rows, whichever comes first (format: `core.layout.FEATURE_LOG_DIR`).
Each row carries `as_of`, the feature time `rank` computed it at (`ScoredRows.as_of`), so the skew
check can rebuild the same row through training's point-in-time path (`monitoring.skew_replay`).
A full queue drops the answer and counts it (`recsys_feature_log_dropped_total`): the log is a
sample, never back pressure. Each uvicorn worker writes its own files (`<pid>-<seq>.parquet`,
written to a temporary name and renamed, so a reader never sees half a file).
"""

from __future__ import annotations

import logging
import os
import queue
import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.layout import FEATURE_LOG_DIR
from ranking.transforms import FEATURE_COLUMNS
from serving import metrics as M  # noqa: N812
from serving.recommender import ScoredRows

if TYPE_CHECKING:
    from serving.settings import ServingSettings

log = logging.getLogger(__name__)

SCHEMA: Final = pa.schema(
    [
        pa.field("ts", pa.timestamp("us", tz="UTC")),
        pa.field("as_of", pa.timestamp("us", tz="UTC")),
        pa.field("request_id", pa.string()),
        pa.field("user_id", pa.int64()),
        pa.field("model_version", pa.int64()),
        pa.field("arm", pa.string()),
        pa.field("movie_id", pa.string()),
        pa.field("score", pa.float64()),
        *(pa.field(name, pa.float64()) for name in FEATURE_COLUMNS),
    ]
)
"""Columns of a feature log file (the contract in `core.layout.FEATURE_LOG_DIR`)."""


@dataclass(frozen=True)
class LoggedAnswer:
    """One sampled model answer: who, which version and arm, and the rows the ranker scored."""

    ts: float
    request_id: str
    user_id: int
    model_version: int
    arm: str
    scored: ScoredRows


def _as_of(answer: LoggedAnswer) -> float:
    """The answer's feature time: what `rank` used (`ScoredRows.as_of`), else the log time."""
    return answer.scored.as_of if answer.scored.as_of is not None else answer.ts


class FeatureLog:
    """Bounded, non-blocking sampled feature log drained to Parquet by one background thread; see the module doc."""

    def __init__(
        self,
        folder: Path,
        sample_rate: float,
        rows_per_request: int,
        queue_size: int,
        flush_s: float = 5.0,
        flush_rows: int = 20_000,
        seed: int | None = None,
    ) -> None:
        self.folder = folder
        self.sample_rate = sample_rate
        self.rows_per_request = rows_per_request
        self.flush_s = flush_s
        self.flush_rows = flush_rows
        self._queue: queue.Queue[LoggedAnswer] = queue.Queue(maxsize=queue_size)
        self._draw = random.Random(seed).random  # the request path's draw: a few hundred ns
        self._rng = np.random.default_rng(seed)  # the writer's row sample (its thread only)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seq = 0
        self.dropped = 0
        """Answers dropped (queue full, or lost in a failed write)."""
        self.written = 0
        """Rows written."""
        self.files: list[Path] = []
        """Files this process wrote (newest last)."""

    @classmethod
    def from_settings(cls, settings: ServingSettings) -> FeatureLog:
        """The log the serving settings describe, under `<var>/monitoring/feature_log`."""
        return cls(settings.var_dir / FEATURE_LOG_DIR, settings.feature_log_rate, settings.feature_log_rows,
                   settings.feature_log_queue, settings.feature_log_flush_s,
                   settings.feature_log_flush_rows)  # fmt: skip

    def sample(self) -> bool:
        """Whether this answer is logged: one uniform draw against the sample rate."""
        return self.sample_rate > 0 and self._draw() < self.sample_rate

    def offer(self, answer: LoggedAnswer) -> bool:
        """Queue a sampled answer without waiting; False (dropped, counted) when the queue is full."""
        try:
            self._queue.put_nowait(answer)
        except queue.Full:
            self.dropped += 1
            M.FEATURE_LOG_DROPPED.inc()
            return False
        return True

    def start(self) -> None:
        """Start the writer thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="feature-log", daemon=True)
            self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the writer after it wrote everything queued so far (or write it here when it never started)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        else:
            self._write(self._drain([]))

    def _drain(self, batch: list[LoggedAnswer]) -> list[LoggedAnswer]:
        while True:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                return batch

    def _run(self) -> None:
        batch: list[LoggedAnswer] = []
        rows = 0
        deadline = time.monotonic() + self.flush_s
        while not self._stop.is_set():
            try:
                answer = self._queue.get(timeout=max(0.0, min(0.2, deadline - time.monotonic())))
                batch.append(answer)
                rows += min(len(answer.scored.items), self.rows_per_request)
            except queue.Empty:
                pass
            if batch and (rows >= self.flush_rows or time.monotonic() >= deadline):
                self._write(batch)
                batch, rows = [], 0
            if time.monotonic() >= deadline:
                deadline = time.monotonic() + self.flush_s
        self._write(self._drain(batch))

    def _write(self, batch: list[LoggedAnswer]) -> None:
        """Write a batch as one file per UTC day; never raises (a failed write counts its answers as dropped)."""
        if not batch:
            return
        try:
            table = self._table(batch)
            days = np.asarray(
                [datetime.fromtimestamp(a.ts, UTC).strftime("%Y-%m-%d") for a in batch], dtype=object
            )
            per_answer = [min(len(a.scored.items), self.rows_per_request) for a in batch]
            row_days = np.repeat(days, per_answer)
            for day in sorted(set(days)):
                part = table.filter(pa.array(row_days == day))
                self._write_file(self.folder / f"date={day}", part)
            self.written += table.num_rows
            M.FEATURE_LOG_ROWS.inc(table.num_rows)
        except Exception as exc:  # a full disk must not stop serving: count what was lost
            self.dropped += len(batch)
            M.FEATURE_LOG_DROPPED.inc(len(batch))
            log.warning("feature log write failed, %d sampled answers lost: %s", len(batch), exc)

    def _table(self, batch: list[LoggedAnswer]) -> pa.Table:
        picks = []
        for a in batch:
            n = len(a.scored.items)
            k = min(n, self.rows_per_request)
            picks.append(np.sort(self._rng.choice(n, k, replace=False)) if k < n else np.arange(n))
        x = np.concatenate([a.scored.x[p] for a, p in zip(batch, picks, strict=True)]).astype(np.float64)
        counts = [len(p) for p in picks]

        def each(values: list[object]) -> np.ndarray:
            return np.repeat(np.asarray(values, dtype=object), counts)

        columns: dict[str, object] = {
            "ts": pa.array(
                np.repeat([int(a.ts * 1_000_000) for a in batch], counts), pa.timestamp("us", tz="UTC")
            ),
            "as_of": pa.array(
                np.repeat([int(_as_of(a) * 1_000_000) for a in batch], counts), pa.timestamp("us", tz="UTC")
            ),
            "request_id": pa.array(each([a.request_id for a in batch]), pa.string()),
            "user_id": pa.array(np.repeat([a.user_id for a in batch], counts).astype(np.int64)),
            "model_version": pa.array(np.repeat([a.model_version for a in batch], counts).astype(np.int64)),
            "arm": pa.array(each([a.arm for a in batch]), pa.string()),
            "movie_id": pa.array(
                [
                    str(m)
                    for a, p in zip(batch, picks, strict=True)
                    for m in a.scored.vocab[a.scored.items[p]]
                ],
                pa.string(),
            ),
            "score": pa.array(
                np.concatenate([a.scored.scores[p] for a, p in zip(batch, picks, strict=True)])
            ),
        }
        for j, name in enumerate(FEATURE_COLUMNS):
            columns[name] = pa.array(x[:, j])
        return pa.table(columns, schema=SCHEMA)

    def _write_file(self, folder: Path, table: pa.Table) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()  # read at write time: a forked worker names its own files
        path = folder / f"{pid}-{self._seq}.parquet"
        while path.exists():  # a recycled pid from an earlier run: never overwrite its files
            self._seq += 1
            path = folder / f"{pid}-{self._seq}.parquet"
        self._seq += 1
        tmp = folder / f".{path.name}.tmp"
        pq.write_table(table, tmp)
        tmp.replace(path)
        self.files.append(path)
