"""The model registry on MLflow: versions with provenance, `champion`/`challenger` aliases, gated promotion, rollback.

A version is an MLflow run (params, metrics, provenance tags, artifacts `model/model.txt` in
LightGBM's text format, `model/meta.json`, `provenance.json`, `evaluation/<report>`) plus a
registered model version tagged with the provenance summary. Nothing here pickles or unpickles:
models go in and out as text files. Promotion moves `champion` only when the candidate passes
the smoke test and, unless forced, the metric gates against the current champion; the order of
champions is kept in the registered model's `champion_lineage` tag so `rollback` can walk it
back. MLflow is imported only when a registry is opened (about 6 s on this machine).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import numbers
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

from core.errors import RecsysError
from ranking.provenance import Provenance, file_sha256
from ranking.settings import RankSettings, get_rank_settings

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION: Final = "champion"
"""Alias of the version serving answers with."""
CHALLENGER: Final = "challenger"
"""Alias of the version an experiment routes a share of traffic to."""
MODEL_ARTIFACT: Final = "model"
"""Run artifact folder of the model files (the version's source)."""
MODEL_FILE: Final = "model.txt"
"""LightGBM text-format model (same name as `ranking.ranker.MODEL_FILE`)."""
META_FILE: Final = "meta.json"
"""Model metadata; its `features` list is the model's input width."""
META_FEATURES: Final = "features"
PROVENANCE_FILE: Final = "provenance.json"
REPORT_ARTIFACT: Final = "evaluation"
NDCG20: Final = "ndcg20"
"""Offline NDCG@20 (higher is better)."""
COST20: Final = "cost20"
"""Mean license cost (USD per play) over the top 20 (lower is better)."""
P99_MS: Final = "p99_ms"
"""p99 latency of scoring one request, in ms."""
MODEL_SHA256_TAG: Final = "model_sha256"
CANDIDATES_DIR: Final = "candidates"
"""Optional sub-folder of a model: the candidate index the model was trained with (plain .npz + JSON)."""
CANDIDATES_SHA256_TAG: Final = "candidates_sha256"
"""Version tag: SHA-256 of model.txt as registered."""
LINEAGE_TAG: Final = "champion_lineage"
"""Registered-model tag: JSON list of champion versions, oldest first; rollback pops it."""
LINEAGE_MAX: Final = 100
"""Entries kept: 100 short numbers stay far below the 5,000-character tag column."""
_EPS = 1e-9  # float noise: 0.30 - 0.02 is 0.27999999999999997


class RegistryError(RecsysError):
    """Base of registry errors; `http_status` is what an admin route answers with."""

    http_status = 500


class RegistryUnavailableError(RegistryError):
    """The tracking backend failed or could not be reached."""

    http_status = 503


class VersionNotFoundError(RegistryError):
    """No such registered model, version or alias."""

    http_status = 404


class ModelArtifactError(RegistryError):
    """A model directory or downloaded version lacks its files or holds invalid ones."""

    http_status = 422


class SmokeTestError(ModelArtifactError):
    """The model files do not load or do not predict finite scores."""


class AliasConflictError(RegistryError):
    """An alias move that would make no sense (the champion as its own challenger)."""

    http_status = 409


class RollbackError(RegistryError):
    """There is no earlier champion to go back to."""

    http_status = 409


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered version as the platform sees it (metrics and params only when the run was read)."""

    name: str
    version: int
    aliases: tuple[str, ...]
    run_id: str
    source: str
    created_at: datetime
    tags: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GateCheck:
    """One promotion gate and its verdict; `detail` names the metric and the figures."""

    metric: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class PromotionResult:
    """The answer to a promotion request; `accepted=False` leaves every alias where it was."""

    accepted: bool
    version: int
    reason: str
    previous: int | None = None
    forced: bool = False
    checks: tuple[GateCheck, ...] = ()


@dataclass(frozen=True)
class RollbackResult:
    """Which version `champion` left and which it points at now."""

    from_version: int
    to_version: int


def _finite(metrics: Mapping[str, float] | None, key: str) -> float | None:
    value = None if metrics is None else metrics.get(key)
    return value if value is not None and math.isfinite(value) else None


def check_gates(
    candidate: Mapping[str, float], champion: Mapping[str, float] | None, settings: RankSettings
) -> list[GateCheck]:
    """Compare a candidate's metrics with the champion's under the configured thresholds."""
    checks: list[GateCheck] = []
    for key, higher_is_better, allowed, rule in (
        (NDCG20, True, settings.max_ndcg_regression, "absolute drop"),
        (COST20, False, settings.max_cost_increase, "relative rise"),
    ):
        value, base = _finite(candidate, key), _finite(champion, key)
        if value is None:
            checks.append(GateCheck(key, False, f"candidate has no finite {key} metric"))
        elif base is None:
            checks.append(GateCheck(key, True, f"{key} {value:.4f}: no champion figure to compare with"))
        else:
            limit = base - allowed if higher_is_better else base * (1 + allowed)
            ok = value >= limit - _EPS if higher_is_better else value <= limit + _EPS
            detail = (
                f"{key} {value:.4f} vs champion {base:.4f} ({allowed:g} {rule} allowed, limit {limit:.4f})"
            )
            checks.append(GateCheck(key, ok, detail))
    p99 = _finite(candidate, P99_MS)
    if p99 is None:
        checks.append(GateCheck(P99_MS, False, f"candidate has no finite {P99_MS} metric"))
    else:
        ok = p99 <= settings.max_p99_ms + _EPS
        checks.append(GateCheck(P99_MS, ok, f"{P99_MS} {p99:.1f} ms (ceiling {settings.max_p99_ms:g} ms)"))
    return checks


def read_features(model_dir: Path) -> list[str]:
    """The feature list of a model directory; ModelArtifactError when a file is missing or meta.json is bad."""
    missing = [name for name in (MODEL_FILE, META_FILE) if not (model_dir / name).is_file()]
    if missing:
        raise ModelArtifactError(f"{model_dir} lacks {', '.join(missing)}")
    try:
        features = json.loads((model_dir / META_FILE).read_text()).get(META_FEATURES)
    except (ValueError, AttributeError) as exc:
        raise ModelArtifactError(f"{model_dir / META_FILE} is not a JSON object: {exc}") from exc
    if not isinstance(features, list) or not features or not all(isinstance(f, str) for f in features):
        raise ModelArtifactError(f"{model_dir / META_FILE} has no non-empty '{META_FEATURES}' list of names")
    return features


def folder_sha256(folder: Path) -> str:
    """One SHA-256 over a folder's files (sorted relative names and their contents' hashes)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def check_text_model(path: Path) -> None:
    """Check a LightGBM text model's layout (header, `tree_sizes`, tree blocks, end marker) without LightGBM.

    Why: LightGBM 4.7 aborts the whole process (C++ `terminate`) on some malformed files, and
    loads a file cut after a tree boundary silently with fewer trees. The header's `tree_sizes`
    gives each tree block's exact byte length, so truncation and edits inside trees show here.
    """
    data = path.read_bytes()
    if not data.startswith(b"tree\n"):
        raise SmokeTestError(f"{path.name} is not a LightGBM text model (no 'tree' header line)")
    sizes_line = re.search(rb"^tree_sizes=([0-9 ]*)$", data, re.MULTILINE)
    first = data.find(b"\nTree=0\n")
    if sizes_line is None or first < 0:
        raise SmokeTestError(f"{path.name} has no tree_sizes header or no Tree=0 block")
    pos = first + 1
    for i, size in enumerate(int(s) for s in sizes_line.group(1).split()):
        if not data.startswith(f"Tree={i}\n".encode(), pos):
            raise SmokeTestError(
                f"{path.name}: tree {i} is not where tree_sizes puts it (file edited or cut)"
            )
        pos += size
    if not data.startswith(b"end of trees", pos):
        raise SmokeTestError(f"{path.name}: no 'end of trees' after the last tree (file cut short)")


