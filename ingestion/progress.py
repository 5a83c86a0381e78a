"""Per-partition progress: the offset up to which the offline store is complete, and crash recovery.

The offline store, not Kafka's committed offset, is the source of truth: a batch counts as
landed once every file of it has been renamed into place and the progress marker moved past
it. On (re)assignment a worker removes files of any batch that started at or after the
marker (left by a crash mid-batch) and resumes from the marker, so nothing is lost and
nothing is landed twice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ingestion.layout import OfflineLayout, parse_file_name


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so readers see the old or the new content, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class Progress:
    """Reads and moves the per-partition markers."""

    def __init__(self, layout: OfflineLayout) -> None:
        self.layout = layout

    def next_offset(self, topic: str, partition: int) -> int | None:
        """The first offset not yet landed, or None when nothing was ever landed."""
        path = self.layout.progress_file(topic, partition)
        try:
            return int(json.loads(path.read_text())["next_offset"])
        except FileNotFoundError:
            return None

    def advance(self, topic: str, partition: int, next_offset: int) -> None:
        """Mark everything before `next_offset` as landed (the commit point of a batch)."""
        atomic_write(
            self.layout.progress_file(topic, partition),
            json.dumps({"next_offset": next_offset}).encode(),
        )

    def recover(self, topic: str, partition: int) -> tuple[int | None, int]:
        """Remove orphans of an interrupted batch; return (resume offset, files removed)."""
        resume = self.next_offset(topic, partition)
        removed = 0
        for path in self.layout.landed_files(topic, partition):
            batch = parse_file_name(path.name)
            if batch is not None and (resume is None or batch.first >= resume):
                path.unlink(missing_ok=True)
                removed += 1
        return resume, removed
