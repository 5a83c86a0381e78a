"""Raw event sink: one parsed Kafka batch of one partition into Parquet files per kind and UTC date."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from events.batch import ParsedBatch
from ingestion.layout import BatchId, OfflineLayout
from ingestion.progress import atomic_write

TS = pa.timestamp("ns", tz="UTC")
SCHEMAS: dict[str, pa.Schema] = {
    "watch": pa.schema([("ts", TS), ("user_id", pa.int64()), ("movie_id", pa.string()), ("minute", pa.int32()),
                        ("kafka_partition", pa.int32()), ("kafka_offset", pa.int64())]),
    "rate": pa.schema([("ts", TS), ("user_id", pa.int64()), ("movie_id", pa.string()), ("rating", pa.int8()),
                       ("kafka_partition", pa.int32()), ("kafka_offset", pa.int64())]),
    "account": pa.schema([("ts", TS), ("user_id", pa.int64()),
                          ("kafka_partition", pa.int32()), ("kafka_offset", pa.int64())]),
    "recommendation": pa.schema([("ts", TS), ("user_id", pa.int64()), ("server", pa.string()),
                                 ("status", pa.int16()), ("results", pa.list_(pa.string())),
                                 ("response_ms", pa.int32()), ("error", pa.string()),
                                 ("kafka_partition", pa.int32()), ("kafka_offset", pa.int64())]),
    "dlq": pa.schema([("ts", TS), ("reason", pa.string()), ("detail", pa.string()), ("raw", pa.binary()),
                      ("kafka_partition", pa.int32()), ("kafka_offset", pa.int64())]),
}  # fmt: skip
"""Arrow schemas of the raw tables; `ts` is event time (DLQ: the Kafka message time)."""


@dataclass(frozen=True)
class SourceBatch:
    """The Kafka side of one partition's batch: offsets and message times, aligned with the lines."""

    batch: BatchId
    offsets: Sequence[int]
    kafka_ts_ms: Sequence[int]
    values: Sequence[bytes]


def tables(parsed: ParsedBatch, src: SourceBatch) -> dict[str, pa.Table]:
    """Arrow tables of every kind present in the batch."""
    offsets = np.asarray(src.offsets, dtype=np.int64)
    part = src.batch.partition
    out: dict[str, pa.Table] = {}

    def origin(index: Sequence[int]) -> tuple[pa.Array, pa.Array]:
        idx = np.asarray(index, dtype=np.int64)
        return pa.array(np.full(len(idx), part, dtype=np.int32)), pa.array(offsets[idx])

    w = parsed.watch
    if w.index:
        p, o = origin(w.index)
        out["watch"] = pa.Table.from_arrays(
            [pa.array(w.ts_ns, pa.int64()).cast(TS), pa.array(w.user_id, pa.int64()), pa.array(w.movie_id, pa.string()),
             pa.array(w.minute, pa.int32()), p, o], schema=SCHEMAS["watch"])  # fmt: skip
    r = parsed.rate
    if r.index:
        p, o = origin(r.index)
        out["rate"] = pa.Table.from_arrays(
            [pa.array(r.ts_ns, pa.int64()).cast(TS), pa.array(r.user_id, pa.int64()), pa.array(r.movie_id, pa.string()),
             pa.array(r.rating, pa.int8()), p, o], schema=SCHEMAS["rate"])  # fmt: skip
    if parsed.accounts:
        p, o = origin([i for i, _ in parsed.accounts])
        out["account"] = pa.Table.from_arrays(
            [pa.array([e.ts_ns for _, e in parsed.accounts], pa.int64()).cast(TS),
             pa.array([e.user_id for _, e in parsed.accounts], pa.int64()), p, o], schema=SCHEMAS["account"])  # fmt: skip
    if parsed.recommendations:
        recs = [e for _, e in parsed.recommendations]
        p, o = origin([i for i, _ in parsed.recommendations])
        out["recommendation"] = pa.Table.from_arrays(
            [pa.array([e.ts_ns for e in recs], pa.int64()).cast(TS), pa.array([e.user_id for e in recs], pa.int64()),
             pa.array([e.server for e in recs]), pa.array([e.status for e in recs], pa.int16()),
             pa.array([list(e.results) for e in recs], pa.list_(pa.string())),
             pa.array([e.response_ms for e in recs], pa.int32()), pa.array([e.error for e in recs], pa.string()),
             p, o], schema=SCHEMAS["recommendation"])  # fmt: skip
    if parsed.errors:
        idx = [i for i, _ in parsed.errors]
        p, o = origin(idx)
        ts_ms = np.asarray(src.kafka_ts_ms, dtype=np.int64)[np.asarray(idx, dtype=np.int64)]
        out["dlq"] = pa.Table.from_arrays(
            [pa.array(ts_ms * 1_000_000).cast(TS), pa.array([e.reason.value for _, e in parsed.errors]),
             pa.array([e.detail for _, e in parsed.errors]), pa.array([src.values[i] for i in idx], pa.binary()),
             p, o], schema=SCHEMAS["dlq"])  # fmt: skip
    return out


def _by_date(table: pa.Table) -> dict[str, pa.Table]:
    dates = pc.strftime(table["ts"], format="%Y-%m-%d").to_numpy(zero_copy_only=False)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, d in enumerate(dates):
        groups[str(d)].append(i)
    if len(groups) == 1:
        return {next(iter(groups)): table}
    return {d: table.take(pa.array(rows)) for d, rows in groups.items()}


def write_tables(layout: OfflineLayout, batch: BatchId, kinds: dict[str, pa.Table]) -> list[Path]:
    """Write each kind's rows under `raw/<kind>/date=<d>/<batch file name>`, atomically; return the paths."""
    written: list[Path] = []
    for kind, table in kinds.items():
        for date, part in _by_date(table).items():
            path = layout.raw_dir(kind, date) / batch.file_name()
            sink = pa.BufferOutputStream()
            pq.write_table(part, sink, compression="zstd")
            atomic_write(path, sink.getvalue().to_pybytes())
            written.append(path)
    return written
