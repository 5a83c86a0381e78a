"""`ModelRegistry`: the platform's registered model on one MLflow backend (read, register, download, aliases).

A version is an MLflow run (params, metrics, provenance tags, artifacts `model/` with the model's
files, `provenance.json`, `evaluation/<report>`) plus a registered model version tagged with the
provenance summary, its kind (`ranker` or `baseline`) and, for a baseline, its policy. Nothing
here pickles or unpickles: models go in and out as text and plain array files. Downloads are
checked against the hashes recorded at registration before anyone loads them.
"""

from __future__ import annotations

import hashlib
import numbers
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ranking.provenance import Provenance, file_sha256
from ranking.registry import promotion
from ranking.registry.artifacts import (
    CANDIDATES_DIR,
    KIND_BASELINE,
    META_FILE,
    MODEL_ARTIFACT,
    MODEL_FILE,
    PROVENANCE_FILE,
    folder_sha256,
    read_features,
    read_kind,
    smoke_test,
)
from ranking.registry.backend import experiment_id, log_run, mlflow_errors, open_client
from ranking.registry.errors import (
    AliasConflictError,
    ModelArtifactError,
    RegistryUnavailableError,
    SmokeTestError,
    VersionNotFoundError,
)
from ranking.registry.versions import (
    CANDIDATES_SHA256_TAG,
    CHALLENGER,
    CHAMPION,
    KIND_TAG,
    META_SHA256_TAG,
    MODEL_SHA256_TAG,
    POLICY_TAG,
    ModelVersionInfo,
    PromotionResult,
    RollbackResult,
    version_info,
)
from ranking.settings import RankSettings, get_rank_settings

if TYPE_CHECKING:
    from mlflow import MlflowClient


