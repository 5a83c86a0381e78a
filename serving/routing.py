"""The A/B router: the active experiment behind one atomic reference, hot reload, admin view, model fallback.

Readers never lock: `Router.assign` reads `self._state` once (a single attribute read is atomic
in CPython) and works on that immutable snapshot, so a reload in another thread can never show
a request half an old experiment and half a new one. `reload` parses and validates the whole
file first and swaps the reference only when everything is valid; a bad file raises
`ExperimentFileError` and the old experiment keeps serving. Reloads are serialised by a lock
that only writers take.

Lifecycle: an enabled experiment with `stopped_at` set stays the active one (its name stays on
every answer) but sends every user to its control arm, so stopping is a file edit plus a reload,
no restart. An `interleave` experiment that runs gives every user its first arm (control, team A)
with the second as `partner`: serving ranks with both and merges them (`serving.interleave_path`);
stopped, it serves the control arm alone.

Model fallback contract (`resolve_model`): an arm names a registry alias (`champion`,
`challenger`) or a pinned version (`v7`). When what it names is not available (alias unset,
version not loaded), the arm is served by the champion and the answer's provenance record
carries the reason in `fallback`; the arm's λ, cost budget and cold-start policy still apply. With no
champion either, there is no model: serving answers from its non-model fallback list.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from ranking.registry import CHAMPION
from serving.experiments import Arm, Experiment, ExperimentFile, assign, load_experiments

NO_EXPERIMENT_ARM: Final = Arm(name="default", weight=1.0, model=CHAMPION)
"""What every user gets when no experiment is enabled: the champion, its default λ, no budget, popular cold start."""

LIFECYCLE_FIELDS: Final = frozenset(
    {
        "primary_metric",
        "guardrails",
        "planned_users",
        "planned_days",
        "started_at",
        "stopped_at",
        "stop_reason",
    }
)
"""Experiment fields the admin view shows under `lifecycle` (the plan and its state, not the routing)."""


@dataclass(frozen=True)
class Assignment:
    """The answer to "which arm serves this user": the experiment (None when none is active) and the arm."""

    experiment: str | None
    arm: Arm
    """The arm that answers; in an interleaving, team A's (control), which also answers users it cannot merge for."""
    partner: Arm | None = None
    """Team B's arm when the answer is to be interleaved (a running `interleave` experiment), else None."""


@dataclass(frozen=True)
class ModelChoice:
    """Which model serves an arm: what the arm asked for, what serves it, and why they differ."""

    requested: str
    ref: str | None
    """The alias or `v<N>` that serves; None when no model is available at all."""
    version: int | None
    fallback: str | None = None
    """Why the requested model is not the one serving (None: it is)."""


@dataclass(frozen=True)
class _State:
    """One immutable snapshot of the router; replaced whole on reload."""

    file: ExperimentFile
    source: str | None
    sha256: str | None
    loaded_at: str


