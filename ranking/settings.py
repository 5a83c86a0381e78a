"""Ranking knobs (env prefix `RECSYS_RANK_`): model registry location, model name, promotion thresholds."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from core.settings import PlatformSettings

SQLITE_PREFIX = "sqlite:///"
"""SQLAlchemy's SQLite URI prefix; a fourth slash makes the path absolute."""


class RankSettings(PlatformSettings):
    """Where models are registered and what a candidate must meet to become champion."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_RANK_")

    # --- model registry (MLflow) ------------------------------------------------------------
    mlflow_tracking_uri: str | None = Field(
        None,
        validation_alias="RECSYS_MLFLOW_TRACKING_URI",
        description="MLflow tracking and registry URI (unset: SQLite at <var>/mlflow/mlflow.db).",
    )
    mlflow_artifact_root: str | None = Field(
        None,
        description="Artifact root of a new experiment (unset: next to a SQLite DB, else the server's).",
    )
    experiment: str = Field("recsys-ranking", min_length=1, description="MLflow experiment of training runs.")
    model_name: str = Field(
        "recsys-ranker",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Registered model the ranker's versions and aliases belong to.",
    )

    # --- promotion gate -----------------------------------------------------------------------
    max_ndcg_regression: float = Field(
        0.02, ge=0, description="Promotion: largest absolute NDCG@20 drop allowed against the champion."
    )
    max_cost_increase: float = Field(
        0.10,
        ge=0,
        description="Promotion: largest relative rise of mean license cost of the top 20 against the champion.",
    )
    max_p99_ms: float = Field(
        50.0, gt=0, description="Promotion: ceiling on the candidate's p99 per-request scoring latency (ms)."
    )

    # --- tuning -------------------------------------------------------------------------------
    tune_seconds: float = Field(
        60.0,
        ge=0,
        description="Time box of the Optuna study of LightGBM's knobs on the validation cut-off (0: off).",
    )
    tune_trials: int = Field(20, ge=0, description="Most Optuna trials per training run (0: no tuning).")
    history_days: float | None = Field(
        None,
        gt=0,
        description="Train on the log's last N days only (unset: all of it); bounds retraining time as the log grows.",
    )

    @property
    def mlflow_dir(self) -> Path:
        """Absolute folder of the default registry: database, artifacts and the download cache."""
        return self.var_dir / "mlflow"

    @property
    def tracking_uri(self) -> str:
        """The MLflow URI in use: the configured one, else the SQLite file under the var dir."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"{SQLITE_PREFIX}{self.mlflow_dir / 'mlflow.db'}"

    @property
    def sqlite_path(self) -> Path | None:
        """The database file when the tracking URI is SQLite (its folder must exist before opening)."""
        uri = self.tracking_uri
        if not uri.startswith(SQLITE_PREFIX):
            return None
        path = uri[len(SQLITE_PREFIX) :].split("?", 1)[0]
        return Path(path) if path and path != ":memory:" else None

    @property
    def artifact_root(self) -> str | None:
        """Artifact location for a newly created experiment; None lets the tracking server choose."""
        if self.mlflow_artifact_root:
            return self.mlflow_artifact_root
        db = self.sqlite_path
        if db is not None:
            return (db.expanduser().resolve().parent / "artifacts").as_uri()
        if urlsplit(self.tracking_uri).scheme in ("http", "https", "databricks"):
            return None
        # Another database (postgresql://, mysql://...): MLflow's own default is ./mlruns under
        # whatever the cwd is, so keep artifacts in local state; shared set-ups set the knob.
        return (self.mlflow_dir / "artifacts").as_uri()

    @property
    def cache_dir(self) -> Path:
        """Where downloaded model versions are kept (versions are immutable, so one copy each)."""
        return self.mlflow_dir / "cache"


@lru_cache(maxsize=1)
def get_rank_settings() -> RankSettings:
    """The process-wide ranking settings, read from the environment once."""
    return RankSettings()
