"""Rebuild Feast's online store from the offline store: every view's TTL window, one process at a time.

Used by `recsys features rebuild`, by ingestion when the store marker says the store is empty
or Redis restarted (`feature_repo.online_marker`), and (through the command) by serving. The
rebuild takes a Redis lock so concurrent detectors do not materialise twice, then stamps the
marker, so the next check sees a whole store.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feature_repo import online_marker
from feature_repo.online_signal import MOVIE_VIEWS, advance_clock, bump

USER_VIEWS = ("user_watch_stats", "user_rating_stats", "user_profile", "user_description")
"""The user feature views ingestion writes."""
ALL_VIEWS = (*USER_VIEWS, *MOVIE_VIEWS)


@dataclass
class RebuildReport:
    """What a rebuild did (or why it did not run)."""

    ran: bool
    reason: str
    seconds: float = 0.0
    keys_before: int = 0
    keys_after: int = 0
    views: list[str] = field(default_factory=list)


def _latest_event(store: Any, views: Sequence[str]) -> datetime | None:
    """The latest event time in the views' offline files (None when there are none)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    latest: datetime | None = None
    for name in views:
        path = Path(store.get_feature_view(name).batch_source.path)
        files = sorted(str(f) for f in path.parent.glob(path.name))
        if not files:
            continue
        value = pc.max(
            ds.dataset(files, format="parquet").to_table(columns=["event_timestamp"])["event_timestamp"]
        )
        ts = value.as_py()
        if ts is not None and (latest is None or ts > latest):
            latest = ts
    return latest


def rebuild(
    store: Any,
    client: Any,
    views: Sequence[str] = ALL_VIEWS,
    *,
    only_if_needed: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> RebuildReport:
    """Materialise `views` over their TTL window from the offline store into Redis; stamp the marker.

    `only_if_needed`: do nothing when the marker says the store is whole. `progress(view, done, total)`
    is called before each view and at the end. Returns without work when another process holds the lock.
    """
    state = online_marker.check(client)
    if only_if_needed and not state.needs_rebuild:
        return RebuildReport(False, "store is whole")
    owner = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"
    if not online_marker.try_lock(client, owner):
        return RebuildReport(False, "another process is rebuilding")
    t0 = time.perf_counter()
    report = RebuildReport(True, state.verdict, keys_before=int(client.dbsize()))
    try:
        now = datetime.now(UTC)
        latest = _latest_event(store, views)
        # A replayed historical log is "now" at its own latest event: each view's TTL window ends there.
        anchor = min(now, latest) if latest is not None else now
        for i, name in enumerate(views):
            if progress is not None:
                progress(name, i, len(views))
            view = store.get_feature_view(name)
            path = Path(view.batch_source.path)
            if not any(path.parent.glob(path.name)):
                continue  # DuckDB fails on a glob that matches nothing; nothing to restore either
            with contextlib.redirect_stdout(
                io.StringIO()
            ):  # Feast prints per view; `progress` reports instead
                store.materialize(start_date=anchor - view.ttl, end_date=now, feature_views=[name])
            report.views.append(name)
        if progress is not None:
            progress("done", len(views), len(views))
        if any(v in MOVIE_VIEWS for v in views):
            bump(client)  # serving re-reads its movie table
        if latest is not None:
            advance_clock(client, latest.timestamp())  # the stream clock lived in the lost store too
        if set(views) >= set(ALL_VIEWS):
            online_marker.mark(client)
    finally:
        online_marker.unlock(client, owner)
    report.seconds = time.perf_counter() - t0
    report.keys_after = int(client.dbsize())
    return report
