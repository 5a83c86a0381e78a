"""What a registered model version carries about its origin: code commit, features, training data, params.

The training data snapshot is cheap on gigabytes because it reads Parquet footers only: per file
the relative path, byte size, row count and min/max of the event-time column (from row-group
statistics). Its `content_hash` is a SHA-256 over those facts, not over the bytes: offline files
are written once under new names and never rewritten (docs/features.md), so a new, removed,
grown or replaced file changes the hash, while an in-place edit that kept size, rows and time
range would not. Metrics are not provenance (they are the evaluation's output) and travel
separately to `ModelRegistry.register`.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EVENT_TIMESTAMP = "event_timestamp"
"""Default time column of offline tables (the Feast contract's name)."""
UNKNOWN = "unknown"
"""Value of a fact that could not be determined (no git checkout, no Feast registry file)."""


@dataclass(frozen=True)
class DataFile:
    """One Parquet file of the training data, as its footer describes it."""

    table: str
    path: str
    """Relative to the snapshot root (absolute if the file lies outside it)."""
    size: int
    rows: int
    time_min: str | None = None
    time_max: str | None = None


@dataclass(frozen=True)
class DataSnapshot:
    """The training data a model saw: its files, row counts per table, event time range, content hash."""

    files: tuple[DataFile, ...]
    root: str
    content_hash: str

    @property
    def rows(self) -> dict[str, int]:
        """Row count per table."""
        out: dict[str, int] = {}
        for f in self.files:
            out[f.table] = out.get(f.table, 0) + f.rows
        return out

    @property
    def total_rows(self) -> int:
        """Rows over all tables."""
        return sum(f.rows for f in self.files)

    @property
    def time_range(self) -> tuple[str | None, str | None]:
        """Earliest and latest event time over all files (ISO 8601 UTC), None when unknown."""
        lows = [f.time_min for f in self.files if f.time_min]
        highs = [f.time_max for f in self.files if f.time_max]
        return (min(lows) if lows else None, max(highs) if highs else None)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataSnapshot:
        """The inverse of `dataclasses.asdict`."""
        files = tuple(DataFile(**f) for f in data["files"])
        return cls(files=files, root=str(data["root"]), content_hash=str(data["content_hash"]))


def _iso(value: object) -> str | None:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat()
    return None


def _describe(path: Path, table: str, root: Path, time_column: str) -> DataFile:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    schema = meta.schema.to_arrow_schema()
    lows: list[str] = []
    highs: list[str] = []
    index = schema.get_field_index(time_column)
    if index >= 0:
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(index).statistics
            if stats is not None and stats.has_min_max:
                lo, hi = _iso(stats.min), _iso(stats.max)
                lows += [lo] if lo else []
                highs += [hi] if hi else []
    try:
        rel = path.resolve().relative_to(root).as_posix()
    except ValueError:
        rel = path.resolve().as_posix()
    return DataFile(
        table, rel, path.stat().st_size, meta.num_rows, min(lows, default=None), max(highs, default=None)
    )


def data_snapshot(
    tables: Mapping[str, Path | Sequence[Path]],
    root: Path,
    time_column: str = EVENT_TIMESTAMP,
    time_columns: Mapping[str, str] | None = None,
) -> DataSnapshot:
    """Describe training tables, each a folder (its `*.parquet`) or a list of Parquet files; `time_columns` overrides per table."""
    root = root.expanduser().resolve()
    files: list[DataFile] = []
    for table, spec in sorted(tables.items()):
        if isinstance(spec, Path):
            paths = sorted(spec.glob("*.parquet")) if spec.is_dir() else [spec]
        else:
            paths = sorted(spec)
        column = (time_columns or {}).get(table, time_column)
        files += [_describe(p, table, root, column) for p in paths]
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.table}\t{f.path}\t{f.size}\t{f.rows}\t{f.time_min}\t{f.time_max}\n".encode())
    return DataSnapshot(files=tuple(files), root=str(root), content_hash=digest.hexdigest())


def git_commit(repo_dir: Path) -> tuple[str, bool]:
    """The checked-out commit and whether tracked files differ from it; ("unknown", False) outside git."""

    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", "-C", str(repo_dir), *args], capture_output=True, text=True, timeout=10, check=True
        )
        return result.stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        # Untracked files (var/, scratch) do not change what the code is; tracked edits do.
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN, False
    return commit, dirty


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def feast_registry_version(registry_file: Path) -> str:
    """SHA-256 of the Feast file registry (changes with every `feast apply`); "unknown" if absent."""
    try:
        return file_sha256(registry_file)
    except OSError:
        return UNKNOWN


@dataclass(frozen=True)
class Provenance:
    """Where a model came from: code, feature definitions, training data and training parameters."""

    git_commit: str
    git_dirty: bool
    feature_service: str
    feast_registry_version: str
    data: DataSnapshot
    params: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @classmethod
    def collect(
        cls,
        repo_dir: Path,
        feature_service: str,
        registry_file: Path,
        data: DataSnapshot,
        params: Mapping[str, Any] | None = None,
    ) -> Provenance:
        """Gather the commit and the Feast registry version now, around a snapshot and params."""
        commit, dirty = git_commit(repo_dir)
        version = feast_registry_version(registry_file)
        return cls(commit, dirty, feature_service, version, data, dict(params or {}))

    def tags(self) -> dict[str, str]:
        """The short facts a version is tagged with (the full record is the `provenance.json` artifact)."""
        start, end = self.data.time_range
        return {
            "git_commit": self.git_commit,
            "git_dirty": str(self.git_dirty).lower(),
            "feature_service": self.feature_service,
            "feast_registry_version": self.feast_registry_version,
            "data_hash": self.data.content_hash,
            "data_files": str(len(self.data.files)),
            "data_rows": str(self.data.total_rows),
            "data_time_min": start or "",
            "data_time_max": end or "",
            "created_at": self.created_at,
        }

    def to_json(self) -> str:
        """The full record, as stored next to the model."""
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> Provenance:
        """Read back `to_json`."""
        raw = json.loads(text)
        raw["data"] = DataSnapshot.from_dict(raw["data"])
        return cls(**raw)
