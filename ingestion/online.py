"""Writers of feature rows to the online store: Feast's Redis store, or nothing (offline-only runs)."""

from __future__ import annotations

from typing import Any, Protocol

import pyarrow as pa


class OnlineWriter(Protocol):
    """Writes one feature view's rows to the online store; raises on failure."""

    def write(self, view: str, rows: pa.Table) -> None:
        """Upsert the rows (latest event_timestamp per entity wins)."""
        ...


class FeastOnlineWriter:
    """`FeatureStore.write_to_online_store` for each view (Redis behind it)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def write(self, view: str, rows: pa.Table) -> None:
        """Upsert through Feast so keys and serialisation match what serving reads."""
        self.store.write_to_online_store(view, rows.to_pandas())
