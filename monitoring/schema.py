"""Schema drift of the stream and of the metadata API: fields new, missing or retyped against what is expected.

Stream: per record kind (watch, rate, account, recommendation) whether the window still has the
lines the reference's rate promises, the columns and types of the landed tables, and dead-letter
reasons the reference never had (a new kind of request line shows up as `unknown_request` with
its verb and path). Metadata API: a sample of the window's movies and users fetched from the API
and checked field by field against the response schema ingestion validates with
(`ingestion.metadata_records.SCHEMAS`): a field absent from, or new in, at least half the records
is a schema change (a few records missing a field is a fault, counted by ingestion, not a change).
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Literal

import httpx
import pandas as pd

from monitoring.profiles import query, table_glob

Change = Literal["new", "missing", "retyped"]
"""Kinds of schema change (DRIFT_JSON)."""
STREAM_KINDS: Final = ("watch", "rate", "account", "recommendation")
"""Raw tables of well-formed lines, one per kind of log line."""
MIN_EXPECTED_LINES: Final = 20.0
"""A kind counts as missing only when the reference's rate promised at least this many lines in the window."""
SHARE: Final = 0.5
"""Share of sampled records a field must be absent from (or new in) to count as a schema change."""
_UNKNOWN_REQUEST = re.compile(r"unknown request: '(\S+)\s+/?([^/\s']*)")


@dataclass(frozen=True)
class SchemaChange:
    """One row of DRIFT_JSON's `schema` list."""

    source: Literal["stream", "metadata"]
    field: str
    change: Change
    detail: str

    def to_dict(self) -> dict[str, str]:
        """The JSON row."""
        return asdict(self)


def _count(offline: Path, kind: str, start: pd.Timestamp, end: pd.Timestamp) -> int:
    glob = table_glob(offline, f"raw/{kind}")
    if glob is None:
        return 0
    return int(
        query(
            f"SELECT count(*) AS n FROM read_parquet('{glob}') "
            f"WHERE ts >= TIMESTAMPTZ '{start.isoformat()}' AND ts < TIMESTAMPTZ '{end.isoformat()}'"
        )["n"].iloc[0]
    )


def _columns(offline: Path, kind: str, start: pd.Timestamp, end: pd.Timestamp) -> dict[str, str]:
    """Column -> type of a raw table's files dated inside [start, end] (first and last file of the dates)."""
    import pyarrow.parquet as pq

    days = {d.strftime("%Y-%m-%d") for d in pd.date_range(start.floor("D"), end.floor("D"), freq="D")}
    files = sorted(f for f in (offline / "raw" / kind).glob("date=*/*.parquet") if f.parent.name[5:] in days)
    out: dict[str, str] = {}
    for f in files[:1] + files[-1:]:
        out |= {field.name: str(field.type) for field in pq.read_schema(f) if field.name != "date"}
    return out


def _dlq_shapes(offline: Path, start: pd.Timestamp, end: pd.Timestamp) -> dict[str, int]:
    """Dead-letter reason (unknown requests by verb and path) -> lines whose own time falls in [start, end)."""
    glob = table_glob(offline, "raw/dlq")
    if glob is None:
        return {}
    df = query(f"SELECT ts, reason, detail, raw FROM read_parquet('{glob}', union_by_name=true)")
    if df.empty:
        return {}
    text = df["raw"].map(lambda b: bytes(b).decode("utf-8", "replace") if b is not None else "")
    own = pd.to_datetime(text.str.split(",", n=1).str[0], errors="coerce", utc=True, format="ISO8601")
    when = own.fillna(pd.to_datetime(df["ts"], utc=True))
    df = df[(when >= start) & (when < end)]
    out: dict[str, int] = {}
    for reason, detail in zip(df["reason"], df["detail"], strict=True):
        m = _UNKNOWN_REQUEST.search(str(detail or ""))
        key = f"{reason}:{m[1]} /{m[2]}" if m else str(reason)
        out[key] = out.get(key, 0) + 1
    return out


def stream_changes(
    offline: Path, window: tuple[pd.Timestamp, pd.Timestamp], reference: tuple[pd.Timestamp, pd.Timestamp]
) -> list[SchemaChange]:
    """Kinds, columns and dead-letter reasons of the window against the reference window."""
    out: list[SchemaChange] = []
    ratio = (window[1] - window[0]) / max(reference[1] - reference[0], pd.Timedelta(seconds=1))
    for kind in STREAM_KINDS:
        now, ref = _count(offline, kind, *window), _count(offline, kind, *reference)
        if now == 0 and ref * ratio >= MIN_EXPECTED_LINES:
            out.append(
                SchemaChange("stream", f"kind:{kind}", "missing", f"0 lines, {ref * ratio:.0f} expected")
            )
        elif now > 0 and ref == 0 and now >= MIN_EXPECTED_LINES:
            out.append(SchemaChange("stream", f"kind:{kind}", "new", f"{now} lines, none in the reference"))
        if now and ref:
            out += diff_fields("stream", {k: {v} for k, v in _columns(offline, kind, *reference).items()},
                               {k: {v: 1} for k, v in _columns(offline, kind, *window).items()}, 1, prefix=f"{kind}.")  # fmt: skip
    before = _dlq_shapes(offline, *reference)
    for shape, n in sorted(_dlq_shapes(offline, *window).items()):
        if shape not in before:
            out.append(
                SchemaChange("stream", f"dlq:{shape}", "new", f"{n} dead letters, none in the reference")
            )
    return out


