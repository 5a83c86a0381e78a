"""The reference drift is measured against: the champion's training data, or the period before the window.

For served features and scores the reference is the champion's training sample
(`reference/train_sample.parquet` in its artifact folder, core.layout.REFERENCE_SAMPLE). For
ingested events it is the offline store's events of the champion's training window: the last
`reference_hours` before the end of its training data (provenance's data time range). Without a
champion (a fresh platform, a test world) events are compared with the `reference_hours` just
before the current window, and the result says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.layout import REFERENCE_SAMPLE
from monitoring.profiles import utc

log = logging.getLogger(__name__)


@dataclass
class Champion:
    """What drift needs of the champion: its version, artifact folder and training data's end."""

    version: int | None = None
    folder: Path | None = None
    data_end: pd.Timestamp | None = None
    note: str = ""
    """Why some of it is unknown (no registry, no champion, no provenance)."""

    @property
    def sample(self) -> Path | None:
        """The champion's reference sample, when its folder has one."""
        if self.folder is None:
            return None
        path = self.folder / REFERENCE_SAMPLE
        return path if path.is_file() else None


def find_champion(var: Path) -> Champion:
    """The champion of the registry under `var` (its settings); an empty Champion with a note when there is none."""
    from ranking.settings import RankSettings

    settings = RankSettings(var_dir=var)
    db = settings.sqlite_path
    if db is not None and not db.exists():
        return Champion(note=f"no model registry at {db}")
    try:
        from ranking.registry import ModelRegistry, RegistryError

        registry = ModelRegistry.open(settings)
        info = registry.resolve("champion")
    except Exception as e:  # an unreachable registry must not stop drift of the events
        return Champion(note=f"model registry unavailable: {e}")
    if info is None:
        return Champion(note="no champion registered")
    out = Champion(version=info.version)
    try:
        out.folder = registry.download(info.version)
        _, high = registry.load_provenance(info.version).data.time_range
        out.data_end = utc(high) if high else None
    except (RegistryError, OSError, ValueError, KeyError, TypeError) as e:
        out.note = f"champion v{info.version}: {e}"
    return out


@dataclass(frozen=True)
class ReferenceWindow:
    """Where the events reference comes from: [start, end) of log time, and a one-line description."""

    start: pd.Timestamp
    end: pd.Timestamp
    source: str


def events_window(champion: Champion, current_start: pd.Timestamp, reference_hours: float) -> ReferenceWindow:
    """The champion's training window when known, else the `reference_hours` before the current window."""
    span = pd.Timedelta(hours=reference_hours)
    if champion.data_end is not None:
        end = min(champion.data_end, current_start)
        return ReferenceWindow(end - span, end, f"champion v{champion.version} training window")
    return ReferenceWindow(current_start - span, current_start, "preceding period (no champion)")


def reference_sample(champion: Champion) -> pd.DataFrame | None:
    """The champion's training sample (feature columns, score, label), or None when absent."""
    path = champion.sample
    if path is None:
        return None
    return pd.read_parquet(path)
