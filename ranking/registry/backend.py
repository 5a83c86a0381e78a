"""The MLflow side of the registry: a quiet import, one client per backend, errors mapped, a run's uploads.

MLflow is imported only here and only when a registry is opened (about 6 s on this machine).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from core.layout import REFERENCE_SAMPLE
from ranking.provenance import Provenance
from ranking.registry.artifacts import (
    CANDIDATES_DIR,
    MODEL_ARTIFACT,
    PROVENANCE_FILE,
    REPORT_ARTIFACT,
    model_files,
)
from ranking.registry.errors import RegistryError, RegistryUnavailableError, VersionNotFoundError
from ranking.settings import RankSettings

if TYPE_CHECKING:
    from mlflow import MlflowClient


def mlflow_client_class() -> type[MlflowClient]:
    """Import MLflow quietly: no telemetry, progress bars, run links on stdout or INFO chatter."""
    # MLflow 3 sends usage telemetry by default and prints run URLs for HTTP servers; a platform
    # component must not phone home or litter CLI output. setdefault keeps an operator's choice.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    from mlflow import MlflowClient

    # After the import: importing mlflow sets its own loggers to INFO.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return MlflowClient


def open_client(settings: RankSettings) -> MlflowClient:
    """A client on the configured tracking URI; creates the SQLite folder (the database MLflow does)."""
    client_class = mlflow_client_class()
    uri = settings.tracking_uri
    if (db := settings.sqlite_path) is None:
        return client_class(tracking_uri=uri, registry_uri=uri)
    db = db.expanduser()
    db.parent.mkdir(parents=True, exist_ok=True)
    # MLflow creates and migrates a SQLite database on first use; two processes doing it at
    # once (the workers of `recsys serve` on a fresh var dir) fail ("table _alembic_tmp_tags
    # already exists"). One process at a time builds the client and makes the first calls.
    import fcntl

    with (db.parent / f".{db.name}.init.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        client = client_class(tracking_uri=uri, registry_uri=uri)
        client.search_registered_models(max_results=1)
        client.search_experiments(max_results=1)
    return client


@contextmanager
def mlflow_errors(what: str) -> Iterator[None]:
    """Turn MLflow's and the backend's exceptions into registry errors that say what was being done."""
    from mlflow.exceptions import ERROR_CODE_TO_HTTP_STATUS, MlflowException

    try:
        yield
    except RegistryError:
        raise
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise VersionNotFoundError(f"{what}: {exc.message}") from exc
        kind = (
            RegistryError
            if ERROR_CODE_TO_HTTP_STATUS.get(exc.error_code, 500) < 500
            else RegistryUnavailableError
        )
        raise kind(f"{what}: {exc.message}") from exc
    except Exception as exc:  # sqlalchemy, requests, OSError: the backend itself is in trouble
        raise RegistryUnavailableError(f"{what}: {type(exc).__name__}: {exc}") from exc


def now() -> str:
    """The current UTC time as ISO 8601 seconds (what the promotion and rollback tags hold)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def experiment_id(client: MlflowClient, settings: RankSettings) -> str:
    """The training experiment's id, created (or restored from the trash) when needed."""
    exp = client.get_experiment_by_name(settings.experiment)
    if exp is None:
        return client.create_experiment(settings.experiment, artifact_location=settings.artifact_root)
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    return str(exp.experiment_id)


def log_run(
    client: MlflowClient,
    run_id: str,
    model_dir: Path,
    provenance: Provenance,
    metrics: Mapping[str, float],
    report_path: Path | None,
) -> None:
    """Log metrics, params, the model's files, provenance and report into an open run, then finish it."""
    from mlflow.entities import Metric, Param

    try:
        stamp = int(datetime.now(UTC).timestamp() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, float(v), stamp, 0) for k, v in metrics.items()])
        params = [Param(k, str(v)[:6000]) for k, v in sorted(provenance.params.items())]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            client.log_batch(run_id, params=params[start : start + 100])
        for name in model_files(model_dir):
            client.log_artifact(run_id, str(model_dir / name), MODEL_ARTIFACT)
        index_dir = model_dir / CANDIDATES_DIR
        if index_dir.is_dir():
            client.log_artifacts(run_id, str(index_dir), f"{MODEL_ARTIFACT}/{CANDIDATES_DIR}")
        reference = model_dir / REFERENCE_SAMPLE.parent  # monitoring's skew reference rides with the version
        if reference.is_dir():
            client.log_artifacts(
                run_id, str(reference), f"{MODEL_ARTIFACT}/{REFERENCE_SAMPLE.parent.as_posix()}"
            )
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / PROVENANCE_FILE).write_text(provenance.to_json())
            client.log_artifact(run_id, str(Path(tmp) / PROVENANCE_FILE))
        if report_path is not None and report_path.is_dir():
            client.log_artifacts(run_id, str(report_path), REPORT_ARTIFACT)
        elif report_path is not None:
            client.log_artifact(run_id, str(report_path), REPORT_ARTIFACT)
        client.set_terminated(run_id, "FINISHED")
    except Exception:
        client.set_terminated(run_id, "FAILED")
        raise
