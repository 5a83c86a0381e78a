"""Moving `champion`: gated (or forced) promotion with a recorded reason, and rollback along the champion lineage.

The order of champions is kept in the registered model's `champion_lineage` tag so `rollback`
can walk it back. `ModelRegistry.promote` and `ModelRegistry.rollback` call these.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ranking.registry.backend import mlflow_errors, now
from ranking.registry.errors import (
    RegistryError,
    RegistryUnavailableError,
    RollbackError,
    VersionNotFoundError,
)
from ranking.registry.gates import GateCheck, check_gates
from ranking.registry.versions import (
    CHALLENGER,
    CHAMPION,
    LINEAGE_MAX,
    LINEAGE_TAG,
    PROMOTION_GATES_TAG,
    PROMOTION_REASON_TAG,
    PROMOTION_REFUSED_TAG,
    TAG_MAX,
    PromotionResult,
    RollbackResult,
)

if TYPE_CHECKING:
    from ranking.registry.client import ModelRegistry


def promote(
    registry: ModelRegistry,
    ref: int | str,
    smoke_test: Callable[[Path], None] | None,
    force: bool,
    reason: str | None,
) -> PromotionResult:
    """Make a version champion if its files pass `smoke_test` and, unless `force`, its metrics pass the gates."""
    candidate = registry.show(ref)
    v, name, client = candidate.version, registry.name, registry.client
    current = registry.aliases().get(CHAMPION)
    if current == v:
        return PromotionResult(True, v, f"v{v} is already {CHAMPION}; nothing changed", previous=v)
    if smoke_test is not None:
        try:
            smoke_test(registry.download(v))
        except RegistryUnavailableError:
            raise  # the backend's trouble, not the candidate's
        except Exception as exc:  # any failure of the candidate's files refuses; force does not help
            return _refuse(registry, v, current, f"smoke test failed: {exc}", force)
    champion = registry.show(current).metrics if current is not None else None
    checks = tuple(check_gates(candidate.metrics, champion, registry.settings))
    failed = [c.detail for c in checks if not c.passed]
    if failed and not force:
        against = f" against {CHAMPION} v{current}" if current is not None else ""
        return _refuse(
            registry, v, current, f"regresses beyond thresholds{against}: {'; '.join(failed)}", force, checks
        )
    verdict = f"forced past failed gates: {'; '.join(failed)}" if failed else "passed smoke test and gates"
    # The caller's own evidence (training's bootstrap verdict, an operator's note) says why; the
    # gates' verdict is kept beside it, so a forced promotion still shows what it was forced past.
    why = (reason or "").strip()[:TAG_MAX] or verdict
    with mlflow_errors(f"promoting v{v}"):
        # Alias first: if we die before the lineage is written, rollback still finds the old champion on top.
        client.set_registered_model_alias(name, CHAMPION, str(v))
        lineage = _lineage(registry)
        if current is not None and (not lineage or lineage[-1] != current):
            lineage.append(current)  # a champion set outside this tool
        _set_lineage(registry, [*lineage, v])
        for key, value in {
            "promoted_at": now(),
            "previous_champion": "" if current is None else str(current),
            "promotion_forced": str(force and bool(failed)).lower(),
            PROMOTION_REASON_TAG: why,
            PROMOTION_GATES_TAG: verdict[:TAG_MAX],
        }.items():
            client.set_model_version_tag(name, str(v), key, value)
        if PROMOTION_REFUSED_TAG in candidate.tags:  # an old refusal no longer describes it
            client.delete_model_version_tag(name, str(v), PROMOTION_REFUSED_TAG)
        if registry.aliases().get(CHALLENGER) == v:  # the challenger won: it no longer challenges itself
            client.delete_registered_model_alias(name, CHALLENGER)
    return PromotionResult(True, v, why, previous=current, forced=force and bool(failed), checks=checks)


def rollback(registry: ModelRegistry) -> RollbackResult:
    """Point `champion` back at the champion before the current one (skipping deleted versions)."""
    current = registry.aliases().get(CHAMPION)
    if current is None:
        raise RollbackError(f"model {registry.name!r} has no {CHAMPION} to roll back")
    lineage = _lineage(registry)
    if lineage and lineage[-1] == current:
        lineage.pop()
    while lineage and (lineage[-1] == current or not _exists(registry, lineage[-1])):
        lineage.pop()
    if not lineage:
        raise RollbackError(f"{CHAMPION} v{current} has no earlier champion to roll back to")
    target = lineage[-1]
    name, client = registry.name, registry.client
    with mlflow_errors(f"rolling back to v{target}"):
        client.set_registered_model_alias(name, CHAMPION, str(target))
        _set_lineage(registry, lineage)
        client.set_model_version_tag(name, str(current), "rolled_back_at", now())
        client.set_model_version_tag(name, str(target), "restored_at", now())
    return RollbackResult(from_version=current, to_version=target)


def _refuse(
    registry: ModelRegistry,
    v: int,
    current: int | None,
    reason: str,
    force: bool,
    checks: tuple[GateCheck, ...] = (),
) -> PromotionResult:
    # Remembered on the version so `show` explains why it is not champion; no alias moves.
    with mlflow_errors(f"recording the refusal of v{v}"):
        registry.client.set_model_version_tag(
            registry.name, str(v), PROMOTION_REFUSED_TAG, f"{now()} {reason}"[:TAG_MAX]
        )
    return PromotionResult(False, v, reason, previous=current, forced=force, checks=checks)


def _exists(registry: ModelRegistry, version: int) -> bool:
    try:
        with mlflow_errors(f"reading {registry.name!r} v{version}"):
            registry.client.get_model_version(registry.name, str(version))
    except VersionNotFoundError:
        return False
    return True


def lineage(registry: ModelRegistry) -> list[int]:
    """Versions that were champion, oldest first, as promotions and rollbacks recorded them."""
    return _lineage(registry)


def _lineage(registry: ModelRegistry) -> list[int]:
    with mlflow_errors(f"reading {LINEAGE_TAG}"):
        raw = registry.client.get_registered_model(registry.name).tags.get(LINEAGE_TAG, "[]")
    try:
        return [int(v) for v in json.loads(raw)]
    except (ValueError, TypeError) as exc:
        raise RegistryError(
            f"tag {LINEAGE_TAG} of {registry.name!r} is not a JSON list of versions: {raw!r}"
        ) from exc


def _set_lineage(registry: ModelRegistry, lineage: list[int]) -> None:
    registry.client.set_registered_model_tag(registry.name, LINEAGE_TAG, json.dumps(lineage[-LINEAGE_MAX:]))
