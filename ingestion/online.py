"""Writers of feature rows to the online store: Feast's Redis store, or nothing (offline-only runs)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from feature_repo.online_signal import MOVIE_VIEWS, advance_clock, bump
from ingestion.rebuild import RebuildReport, rebuild


class OnlineWriter(Protocol):
    """Writes one feature view's rows to the online store; raises on failure."""

    def write(self, view: str, rows: pa.Table) -> None:
        """Upsert the rows (latest event_timestamp per entity wins)."""
        ...


class FeastOnlineWriter:
    """`FeatureStore.write_to_online_store` for each view (Redis behind it).

    `signal`: a Redis client of the online store's db; after a write of movie features the
    change counter of `feature_repo.online_signal` is bumped, so serving re-reads its table.
    """

    def __init__(self, store: Any, signal: Any = None) -> None:
        self.store = store
        self.signal = signal

    def write(self, view: str, rows: pa.Table) -> None:
        """Upsert through Feast so keys and serialisation match what serving reads."""
        self.store.write_to_online_store(view, rows.to_pandas())
        self._changed([view])
        if self.signal is not None and rows.num_rows and "event_timestamp" in rows.column_names:
            latest = pc.max(rows["event_timestamp"]).as_py()
            if latest is not None:
                advance_clock(self.signal, latest.timestamp())

    def _changed(self, views: list[str]) -> None:
        if self.signal is not None and any(v in MOVIE_VIEWS for v in views):
            bump(self.signal)

    def catch_up(self, views: list[str]) -> None:
        """Materialise each view's whole TTL window from the offline store: after an outage Redis may have lost keys.

        Not `materialize_incremental`: it selects rows by event time since the last run, and a
        replayed or simulated stream lands rows whose event time is long past.
        """
        now = datetime.now(UTC)
        for name in views:
            view = self.store.get_feature_view(name)
            path = Path(view.batch_source.path)
            if not any(path.parent.glob(path.name)):
                continue  # DuckDB fails on a glob that matches nothing; nothing to restore either
            self.store.materialize(start_date=now - view.ttl, end_date=now, feature_views=[name])
        self._changed(views)

    def rebuild_if_needed(self) -> RebuildReport | None:
        """Rebuild every view when the store marker says Redis lost or may have lost rows (None without a client)."""
        if self.signal is None:
            return None
        return rebuild(self.store, self.signal, only_if_needed=True)