def json_types(annotation: Any) -> set[str]:
    """JSON types a pydantic field annotation accepts (`int | None` -> {"integer", "null"})."""
    if annotation is None or annotation is type(None):
        return {"null"}
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return set().union(*(json_types(a) for a in typing.get_args(annotation)))
    base = origin or annotation
    names = {str: {"string"}, int: {"integer"}, float: {"number", "integer"}, bool: {"boolean"},
             list: {"array"}, dict: {"object"}}  # fmt: skip
    return names.get(base, {"string", "integer", "number", "boolean", "array", "object", "null"})


def json_type(value: Any) -> str:
    """The JSON type name of a decoded value."""
    if value is None:
        return "null"
    for kind, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
                       (list, "array"), (dict, "object")):  # fmt: skip
        if isinstance(value, kind):
            return name
    return type(value).__name__


def expected_schema(kind: Literal["movie", "user"]) -> dict[str, set[str]]:
    """Field -> accepted JSON types of a metadata API resource (ingestion's response schema)."""
    from ingestion.metadata_records import SCHEMAS

    return {name: json_types(f.annotation) for name, f in SCHEMAS[kind].model_fields.items()}


def observed(records: Iterable[Mapping[str, Any]]) -> tuple[dict[str, dict[str, int]], int]:
    """Field -> {JSON type: records} over `records`, and the number of records."""
    seen: dict[str, dict[str, int]] = {}
    n = 0
    for rec in records:
        n += 1
        for name, value in rec.items():
            types_ = seen.setdefault(name, {})
            types_[json_type(value)] = types_.get(json_type(value), 0) + 1
    return seen, n


def diff_fields(
    source: Literal["stream", "metadata"],
    expected: Mapping[str, set[str]],
    seen: Mapping[str, Mapping[str, int]],
    n: int,
    prefix: str = "",
    ignore: Iterable[str] = (),
) -> list[SchemaChange]:
    """New, missing and retyped fields of `n` records (`seen`: field -> type -> records) against `expected`."""
    out: list[SchemaChange] = []
    skip = set(ignore)
    for name, accepted in expected.items():
        present = sum(seen.get(name, {}).values())
        if name in skip:
            continue
        if n - present >= SHARE * n and n:
            out.append(SchemaChange(source, prefix + name, "missing", f"absent in {n - present}/{n} records"))
            continue
        wrong = {t: c for t, c in seen.get(name, {}).items() if t not in accepted}
        if sum(wrong.values()) >= SHARE * max(present, 1):
            got = ", ".join(f"{t} in {c}/{n}" for t, c in sorted(wrong.items()))
            out.append(SchemaChange(source, prefix + name, "retyped", f"expected {'|'.join(sorted(accepted))}, got {got}"))  # fmt: skip
    for name, by_type in seen.items():
        if name not in expected and name not in skip and sum(by_type.values()) >= SHARE * n:
            out.append(SchemaChange(source, prefix + name, "new", f"present in {sum(by_type.values())}/{n} records"))  # fmt: skip
    return out


def metadata_changes(
    base_url: str,
    movie_ids: list[str],
    user_ids: list[int],
    timeout_s: float = 5.0,
    client: httpx.Client | None = None,
) -> tuple[list[SchemaChange], str | None]:
    """Fetch the sampled movies and users from the metadata API and diff their fields; a note when unreachable.

    `client` replaces the HTTP client made for `base_url` (e.g. an in-process app's test client).
    """
    from ingestion.metadata_records import ID_FIELDS

    out: list[SchemaChange] = []
    samples: list[tuple[Literal["movie", "user"], list[str]]] = [
        ("movie", movie_ids), ("user", [str(u) for u in user_ids])
    ]  # fmt: skip
    try:
        # A given client stays open: its owner closes it.
        own = (
            nullcontext(client) if client is not None else httpx.Client(base_url=base_url, timeout=timeout_s)
        )
        with own as http:
            for kind, ids in samples:
                if not ids:
                    continue
                answer = http.get(f"/{kind}/{','.join(str(i) for i in ids)}")
                body = answer.json() if answer.status_code == 200 else None
                body = [body] if isinstance(body, dict) else body
                if not isinstance(body, list):
                    return out, f"metadata API answered {answer.status_code} for {kind}s"
                records = [r for r in body if isinstance(r, dict) and "error" not in r]
                seen, n = observed(records)
                out += diff_fields("metadata", expected_schema(kind), seen, n, prefix=f"{kind}.",
                                   ignore=ID_FIELDS[kind])  # fmt: skip
    except (httpx.HTTPError, ValueError) as e:
        return out, f"metadata API unreachable at {base_url}: {e}"
    return out, None
