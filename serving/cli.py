"""`recsys serve`: the recommendation API under uvicorn, one worker process per core."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Final

import typer

SHM: Final = Path("/dev/shm")
"""A tmpfs on Linux hosts and in containers (writable even on a read-only root filesystem)."""


def metrics_parent() -> str | None:
    """Where the workers' Prometheus multiprocess files go: /dev/shm when writable, else the temp dir.

    Every request writes its counters and histograms to these memory-mapped files from the event
    loop. On a disk filesystem a write to a page that writeback just cleaned faults into the
    filesystem (journal start): behind Kafka's and Redis's fsyncs that can stall the loop, the way
    gunicorn's docs warn about its worker heartbeat file. tmpfs pages never go to disk.
    """
    return str(SHM) if SHM.is_dir() and os.access(SHM, os.W_OK) else None


def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on (default RECSYS_SERVING_HOST).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default RECSYS_SERVING_PORT).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes; one per core (default RECSYS_SERVING_WORKERS).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Serve GET /recommend/<userid> from online features and the registry's models."""
    import uvicorn
    from pydantic import ValidationError

    from serving.settings import get_serving_settings

    # Options go through the environment: the settings (whose validator checks the admin token
    # against the address actually bound) and every uvicorn worker then see the same host and port.
    if host is not None:
        os.environ["RECSYS_SERVING_HOST"] = host
    if port is not None:
        os.environ["RECSYS_SERVING_PORT"] = str(port)
    get_serving_settings.cache_clear()
    try:
        settings = get_serving_settings()  # refuse to start before forking workers
    except ValidationError as e:
        reasons = "; ".join(str(err["msg"]).removeprefix("Value error, ") for err in e.errors())
        typer.echo(f"error: refusing to serve: {reasons}", err=True)
        raise typer.Exit(2) from None
    n = workers or settings.workers
    # BLAS/OpenMP pools of one thread per worker: oversubscription costs 30x latency on 2 cores.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    multiproc_dir = None
    if n > 1:
        # Each worker writes its metrics to files here; /metrics sums them (serving.metrics).
        # Both names: prometheus_client reads one, Feast (imported in the workers) the other.
        multiproc_dir = tempfile.mkdtemp(prefix="recsys-prom-", dir=metrics_parent())
        for var in ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR", "RECSYS_SERVING_METRICS_DIR"):
            os.environ[var] = multiproc_dir
    try:
        uvicorn.run(
            "serving.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=n,
            log_level=log_level,
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    finally:
        if multiproc_dir is not None:
            shutil.rmtree(multiproc_dir, ignore_errors=True)
