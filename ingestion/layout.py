"""Where raw events, DLQ rows, feature tables and progress markers live in the offline store.

Files carry their origin in their names — `<topic>-p<partition>-<first offset>-<last offset>` —
so a batch rewritten after a crash lands under the same name (idempotent) and orphans of an
interrupted batch can be found and removed before it is redone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

RAW_KINDS: Final = ("watch", "rate", "account", "recommendation", "dlq", "play")
"""Raw tables under `raw/<kind>/date=YYYY-MM-DD/`; `play` holds the start of every watch session."""
_NAME_RE: Final = re.compile(r"(?P<topic>.+)-p(?P<part>\d+)-(?P<first>\d{12})-(?P<last>\d{12})\.parquet")


@dataclass(frozen=True)
class BatchId:
    """A contiguous offset range of one partition."""

    topic: str
    partition: int
    first: int
    last: int

    def file_name(self) -> str:
        """`<topic>-p<partition>-<first>-<last>.parquet`, offsets zero-padded so names sort by offset."""
        return f"{self.topic}-p{self.partition}-{self.first:012d}-{self.last:012d}.parquet"


def parse_file_name(name: str) -> BatchId | None:
    """The batch a landed file came from, or None for other files."""
    m = _NAME_RE.fullmatch(name)
    if m is None:
        return None
    return BatchId(m["topic"], int(m["part"]), int(m["first"]), int(m["last"]))


class OfflineLayout:
    """Paths inside `<var>/offline`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def raw_dir(self, kind: str, date: str) -> Path:
        """Directory of one raw kind for one UTC date."""
        return self.root / "raw" / kind / f"date={date}"

    def raw_glob(self, kind: str) -> str:
        """Glob of every file of a raw kind (for DuckDB)."""
        return str(self.root / "raw" / kind / "date=*" / "*.parquet")

    def feature_dir(self, view: str) -> Path:
        """Directory of one Feast feature view's offline rows."""
        return self.root / "features" / view

    def sessions_dir(self, date: str) -> Path:
        """Directory of watch sessions that started on a UTC date."""
        return self.root / "sessions" / f"date={date}"

    def progress_file(self, topic: str, partition: int) -> Path:
        """Marker holding the next offset to land for a partition."""
        return self.root / "_progress" / f"{topic}-p{partition}.json"

    def landed_files(self, topic: str, partition: int) -> list[Path]:
        """Every landed file (raw and features) that came from a partition."""
        prefix = f"{topic}-p{partition}-"
        return [
            p
            for base in (self.root / "raw", self.root / "features")
            if base.exists()
            for p in base.rglob(f"{prefix}*.parquet")
            if (b := parse_file_name(p.name)) is not None and b.topic == topic and b.partition == partition
        ]
