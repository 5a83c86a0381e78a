"""The online job's Parquet parts (windows, ratings, impressions) and reading them back for reports and experiments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ingestion.progress import atomic_write
from monitoring.layout import IMPRESSION_COLUMNS, RATING_COLUMNS, WINDOW_COLUMNS, MonitorLayout

_TS = pa.timestamp("us", tz="UTC")
WINDOW_SCHEMA = pa.schema(
    [("window_start", _TS), ("window_s", pa.int64()), ("arm", pa.string()), ("model", pa.string()),
     ("path", pa.string())]
    + [(c, pa.int64()) for c in ("requests", "ok", "available")]
    + [(c, pa.float64()) for c in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms")]
    + [(c, pa.int64()) for c in ("hits", "hit_rank_sum", "hit_minutes_sum")]
    + [("hit_completion_sum", pa.float64()), ("hit_completion_n", pa.int64()), ("list_cost_sum", pa.float64()),
       ("list_cost_n", pa.int64()), ("hit_cost_sum", pa.float64())]
)  # fmt: skip
"""Arrow schema of `windows/*.parquet` (column order = `WINDOW_COLUMNS`)."""
RATING_SCHEMA = pa.schema(
    [("ts", _TS), ("window_start", _TS), ("arm", pa.string()), ("model", pa.string()), ("path", pa.string()),
     ("user_id", pa.int64()), ("movie_id", pa.string()), ("rating", pa.int64())]
)  # fmt: skip
"""Arrow schema of `ratings/*.parquet`."""
_I64, _F64, _STR = pa.int64(), pa.float64(), pa.string()
IMPRESSION_SCHEMA = pa.schema(
    [("ts", _TS), ("user_id", _I64), ("experiment", _STR), ("arm", _STR), ("model", _STR), ("path", _STR),
     ("status", _I64), ("latency_ms", _I64), ("hit", _I64), ("hit_rank", _I64), ("hit_minutes", _I64),
     ("hit_completion", _F64), ("list_cost", _F64), ("hit_cost", _F64), ("watched_listed", _I64),
     ("teams", _STR), ("credit_a", _I64), ("credit_b", _I64)]
)  # fmt: skip
"""Arrow schema of `impressions/*.parquet`."""
assert tuple(WINDOW_SCHEMA.names) == WINDOW_COLUMNS and tuple(RATING_SCHEMA.names) == RATING_COLUMNS
assert tuple(IMPRESSION_SCHEMA.names) == IMPRESSION_COLUMNS


def part_name(seq: int) -> str:
    """File name of flush number `seq`."""
    return f"part-{seq:08d}.parquet"


def write_part(folder: Path, seq: int, rows: list[dict[str, Any]], schema: pa.Schema) -> None:
    """Write flush `seq`'s rows (replacing what a crashed attempt left); no rows: remove any such leftover."""
    path = folder / part_name(seq)
    if not rows:
        path.unlink(missing_ok=True)
        return
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), sink)
    atomic_write(path, sink.getvalue().to_pybytes())


def write_tuples(folder: Path, seq: int, rows: list[tuple[Any, ...]], schema: pa.Schema) -> None:
    """`write_part` for rows given as tuples in the schema's column order."""
    path = folder / part_name(seq)
    if not rows:
        path.unlink(missing_ok=True)
        return
    columns = [pa.array(col, type=f.type) for col, f in zip(zip(*rows, strict=True), schema, strict=True)]
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_arrays(columns, schema=schema), sink)
    atomic_write(path, sink.getvalue().to_pybytes())


def _read(folder: Path, schema: pa.Schema) -> pd.DataFrame:
    files = sorted(folder.glob("part-*.parquet"))
    table = (
        pa.concat_tables([pq.read_table(f, schema=schema) for f in files]) if files else schema.empty_table()
    )
    frame: pd.DataFrame = table.to_pandas()
    return frame


def read_windows(layout: MonitorLayout) -> pd.DataFrame:
    """Every window row written so far (rows of one key add up: late lines make extra rows)."""
    return _read(layout.windows, WINDOW_SCHEMA)


def read_ratings(layout: MonitorLayout) -> pd.DataFrame:
    """Every rating credited to a recommendation so far."""
    return _read(layout.ratings, RATING_SCHEMA)


def read_impressions(layout: MonitorLayout) -> pd.DataFrame:
    """Every impression row written so far (one per final recommendation line)."""
    return _read(layout.impressions, IMPRESSION_SCHEMA)
