"""Everything a serving process holds, built from settings, plus the background refresher.

`Runtime.build` opens the Feast store (registry cached with no TTL, refreshed by our thread
instead of inside a request; Redis with short socket timeouts), the model manager (first
load before traffic), the movie table, the fallback list and the provenance log, and says
what a refresh of each does; `serving.refresher` decides when (after movie-feature writes and
periodically). The model manager polls the registry on its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from core.resilience import CircuitBreaker
from ranking.transforms import FEATURE_SERVICE
from serving import metrics as M  # noqa: N812
from serving.alert_sink import AlertForwarder
from serving.cold_start import Inline, SelfDescriptionColdStart
from serving.cold_start_paths import cold_start_outcome
from serving.feast_store import fast_store
from serving.feature_log import FeatureLog
from serving.inline_description import InlineDescriber
from serving.models import ModelBundle, ModelManager
from serving.movie_table import MovieTable, TableReader, read_online
from serving.online_reader import OnlineLayout
from serving.provenance import ProvenanceLog
from serving.recommender import Outcome, fallback_list, rank, without
from serving.refresher import Refresher
from serving.routing import Router
from serving.settings import ServingSettings
from serving.user_features import USER_SERVICE, UserFeatureClient

log = logging.getLogger(__name__)

FALLBACK_FILE: Final = "serving/fallback.json"
"""Under the var dir: the last fallback list, so a restart without Redis or models still answers."""


def check_bundle(bundle: ModelBundle) -> None:
    """A new version must answer a trial request (empty features, its most active user) with finite scores."""
    user = 0
    if bundle.index.n_users:
        user = int(bundle.index.als.user_ids[0])
    outcome = rank(user, {}, bundle, MovieTable.empty(), None, time.time())
    if not outcome.movies:
        raise ValueError(f"v{bundle.version} produced no recommendations for a trial user")


@dataclass
class Runtime:
    """The serving process's components; the app reads them, background threads replace them whole."""

    settings: ServingSettings
    router: Router
    models: ModelManager
    users: UserFeatureClient | None
    provenance: ProvenanceLog
    store: Any = None
    table: MovieTable = field(default_factory=MovieTable.empty)
    fallback: list[str] = field(default_factory=list)
    feature_service: str = FEATURE_SERVICE
    table_error: str | None = None
    stream_now: float | None = None
    """Latest event time ingested (unix seconds), kept by the refresher under `clock: stream`."""
    feature_log: FeatureLog | None = None
    """Sampled rows the ranker scored (None: not logged)."""
    _refresher: Refresher = field(init=False)
    alerts: AlertForwarder = field(default_factory=AlertForwarder)
    cold: SelfDescriptionColdStart = field(default_factory=SelfDescriptionColdStart)  # serving.cold_start
    _bad_experiments_sha: str | None = None
    _reader: TableReader | None = None

    def __post_init__(self) -> None:
        self._refresher = Refresher(self)

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def build(cls, settings: ServingSettings) -> Runtime:
        """Open every dependency; a missing one degrades (logged) instead of stopping the start."""
        from ranking.registry import ModelRegistry
        from ranking.settings import RankSettings

        router = Router()
        try:
            router = Router.from_file(settings.experiments_file)
        except Exception as exc:  # no file: everyone gets the champion
            log.warning("experiments file %s not loaded (%s): serving the champion to everyone",
                        settings.experiments_file, exc)  # fmt: skip
        manager = ModelManager(
            lambda: ModelRegistry.open(RankSettings(var_dir=settings.var_dir)),
            check_bundle,
            settings.registry_poll_s,
            on_event=M.count_model_event,
        )
        store: Any = None
        users: UserFeatureClient | None = None
        try:
            store = fast_store(settings.var_dir, settings.redis_url, settings.feature_timeout_ms / 1000.0)
            users = UserFeatureClient.from_store(
                store,
                settings.redis_url,
                settings.feature_timeout_ms / 1000.0,
                CircuitBreaker(failures=5, reset_s=settings.breaker_cooldown_s, clock=time.monotonic),
            )
        except Exception as exc:
            log.error("feature store unavailable, answering fallback lists: %s", exc)
        rt = cls(settings, router, manager, users, ProvenanceLog.from_settings(settings), store)
        rt.feature_log = FeatureLog.from_settings(settings)
        if settings.metadata_url:
            rt.cold.inline = InlineDescriber(settings.metadata_url, settings.inline_timeout_ms / 1000.0)
        rt.pin_from_router()
        manager.refresh()
        rt.refresh_table()
        rt._refresher.read_clock()
        return rt

    def pin_from_router(self) -> None:
        """Load the versions the active experiment pins (`v<N>` arms) besides the aliases."""
        experiment = self.router.experiment
        pins = [int(a.model[1:]) for a in (experiment.arms if experiment else ()) if a.model.startswith("v")]
        self.models.pin(pins)

    # --- background -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the provenance drain, the feature log's writer, the model poller and the table refresher."""
        self.provenance.start()
        if self.feature_log is not None:
            self.feature_log.start()
        self.models.start()
        self._refresher.start()

    def refresh_registry(self) -> None:
        """Re-read the Feast registry and rebuild the user-feature layout from it; never raises."""
        if self.store is None:
            return
        try:
            self.store.refresh_registry()
            if self.users is not None:
                self.users.layout = OnlineLayout.for_service(self.store, USER_SERVICE)
        except Exception as exc:  # keep the layout we have
            log.warning("feast registry refresh failed: %s", exc)

    def watch_experiments(self) -> bool:
        """Reload the experiment file when its content changed (how every worker follows an edit); never raises."""
        path = self.settings.experiments_file
        try:
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return False
        if sha in (self.router.describe()["sha256"], self._bad_experiments_sha):
            return False
        try:
            summary = self.router.reload(path)
        except Exception as exc:  # an invalid edit: the running experiment keeps serving
            self._bad_experiments_sha = sha
            log.error("experiment file %s changed but is invalid, keeping the current one: %s", path, exc)
            return False
        self.pin_from_router()
        log.info("experiments reloaded from %s: %s", path, summary.to_dict())
        # Load what the new experiment pins now, not at the next registry poll (up to registry_poll_s
        # later): until then its arms are served by the champion. This runs in the refresher thread.
        self.models.refresh()
        return True

    def stop(self) -> None:
        """Stop background work and flush provenance and the feature log."""
        self._refresher.stop()
        self.models.stop()
        if self._reader is not None:
            self._reader.close()
        self.provenance.close(timeout_s=2.0)
        if self.feature_log is not None:
            self.feature_log.close(timeout_s=2.0)
        self.alerts.flush(2.0)

    def distinct_bundles(self) -> list[ModelBundle]:
        """Each loaded version once (one version can be loaded under several aliases)."""
        return list({b.version: b for b in self.models.loaded.values()}.values())

    def movie_ids(self) -> list[str]:
        """Every movie any loaded model can recommend."""
        ids: set[str] = set()
        for bundle in self.distinct_bundles():
            ids.update(str(m) for m in bundle.index.items)
        return sorted(ids)

    def table_reader(self) -> TableReader:
        """The movie-table reader process's handle (created on first use)."""
        if self._reader is None:
            self._reader = TableReader(
                self.settings.var_dir, self.settings.redis_url, self.settings.movie_min_refresh_s
            )
        return self._reader

    def prepare_table(self, table: MovieTable) -> None:
        """Build a new table's caches and every loaded model's view of it before it serves.

        Built lazily, the first request after each refresh paid for them on the event loop (tens of
        ms at 20,000 movies: a row map, lookups and gathers over the catalogue per model).
        """
        table.warm()
        for bundle in self.distinct_bundles():
            bundle.vocab_table(table)

    def refresh_table(self, background: bool = False) -> bool:
        """Re-read the movie table from the online store and recompute the fallback list; never raises.

        `background`: read in the refresher process (while serving); else in this process (before traffic).
        """
        ids = self.movie_ids()
        if self.store is not None and ids:
            try:
                if background:
                    table = self.table_reader().read(ids, self.table.generation + 1)
                else:
                    table = read_online(self.store, self.settings.redis_url, ids, self.table.generation + 1)
                self.prepare_table(table)
                self.table, self.table_error = table, None
            except Exception as exc:  # Redis down: keep the last table
                self.table_error = f"{type(exc).__name__}: {exc}"
                log.warning("movie table refresh failed, keeping the last one: %s", exc)
        self._refresh_fallback()
        self.cold.schedule(self.table, self.models, self.router, self.settings.var_dir)
        return self.table_error is None

    def _refresh_fallback(self) -> None:
        path = self.settings.var_dir / FALLBACK_FILE
        champion = self.models.loaded.get("champion") or next(iter(self.models.loaded.values()), None)
        if champion is not None:
            popular = [str(m) for m in champion.index.items[champion.index.popular(100)]]
            self.fallback = fallback_list(popular, self.table)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                # Per-process name: every worker refreshes on its own schedule and a shared name raced
                # (one worker's rename took the file from under the other's).
                tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
                tmp.write_text(json.dumps({"movies": self.fallback, "written_at": time.time()}))
                tmp.replace(path)
            except OSError as exc:
                log.warning("could not persist the fallback list: %s", exc)
        elif not self.fallback and path.is_file():
            try:
                self.fallback = [str(m) for m in json.loads(path.read_text())["movies"]]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("stored fallback list unreadable: %s", exc)

    # --- request helpers ------------------------------------------------------------------

    def now(self) -> float:
        """The as-of time of time features: the stream clock under `clock: stream` (once known), else the wall clock."""
        if self.settings.clock == "stream" and self.stream_now is not None:
            return self.stream_now
        return time.time()

    def fallback_outcome(self, user_id: int, bundle: ModelBundle | None, reason: str) -> Outcome:
        """The fallback list minus what the index knows the user watched."""
        seen: set[str] = set()
        if bundle is not None:
            seen = {str(m) for m in bundle.index.items[bundle.index.watched(user_id)]}
        return Outcome(without(self.fallback, seen), "fallback", reason=reason)

    def cold_start(
        self, user_id: int, policy: str, user: dict[str, Any] | None, inline: Inline | None = None
    ) -> Outcome:
        """Users without history: `popular` (cost-aware popular list) or `self_description` (serving.cold_start)."""
        return cold_start_outcome(self.cold, self.fallback, policy, user, inline)

    def list_cost(self, movies: list[str]) -> float:
        """Summed licence cost of an answered list; an unknown cost counts as the table's `unknown_cost` (counted)."""
        cost_of = self.table.cost_of
        unknown = sum(1 for m in movies if m not in cost_of)
        if unknown:
            M.UNKNOWN_COST.inc(unknown)
        return float(sum(cost_of.get(m, 0.0) for m in movies) + unknown * self.table.unknown_cost)

    def warm_up_users(self) -> Iterable[int]:
        """A few users to run through the path before traffic (known ones exercise the model)."""
        bundle = self.models.loaded.get("champion")
        known = [int(u) for u in bundle.index.als.user_ids[:3]] if bundle is not None else []
        return [*known, 0, 10**12]

    # --- admin and operations -------------------------------------------------------------

    def readiness(self) -> dict[str, Any]:
        """Ready when at least one model and a non-empty movie table are loaded, and the cold-start policy is
        built if an arm uses it."""
        models = self.models.available()
        checks = {
            "models": bool(models),
            "movie_table": len(self.table) > 0,
            "feature_store": self.users is not None,
            "cold_start_policy": not self.cold.building(self.router),
        }
        return {"ready": all(checks.values()), "checks": checks, "models": models,
                "movies": len(self.table), "table_error": self.table_error}  # fmt: skip

    def models_status(self) -> dict[str, Any]:
        """What the admin models route shows."""
        return {
            "loaded": {
                ref: {"version": b.version, "loaded_at": b.loaded_at, "path": str(b.path)}
                for ref, b in self.models.loaded.items()
            },
            "failed": {f"v{v}": why for v, why in self.models.failed.items()},
            "registry_ok": self.models.last_poll_ok,
            "last_error": self.models.last_error,
        }

    def export_gauges(self) -> None:
        """Refresh gauges read at scrape time."""
        for ref, bundle in self.models.loaded.items():
            M.MODEL_VERSION.labels(ref).set(bundle.version)
        M.MOVIE_TABLE_AGE.set(time.time() - self.table.loaded_at if len(self.table) else float("nan"))
        stats = self.provenance.stats()
        M.PROVENANCE_DROPPED.set(stats.overflow)
        M.PROVENANCE_SCANS.set(stats.scans)
        index = self.provenance.redis_index
        M.PROVENANCE_INDEX_DROPPED.set(index.stats().dropped if index is not None else 0)
        M.READY.set(1 if self.readiness()["ready"] else 0)

    def explain(self, request_id: str) -> dict[str, Any]:
        """Provenance of a past request with the registry's facts (blocking)."""
        return self.provenance.explain(request_id, self.models.registry())