class ModelRegistry:
    """The platform's registered model on one MLflow backend; every method is a few small backend calls."""

    def __init__(self, client: MlflowClient, settings: RankSettings) -> None:
        self.client = client
        self.settings = settings
        self.name = settings.model_name

    @classmethod
    def open(cls, settings: RankSettings | None = None) -> ModelRegistry:
        """A registry on the configured tracking URI; creates the SQLite folder (the database MLflow does)."""
        settings = settings or get_rank_settings()
        return cls(open_client(settings), settings)

    # --- reading --------------------------------------------------------------------------

    def aliases(self) -> dict[str, int]:
        """Alias -> version, in one call: what serving polls to notice a promotion or rollback."""
        try:
            with mlflow_errors(f"reading model {self.name!r}"):
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

    def champion_lineage(self) -> list[int]:
        """Versions that were champion, oldest first (the current one last): where a rollback goes."""
        return promotion.lineage(self)

    def list_versions(self) -> list[ModelVersionInfo]:
        """Every version, newest first, with metrics and params."""
        aliases = self.aliases()
        with mlflow_errors(f"listing versions of {self.name!r}"):
            found = self.client.search_model_versions(f"name = '{self.name}'")
            infos = [self._with_run(version_info(mv, aliases)) for mv in found]
        return sorted(infos, key=lambda i: -i.version)

    def load_provenance(self, ref: int | str) -> Provenance:
        """The full provenance record stored with a version (`provenance.json`)."""
        import mlflow.artifacts

        info = self.show(ref)
        with tempfile.TemporaryDirectory() as tmp, mlflow_errors(f"reading provenance of v{info.version}"):
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
            with mlflow_errors(f"downloading v{info.version} from {info.source}"):
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
        kind, policy = read_kind(folder)
        # A relabelled folder must not be served as the other kind.
        if (kind, policy) != (info.kind, info.policy):
            raise ModelArtifactError(
                f"v{info.version}: files are a {kind} {policy or ''}, registered as a {info.kind} {info.policy or ''}"
            )
        for tag, path in ((MODEL_SHA256_TAG, folder / MODEL_FILE), (META_SHA256_TAG, folder / META_FILE)):
            expected = info.tags.get(tag)
            if expected and file_sha256(path) != expected:
                raise ModelArtifactError(
                    f"v{info.version}: {path.name} does not match its registered SHA-256"
                )
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
        """Log a model directory (a ranker's or a baseline's), its params, metrics, provenance and report as a new version."""
        read_features(model_dir)
        kind, policy = read_kind(model_dir)
        # NaN is allowed (a figure not measured); the gates treat it as missing.
        bad = sorted(k for k, v in metrics.items() if isinstance(v, bool) or not isinstance(v, numbers.Real))
        if bad:
            raise TypeError(f"metrics must be numbers: {', '.join(bad)}")
        # The files' own hashes: download() checks them, so a damaged artifact store never reaches serving.
        tags = {**provenance.tags(), KIND_TAG: kind, META_SHA256_TAG: file_sha256(model_dir / META_FILE)}
        if kind == KIND_BASELINE:
            tags[POLICY_TAG] = str(policy)
        else:
            tags[MODEL_SHA256_TAG] = file_sha256(model_dir / MODEL_FILE)
        if (model_dir / CANDIDATES_DIR).is_dir():
            tags[CANDIDATES_SHA256_TAG] = folder_sha256(model_dir / CANDIDATES_DIR)
        with mlflow_errors(f"registering {model_dir} as {self.name!r}"):
            run = self.client.create_run(
                experiment_id(self.client, self.settings),
                run_name=f"{self.name}-{provenance.created_at}",
                tags={**tags, "mlflow.source.git.commit": provenance.git_commit},
            )
            log_run(self.client, run.info.run_id, model_dir, provenance, metrics, report_path)
            self._ensure_model()
            mv = self.client.create_model_version(
                self.name,
                f"{run.info.artifact_uri}/{MODEL_ARTIFACT}",
                run.info.run_id,
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
        with mlflow_errors(f"setting {CHALLENGER} to v{info.version}"):
            self.client.set_registered_model_alias(self.name, CHALLENGER, str(info.version))
        return info

    def clear_challenger(self) -> int | None:
        """Remove the `challenger` alias; returns the version it pointed at."""
        version = self.aliases().get(CHALLENGER)
        if version is not None:
            with mlflow_errors(f"removing {CHALLENGER}"):
                self.client.delete_registered_model_alias(self.name, CHALLENGER)
        return version

    def promote(
        self,
        ref: int | str,
        smoke_test: Callable[[Path], None] | None = smoke_test,
        force: bool = False,
        reason: str | None = None,
    ) -> PromotionResult:
        """Make a version champion if it passes `smoke_test` and, unless `force`, the gates; `reason` is recorded.

        `reason` (the caller's evidence, such as training's bootstrap verdict) becomes the
        version's `promotion_reason` tag; without one the tag holds the gates' verdict. A failed
        smoke test refuses whatever the reason and `force`.
        """
        return promotion.promote(self, ref, smoke_test, force, reason)

    def rollback(self) -> RollbackResult:
        """Point `champion` back at the champion before the current one (skipping deleted versions)."""
        return promotion.rollback(self)

    # --- helpers ---------------------------------------------------------------------------

    def _version(self, version: int, read_run: bool) -> ModelVersionInfo:
        with mlflow_errors(f"reading {self.name!r} v{version}"):
            mv = self.client.get_model_version(self.name, str(version))
        info = version_info(mv, None)
        return self._with_run(info) if read_run else info

    def _with_run(self, info: ModelVersionInfo) -> ModelVersionInfo:
        if not info.run_id:
            return info
        with mlflow_errors(f"reading run {info.run_id}"):
            data = self.client.get_run(info.run_id).data
        return replace(info, metrics=dict(data.metrics), params=dict(data.params))

    def _ensure_model(self) -> None:
        try:
            with mlflow_errors(f"reading model {self.name!r}"):
                self.client.get_registered_model(self.name)
        except VersionNotFoundError:
            with mlflow_errors(f"creating model {self.name!r}"):
                self.client.create_registered_model(
                    self.name, description="Cost-aware LightGBM LambdaRank rankers and baseline policies."
                )