@dataclass(frozen=True)
class ReloadSummary:
    """What a reload changed, for the admin route's answer and the log."""

    source: str
    sha256: str
    changed: bool
    previous: str | None
    current: str | None
    salt_changed: bool
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    modified: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    """Arm name -> field -> [old, new], for arms present before and after."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def resolve_model(arm: Arm, available: Mapping[str, int]) -> ModelChoice:
    """The model that serves an arm, given the refs serving has loaded (alias or `v<N>` -> version).

    Pass the registry's aliases (`ModelRegistry.aliases()`) plus `v<N>` for every pinned version
    loaded. A pinned `v<N>` is also available when an alias points at version N. Anything else
    falls back to the champion; without a champion, to no model (`ref` None).
    """
    version = available.get(arm.model)
    if version is None and arm.model.startswith("v"):
        pinned = int(arm.model[1:])
        version = pinned if pinned in available.values() else None
    if version is not None:
        return ModelChoice(arm.model, arm.model, version)
    champion = available.get(CHAMPION)
    if champion is not None:
        return ModelChoice(arm.model, CHAMPION, champion, f"{arm.model} not available: served by {CHAMPION}")
    return ModelChoice(arm.model, None, None, f"{arm.model} and {CHAMPION} not available: no model")


class _Versioned(Protocol):
    @property
    def version(self) -> int: ...


B = TypeVar("B", bound=_Versioned)


def loaded_bundle(loaded: Mapping[str, B], choice: ModelChoice) -> B | None:
    """The loaded model serving `choice`: under its ref, else under any ref with its version.

    A pinned `v<N>` that an alias already loaded is available (`resolve_model`) before the
    poller files it under `v<N>` too (its next poll, up to `registry_poll_s` later); looking it up
    by version serves it at once instead of the champion.
    """
    if choice.ref is None:
        return None
    bundle = loaded.get(choice.ref)
    if bundle is None and choice.version is not None:
        bundle = next((b for b in loaded.values() if b.version == choice.version), None)
    return bundle


def _arm_diff(old: Experiment | None, new: Experiment | None) -> dict[str, Any]:
    before = {a.name: a for a in old.arms} if old else {}
    after = {a.name: a for a in new.arms} if new else {}
    modified: dict[str, dict[str, list[Any]]] = {}
    for name in before.keys() & after.keys():
        a, b = before[name].model_dump(), after[name].model_dump()
        changes = {k: [a[k], b[k]] for k in a if a[k] != b[k]}
        if changes:
            modified[name] = changes
    return {
        "added": tuple(n for n in after if n not in before),
        "removed": tuple(n for n in before if n not in after),
        "modified": modified,
    }


class Router:
    """Assigns users to arms of the active experiment; reloadable while requests are being served."""

    resolve_model = staticmethod(resolve_model)

    def __init__(self, experiments: ExperimentFile | None = None, source: str | None = None) -> None:
        self._state = _State(experiments or ExperimentFile(), source, None, _now())
        self._reload_lock = threading.Lock()
        self.reloads = 0
        """Successful reloads since start."""

    @classmethod
    def from_file(cls, path: Path) -> Router:
        """A router on a validated experiment file; ExperimentFileError when it is missing or invalid."""
        router = cls()
        router.reload(path)
        router.reloads = 0  # the first load is not a reload
        return router

    @property
    def experiment(self) -> Experiment | None:
        """The active experiment (None: everyone gets `NO_EXPERIMENT_ARM`)."""
        return self._state.file.active

    def assign(self, user_id: int) -> Assignment:
        """The user's experiment and arm, from one consistent snapshot; lock-free."""
        experiment = self._state.file.active  # one read of the reference: a reload cannot tear this
        if experiment is None:
            return Assignment(None, NO_EXPERIMENT_ARM)
        if experiment.stopped_at is not None:  # stopped: everyone back to control, no hash needed
            return Assignment(experiment.name, experiment.control_arm)
        if experiment.kind == "interleave":  # no split: everyone sees both arms (the validator made it two)
            return Assignment(experiment.name, experiment.arms[0], experiment.arms[1])
        return Assignment(experiment.name, assign(user_id, experiment))

    def reload(self, path: Path | None = None) -> ReloadSummary:
        """Validate the file (default: the one loaded last) and swap it in; on any error keep the old one and raise."""
        with self._reload_lock:
            old = self._state
            target = path if path is not None else (Path(old.source) if old.source else None)
            if target is None:
                raise ValueError("no experiment file to reload: pass a path")
            parsed, data = load_experiments(target)  # raises before anything is swapped
            sha = hashlib.sha256(data).hexdigest()
            self._state = _State(parsed, str(target), sha, _now())  # the one atomic swap
            self.reloads += 1
        before, after = old.file.active, parsed.active
        return ReloadSummary(
            source=str(target),
            sha256=sha,
            changed=old.file != parsed,
            previous=before.name if before else None,
            current=after.name if after else None,
            salt_changed=(before.salt if before else None) != (after.salt if after else None),
            **_arm_diff(before, after),
        )

    def describe(self) -> dict[str, Any]:
        """The admin view: active experiment, its arms with their shares, the file and when it was loaded."""
        state = self._state
        active = state.file.active
        arms = active.arms if active else (NO_EXPERIMENT_ARM,)
        shares = active.shares() if active else {NO_EXPERIMENT_ARM.name: 1.0}
        return {
            "experiment": active.name if active else None,
            "description": active.description
            if active
            else "no experiment enabled: everyone gets the champion",
            "salt": active.salt if active else None,
            "kind": active.kind if active else "ab",
            "control": active.control_arm.name if active else NO_EXPERIMENT_ARM.name,
            "stopped": active.is_stopped if active else False,
            "lifecycle": active.model_dump(mode="json", include=set(LIFECYCLE_FIELDS)) if active else None,
            "arms": [{**a.model_dump(), "share": round(shares[a.name], 6)} for a in arms],
            "inactive": [e.name for e in state.file.experiments if e is not active],
            "source": state.source,
            "sha256": state.sha256,
            "loaded_at": state.loaded_at,
            "reloads": self.reloads,
        }
