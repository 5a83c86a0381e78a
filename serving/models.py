"""Models in memory and their zero-downtime swap: poll the registry, load in the background, check, swap.

`ModelManager.loaded` is one immutable mapping (ref -> `ModelBundle`) replaced whole: a request
reads it once and keeps the bundles it got even if a swap happens meanwhile, so no request ever
sees half a model. A new version is downloaded (hash-verified), smoke-tested, loaded with its
candidate index and made to score a trial request before it replaces the old one; any failure
keeps the old bundle serving and counts a failed load (an alert metric). A process that starts
while the champion's files are broken serves the newest earlier champion of the registry's
lineage that loads (what a rollback would restore) rather than fallback lists until someone acts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ranking.candidate_index import INDEX_DIR, POLICIES, CandidateIndex
from ranking.ranker import Ranker
from ranking.registry import (
    CHALLENGER,
    CHAMPION,
    KIND_BASELINE,
    RegistryUnavailableError,
    read_kind,
    smoke_test,
)
from serving.movie_table import MovieTable

log = logging.getLogger(__name__)


@dataclass
class ModelBundle:
    """One registered version ready to serve: ranker, its candidate index, and per-table row maps."""

    name: str
    version: int
    ranker: Ranker | None
    """The trees; None for a baseline policy version."""
    index: CandidateIndex
    path: Path
    loaded_at: float = field(default_factory=time.time)
    policy: str | None = None
    """A baseline version's policy (`candidate_index.POLICIES`): its generator's own list is served."""
    _aligned: tuple[tuple[MovieTable, MovieTable], ...] = ()

    def vocab_table(self, table: MovieTable) -> MovieTable:
        """The movie table reindexed to the candidate index's vocabulary (row i = `index.items[i]`).

        Built once per table object (a refresh replaces the table whole), so a request takes its
        candidates' rows by position. The last two tables are kept: the refresher builds the new
        table's before it swaps it in (`Runtime.prepare_table`), while requests still use the old one.
        """
        for held, aligned in self._aligned:
            if held is table:
                return aligned
        aligned = table.reindex(self.index.items)
        aligned.warm()
        self._aligned = ((table, aligned), *self._aligned[:1])
        return aligned

    @property
    def default_lambda(self) -> float:
        """λ the model was trained to use."""
        return float(self.ranker.meta.default_lambda or 0.0) if self.ranker is not None else 0.0


def load_bundle(name: str, version: int, path: Path) -> ModelBundle:
    """Smoke-test and load a downloaded version (a ranker or a baseline policy); raises when anything is wrong."""
    smoke_test(path)
    if not (path / INDEX_DIR).is_dir():
        raise FileNotFoundError(f"v{version} has no {INDEX_DIR}/ (trained before candidate indexes shipped)")
    kind, policy = read_kind(path)
    index = CandidateIndex.load(path / INDEX_DIR)
    if kind == KIND_BASELINE:
        if policy not in POLICIES:
            raise ValueError(f"v{version} names an unknown baseline policy {policy!r}")
        return ModelBundle(name, version, None, index, path, policy=policy)
    return ModelBundle(name, version, Ranker.load(path), index, path)


class ModelManager:
    """Keeps the versions the registry's aliases (and pinned arms) name loaded; see the module doc."""

    def __init__(
        self,
        registry_factory: Callable[[], Any],
        check: Callable[[ModelBundle], None],
        poll_s: float,
        on_event: Callable[[str, str], None] | None = None,
    ) -> None:
        self._registry_factory = registry_factory
        self._registry: Any = None
        self._check = check
        self.poll_s = poll_s
        self._pinned: tuple[int, ...] = ()
        self._on_event = on_event or (lambda _event, _ref: None)
        self.loaded: Mapping[str, ModelBundle] = {}
        """ref (`champion`, `challenger`, `v<N>`) -> bundle; replaced whole on each change."""
        self.failed: dict[int, str] = {}
        """Version -> why it failed to load (not retried until the registry points elsewhere)."""
        self.last_poll_ok: bool = False
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def available(self) -> dict[str, int]:
        """ref -> version of what is loaded (what `routing.resolve_model` takes)."""
        return {ref: b.version for ref, b in self.loaded.items()}

    def pin(self, versions: Iterable[int]) -> None:
        """Also keep these versions loaded (experiment arms that pin `v<N>`), from the next refresh on."""
        self._pinned = tuple(sorted({int(v) for v in versions}))

    def registry(self) -> Any:
        """The model registry client (opened on first use: importing MLflow takes seconds)."""
        if self._registry is None:
            self._registry = self._registry_factory()
        return self._registry

    def refresh(self) -> bool:
        """One poll: load what changed, swap; True when the mapping changed. Never raises."""
        with self._lock:  # one refresh at a time (poller and admin route)
            try:
                registry = self.registry()
                wanted: dict[str, int] = {
                    a: v for a, v in registry.aliases().items() if a in (CHAMPION, CHALLENGER)
                }
                for version in self._pinned:
                    wanted[f"v{version}"] = int(version)
                self.last_poll_ok, self.last_error = True, None
            except Exception as exc:  # registry down: keep serving what is loaded
                self.last_poll_ok, self.last_error = False, f"registry: {exc}"
                log.warning("registry poll failed: %s", exc)
                return False
            current = self.loaded
            by_version = {b.version: b for b in current.values()}
            new: dict[str, ModelBundle] = {}
            for ref, version in wanted.items():
                bundle = by_version.get(version)
                if bundle is None and version not in self.failed:
                    bundle = self._load(registry, version, ref)
                    if bundle is not None:
                        by_version[version] = bundle
                if bundle is None and ref in current:
                    bundle = current[ref]  # a failed load keeps the old version serving under its ref
                if bundle is None and ref == CHAMPION:
                    # Nothing serves as champion yet (a process started while the champion's files are
                    # broken): serve the champion before it, as a rollback would, not fallback lists.
                    bundle = self._earlier_champion(registry, version, by_version)
                if bundle is not None:
                    new[ref] = bundle
            if {r: b.version for r, b in new.items()} == {r: b.version for r, b in current.items()}:
                return False
            self.loaded = new  # the atomic swap: one reference assignment
            for ref, bundle in new.items():
                if ref not in current or current[ref].version != bundle.version:
                    self._on_event("swapped", ref)
                    log.info("serving v%s as %s", bundle.version, ref)
            return True

    def _earlier_champion(
        self, registry: Any, broken: int, by_version: dict[int, ModelBundle]
    ) -> ModelBundle | None:
        """The newest earlier champion of the registry's lineage that loads (None when none does)."""
        try:
            lineage = [int(v) for v in registry.champion_lineage()]
        except Exception as exc:  # no lineage to read: nothing to fall back on
            log.warning("champion lineage unreadable: %s", exc)
            return None
        for version in reversed(lineage):
            if version == broken or version in self.failed:
                continue
            bundle = by_version.get(version) or self._load(registry, version, CHAMPION)
            if bundle is not None:
                by_version[version] = bundle
                log.error("champion v%s does not load: serving the earlier champion v%s", broken, version)
                return bundle
        return None

    def _load(self, registry: Any, version: int, ref: str) -> ModelBundle | None:
        try:
            path = registry.download(version)
            bundle = load_bundle(registry.name, version, path)
            self._check(bundle)
            return bundle
        except RegistryUnavailableError as exc:  # transient: try again at the next poll
            self.last_error = f"v{version}: {exc}"
            return None
        except Exception as exc:
            self.failed[version] = f"{type(exc).__name__}: {exc}"
            self.last_error = f"v{version}: {exc}"
            self._on_event("load_failed", ref)
            log.error("loading v%s for %s failed, keeping the current model: %s", version, ref, exc)
            return None

    def start(self) -> None:
        """Poll in a daemon thread every `poll_s` seconds."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="model-poller", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.refresh()

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