def smoke_test(model_dir: Path) -> None:
    """Check model.txt's layout, load it with LightGBM, match its width to meta.json, predict zeros to finite scores."""
    try:
        width = len(read_features(model_dir))
    except ModelArtifactError as exc:
        raise SmokeTestError(str(exc)) from exc
    check_text_model(model_dir / MODEL_FILE)
    import lightgbm as lgb
    import numpy as np

    try:
        booster = lgb.Booster(model_file=str(model_dir / MODEL_FILE))
    except Exception as exc:  # LightGBMError, or ValueError on a mangled header
        raise SmokeTestError(f"{MODEL_FILE} does not load as a LightGBM text model: {exc}") from exc
    if booster.num_feature() != width:
        raise SmokeTestError(
            f"{MODEL_FILE} expects {booster.num_feature()} features, {META_FILE} lists {width}"
        )
    scores = np.asarray(booster.predict(np.zeros((4, width)), num_threads=1), dtype=np.float64)
    if scores.shape != (4,) or not np.isfinite(scores).all():
        raise SmokeTestError(f"predicting on zeros gave {scores!r}, want 4 finite scores")


def _mlflow_client_class() -> type[MlflowClient]:
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


@contextmanager
def _mlflow_errors(what: str) -> Iterator[None]:
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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ModelRegistry:
    """The ranker's registered model on one MLflow backend; every method is a few small backend calls."""

    def __init__(self, client: MlflowClient, settings: RankSettings) -> None:
        self.client = client
        self.settings = settings
        self.name = settings.model_name

    @classmethod
    def open(cls, settings: RankSettings | None = None) -> ModelRegistry:
        """A registry on the configured tracking URI; creates the SQLite folder (the database MLflow does)."""
        settings = settings or get_rank_settings()
        client_class = _mlflow_client_class()
        uri = settings.tracking_uri
        if (db := settings.sqlite_path) is None:
            return cls(client_class(tracking_uri=uri, registry_uri=uri), settings)
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
        return cls(client, settings)

    # --- reading --------------------------------------------------------------------------

    def aliases(self) -> dict[str, int]:
        """Alias -> version, in one call: what serving polls to notice a promotion or rollback."""
        try:
            with _mlflow_errors(f"reading model {self.name!r}"):
                model = self.client.get_registered_model(self.name)
        except VersionNotFoundError:
            return {}  # nothing registered yet
        return {alias: int(v) for alias, v in model.aliases.items()}

    def resolve(self, alias: str) -> ModelVersionInfo | None:
        """The version an alias points at (without run metrics), or None when the alias is not set."""
        version = self.aliases().get(alias)
        return None if version is None else self._version(version, read_run=False)

    def show(self, ref: int | str) -> ModelVersionInfo:
        """A version by number (`3`, `v3`) or alias, with its run's metrics and params."""
        text = str(ref).removeprefix("v")
        if text.isdigit():
            return self._version(int(text), read_run=True)
        version = self.aliases().get(str(ref))
        if version is None:
            raise VersionNotFoundError(f"model {self.name!r} has no alias {ref!r}")
        return self._version(version, read_run=True)

    def list_versions(self) -> list[ModelVersionInfo]:
        """Every version, newest first, with metrics and params."""
        aliases = self.aliases()
        with _mlflow_errors(f"listing versions of {self.name!r}"):
            found = self.client.search_model_versions(f"name = '{self.name}'")
            return sorted((self._info(mv, aliases, True) for mv in found), key=lambda i: -i.version)

    def load_provenance(self, ref: int | str) -> Provenance:
        """The full provenance record stored with a version (`provenance.json`)."""
        import mlflow.artifacts

        info = self.show(ref)
        with tempfile.TemporaryDirectory() as tmp, _mlflow_errors(f"reading provenance of v{info.version}"):
            local = mlflow.artifacts.download_artifacts(
                run_id=info.run_id,
                artifact_path=PROVENANCE_FILE,
                dst_path=tmp,
                tracking_uri=self.client.tracking_uri,
            )
            return Provenance.from_json(Path(local).read_text())

    def download(self, ref: int | str) -> Path:
        """A verified local copy of a version's model files under `<var>/mlflow/cache/` (versions never change)."""
        import mlflow.artifacts

        info = self.show(ref)
        # Keyed by backend too: version 3 of another tracking server is another model.
        backend = hashlib.sha256(self.settings.tracking_uri.encode()).hexdigest()[:12]
        dest = self.settings.cache_dir / backend / self.name / str(info.version)
        if dest.is_dir():
            try:
                return self._verified(dest, info)
            except ModelArtifactError:
                shutil.rmtree(dest)  # a damaged copy: fetch it again
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{info.version}-", dir=dest.parent))
        try:
            with _mlflow_errors(f"downloading v{info.version} from {info.source}"):
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=info.source, dst_path=str(tmp), tracking_uri=self.client.tracking_uri
                )
            self._verified(Path(local), info)
            # A rename within one folder is atomic: readers see no copy or a whole one.
            Path(local).rename(dest)
        except OSError:
            if not dest.is_dir():  # lost a race with another process: use its copy
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return dest

    @staticmethod
    def _verified(folder: Path, info: ModelVersionInfo) -> Path:
        read_features(folder)
        expected = info.tags.get(MODEL_SHA256_TAG)
        if expected and file_sha256(folder / MODEL_FILE) != expected:
            raise ModelArtifactError(f"v{info.version}: {MODEL_FILE} does not match its registered SHA-256")
        expected_index = info.tags.get(CANDIDATES_SHA256_TAG)
        if expected_index and folder_sha256(folder / CANDIDATES_DIR) != expected_index:
            raise ModelArtifactError(
                f"v{info.version}: {CANDIDATES_DIR}/ does not match its registered SHA-256"
            )
        return folder

    # --- writing --------------------------------------------------------------------------

    def register(
        self,
        model_dir: Path,
        provenance: Provenance,
        metrics: Mapping[str, float],
        report_path: Path | None = None,
        description: str | None = None,
    ) -> ModelVersionInfo:
        """Log a trained model (text files only), its params, metrics, provenance and report as a new version."""
        from mlflow.entities import Metric, Param

        read_features(model_dir)
        # NaN is allowed (a figure not measured); the gates treat it as missing.
        bad = sorted(k for k, v in metrics.items() if isinstance(v, bool) or not isinstance(v, numbers.Real))
        if bad:
            raise TypeError(f"metrics must be numbers: {', '.join(bad)}")
        # The model's own hash: download() checks it, so a damaged artifact store never reaches serving.
        tags = {**provenance.tags(), MODEL_SHA256_TAG: file_sha256(model_dir / MODEL_FILE)}
        index_dir = model_dir / CANDIDATES_DIR
        if index_dir.is_dir():
            tags[CANDIDATES_SHA256_TAG] = folder_sha256(index_dir)
        with _mlflow_errors(f"registering {model_dir} as {self.name!r}"):
            run = self.client.create_run(
                self._experiment_id(),
                run_name=f"{self.name}-{provenance.created_at}",
                tags={**tags, "mlflow.source.git.commit": provenance.git_commit},
            )
            run_id = run.info.run_id
            try:
                stamp = int(datetime.now(UTC).timestamp() * 1000)
                self.client.log_batch(
                    run_id, metrics=[Metric(k, float(v), stamp, 0) for k, v in metrics.items()]
                )
                params = [Param(k, str(v)[:6000]) for k, v in sorted(provenance.params.items())]
                for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
                    self.client.log_batch(run_id, params=params[start : start + 100])
                for name in (MODEL_FILE, META_FILE):  # exactly these files: nothing else rides along
                    self.client.log_artifact(run_id, str(model_dir / name), MODEL_ARTIFACT)
                if index_dir.is_dir():
                    self.client.log_artifacts(run_id, str(index_dir), f"{MODEL_ARTIFACT}/{CANDIDATES_DIR}")
                with tempfile.TemporaryDirectory() as tmp:
                    (Path(tmp) / PROVENANCE_FILE).write_text(provenance.to_json())
                    self.client.log_artifact(run_id, str(Path(tmp) / PROVENANCE_FILE))
                if report_path is not None and report_path.is_dir():
                    self.client.log_artifacts(run_id, str(report_path), REPORT_ARTIFACT)
                elif report_path is not None:
                    self.client.log_artifact(run_id, str(report_path), REPORT_ARTIFACT)
                self.client.set_terminated(run_id, "FINISHED")
            except Exception:
                self.client.set_terminated(run_id, "FAILED")
                raise
            self._ensure_model()
            mv = self.client.create_model_version(
                self.name,
                f"{run.info.artifact_uri}/{MODEL_ARTIFACT}",
                run_id,
                tags=tags,
                description=description,
            )
        return self._version(int(mv.version), read_run=True)

    def set_challenger(
        self, ref: int | str, smoke_test: Callable[[Path], None] | None = smoke_test
    ) -> ModelVersionInfo:
        """Point `challenger` at a version that passes the smoke test (serving loads it too) and is not champion."""
        info = self.show(ref)
        if self.aliases().get(CHAMPION) == info.version:
            raise AliasConflictError(f"v{info.version} is the champion; a challenger must be another version")
        if smoke_test is not None:
            try:
                smoke_test(self.download(info.version))
            except (RegistryUnavailableError, ModelArtifactError):
                raise
            except Exception as exc:
                raise SmokeTestError(f"v{info.version} cannot be challenger: {exc}") from exc
        with _mlflow_errors(f"setting {CHALLENGER} to v{info.version}"):
            self.client.set_registered_model_alias(self.name, CHALLENGER, str(info.version))
        return info

    def clear_challenger(self) -> int | None:
        """Remove the `challenger` alias; returns the version it pointed at."""
        version = self.aliases().get(CHALLENGER)
        if version is not None:
            with _mlflow_errors(f"removing {CHALLENGER}"):
                self.client.delete_registered_model_alias(self.name, CHALLENGER)
        return version

    def promote(
        self,
        ref: int | str,
        smoke_test: Callable[[Path], None] | None = smoke_test,
        force: bool = False,
    ) -> PromotionResult:
        """Make a version champion if its files pass `smoke_test` and, unless `force`, its metrics pass the gates."""
        candidate = self.show(ref)
        v = candidate.version
        current = self.aliases().get(CHAMPION)
        if current == v:
            return PromotionResult(True, v, f"v{v} is already {CHAMPION}; nothing changed", previous=v)
        if smoke_test is not None:
            try:
                smoke_test(self.download(v))
            except RegistryUnavailableError:
                raise  # the backend's trouble, not the candidate's
            except Exception as exc:  # any failure of the candidate's files refuses; force does not help
                return self._refuse(v, current, f"smoke test failed: {exc}", force)
        champion = self._version(current, read_run=True).metrics if current is not None else None
        checks = tuple(check_gates(candidate.metrics, champion, self.settings))
        failed = [c.detail for c in checks if not c.passed]
        if failed and not force:
            against = f" against {CHAMPION} v{current}" if current is not None else ""
            return self._refuse(
                v, current, f"regresses beyond thresholds{against}: {'; '.join(failed)}", force, checks
            )
        reason = f"forced past failed gates: {'; '.join(failed)}" if failed else "passed smoke test and gates"
        with _mlflow_errors(f"promoting v{v}"):
            # Alias first: if we die before the lineage is written, rollback still finds the old champion on top.
            self.client.set_registered_model_alias(self.name, CHAMPION, str(v))
            lineage = self._lineage()
            if current is not None and (not lineage or lineage[-1] != current):
                lineage.append(current)  # a champion set outside this tool
            self._set_lineage([*lineage, v])
            for key, value in {
                "promoted_at": _now(),
                "previous_champion": "" if current is None else str(current),
                "promotion_forced": str(force and bool(failed)).lower(),
                "promotion_reason": reason,
            }.items():
                self.client.set_model_version_tag(self.name, str(v), key, value)
            if "promotion_refused" in candidate.tags:  # an old refusal no longer describes it
                self.client.delete_model_version_tag(self.name, str(v), "promotion_refused")
            if self.aliases().get(CHALLENGER) == v:  # the challenger won: it no longer challenges itself
                self.client.delete_registered_model_alias(self.name, CHALLENGER)
        return PromotionResult(
            True, v, reason, previous=current, forced=force and bool(failed), checks=checks
        )

    def rollback(self) -> RollbackResult:
        """Point `champion` back at the champion before the current one (skipping deleted versions)."""
        current = self.aliases().get(CHAMPION)
        if current is None:
            raise RollbackError(f"model {self.name!r} has no {CHAMPION} to roll back")
        lineage = self._lineage()
        if lineage and lineage[-1] == current:
            lineage.pop()
        while lineage and (lineage[-1] == current or not self._exists(lineage[-1])):
            lineage.pop()
        if not lineage:
            raise RollbackError(f"{CHAMPION} v{current} has no earlier champion to roll back to")
        target = lineage[-1]
        with _mlflow_errors(f"rolling back to v{target}"):
            self.client.set_registered_model_alias(self.name, CHAMPION, str(target))
            self._set_lineage(lineage)
            self.client.set_model_version_tag(self.name, str(current), "rolled_back_at", _now())
            self.client.set_model_version_tag(self.name, str(target), "restored_at", _now())
        return RollbackResult(from_version=current, to_version=target)

    # --- helpers ---------------------------------------------------------------------------

    def _refuse(
        self, v: int, current: int | None, reason: str, force: bool, checks: tuple[GateCheck, ...] = ()
    ) -> PromotionResult:
        # Remembered on the version so `show` explains why it is not champion; no alias moves.
        with _mlflow_errors(f"recording the refusal of v{v}"):
            self.client.set_model_version_tag(
                self.name, str(v), "promotion_refused", f"{_now()} {reason}"[:5000]
            )
        return PromotionResult(False, v, reason, previous=current, forced=force, checks=checks)

    def _version(self, version: int, read_run: bool) -> ModelVersionInfo:
        with _mlflow_errors(f"reading {self.name!r} v{version}"):
            mv = self.client.get_model_version(self.name, str(version))
        return self._info(mv, None, read_run)

    def _info(self, mv: ModelVersion, aliases: Mapping[str, int] | None, read_run: bool) -> ModelVersionInfo:
        if aliases is None:
            names = tuple(mv.aliases)
        else:  # search results come without aliases
            names = tuple(a for a, n in aliases.items() if n == int(mv.version))
        metrics: dict[str, float] = {}
        params: dict[str, str] = {}
        if read_run and mv.run_id:
            with _mlflow_errors(f"reading run {mv.run_id}"):
                data = self.client.get_run(mv.run_id).data
            metrics, params = dict(data.metrics), dict(data.params)
        return ModelVersionInfo(
            name=mv.name,
            version=int(mv.version),
            aliases=names,
            run_id=mv.run_id or "",
            source=mv.source or "",
            created_at=datetime.fromtimestamp((mv.creation_timestamp or 0) / 1000, UTC),
            tags=dict(mv.tags),
            metrics=metrics,
            params=params,
        )

    def _exists(self, version: int) -> bool:
        try:
            self._version(version, read_run=False)
        except VersionNotFoundError:
            return False
        return True

    def _lineage(self) -> list[int]:
        with _mlflow_errors(f"reading {LINEAGE_TAG}"):
            raw = self.client.get_registered_model(self.name).tags.get(LINEAGE_TAG, "[]")
        try:
            return [int(v) for v in json.loads(raw)]
        except (ValueError, TypeError) as exc:
            raise RegistryError(
                f"tag {LINEAGE_TAG} of {self.name!r} is not a JSON list of versions: {raw!r}"
            ) from exc

    def _set_lineage(self, lineage: list[int]) -> None:
        self.client.set_registered_model_tag(self.name, LINEAGE_TAG, json.dumps(lineage[-LINEAGE_MAX:]))

    def _ensure_model(self) -> None:
        try:
            with _mlflow_errors(f"reading model {self.name!r}"):
                self.client.get_registered_model(self.name)
        except VersionNotFoundError:
            with _mlflow_errors(f"creating model {self.name!r}"):
                self.client.create_registered_model(
                    self.name, description="Cost-aware LightGBM LambdaRank ranker."
                )

    def _experiment_id(self) -> str:
        exp = self.client.get_experiment_by_name(self.settings.experiment)
        if exp is None:
            return self.client.create_experiment(
                self.settings.experiment, artifact_location=self.settings.artifact_root
            )
        if exp.lifecycle_stage == "deleted":
            self.client.restore_experiment(exp.experiment_id)
        return str(exp.experiment_id)
