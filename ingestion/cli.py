"""`recsys ingest`: run an ingestion worker (one process of the consumer group)."""

from __future__ import annotations

import logging
import signal
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def ingest(
    idle_exit: Annotated[
        float | None,
        typer.Option(help="Exit after this many seconds without a message (default: run forever)."),
    ] = None,
    max_seconds: Annotated[
        float | None, typer.Option(help="Exit after this many seconds in any case.")
    ] = None,
    until_drained: Annotated[
        bool,
        typer.Option(
            help="Exit once every partition is landed up to its high watermark (lag 0), e.g. after a replay."
        ),
    ] = False,
    online: Annotated[
        bool, typer.Option(help="Push user features to the online store (Feast/Redis).")
    ] = True,
    enrich: Annotated[
        bool, typer.Option(help="Look movies up in the metadata API for genre features.")
    ] = True,
) -> None:
    """Consume `movielog` into the offline store, the DLQ and Feast; safe to kill -9 and restart."""
    from prometheus_client import start_http_server

    from ingestion.factory import build_worker
    from ingestion.settings import get_ingest_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_ingest_settings()
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_host)
    worker = build_worker(settings, online=online, enrich=enrich)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    stats = worker.run(idle_exit_s=idle_exit, max_seconds=max_seconds, until_drained=until_drained)
    console.print(
        f"ingested {stats.messages:,} messages in {stats.batches:,} batches: {stats.landed:,} landed "
        f"({dict(stats.by_kind)}), {stats.dlq:,} to the DLQ, {stats.replayed:,} replayed for state, "
        f"{stats.pushes_failed} failed online pushes"
    )
