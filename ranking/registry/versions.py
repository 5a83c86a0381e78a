"""What the registry hands back: a version as the platform sees it, promotion and rollback results, tag names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from ranking.registry.artifacts import KIND_RANKER
from ranking.registry.gates import GateCheck

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

CHAMPION: Final = "champion"
"""Alias of the version serving answers with."""
CHALLENGER: Final = "challenger"
"""Alias of the version an experiment routes a share of traffic to."""
MODEL_SHA256_TAG: Final = "model_sha256"
"""Version tag: SHA-256 of model.txt as registered (rankers only)."""
META_SHA256_TAG: Final = "meta_sha256"
"""Version tag: SHA-256 of meta.json as registered (a baseline's meta.json is its whole model)."""
CANDIDATES_SHA256_TAG: Final = "candidates_sha256"
"""Version tag: `folder_sha256` of candidates/ as registered."""
KIND_TAG: Final = "kind"
"""Version tag: `ranker` or `baseline`; versions registered before it existed are rankers."""
POLICY_TAG: Final = "policy"
"""Version tag: a baseline's policy name (absent on rankers)."""
PROMOTION_REASON_TAG: Final = "promotion_reason"
"""Version tag: why it was last made champion (the caller's reason, else the gates' verdict)."""
PROMOTION_GATES_TAG: Final = "promotion_gates"
"""Version tag: the smoke test's and gates' verdict at its last promotion, whatever reason was given."""
PROMOTION_REFUSED_TAG: Final = "promotion_refused"
"""Version tag: when and why its last promotion was refused (removed when it is promoted)."""
LINEAGE_TAG: Final = "champion_lineage"
"""Registered-model tag: JSON list of champion versions, oldest first; rollback pops it."""
LINEAGE_MAX: Final = 100
"""Entries kept: 100 short numbers stay far below the 5,000-character tag column."""
TAG_MAX: Final = 5000
"""Characters MLflow keeps in a tag value."""


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
    kind: str = KIND_RANKER
    """`ranker` or `baseline` (`artifacts.KINDS`)."""
    policy: str | None = None
    """A baseline's policy (`artifacts.BASELINE_POLICIES`); None for a ranker."""

    @property
    def promotion_reason(self) -> str | None:
        """Why this version was last made champion, when it ever was."""
        return self.tags.get(PROMOTION_REASON_TAG)


@dataclass(frozen=True)
class PromotionResult:
    """The answer to a promotion request; `accepted=False` leaves every alias where it was.

    `reason` is the caller's reason when one was given and the promotion went through,
    otherwise the registry's own verdict (smoke test and gates).
    """

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


def version_info(
    mv: ModelVersion,
    aliases: Mapping[str, int] | None,
    metrics: Mapping[str, float] | None = None,
    params: Mapping[str, str] | None = None,
) -> ModelVersionInfo:
    """Build the platform's view of an MLflow model version (search results come without aliases: pass them)."""
    if aliases is None:
        names = tuple(mv.aliases)
    else:
        names = tuple(a for a, n in aliases.items() if n == int(mv.version))
    tags = dict(mv.tags)
    return ModelVersionInfo(
        name=mv.name,
        version=int(mv.version),
        aliases=names,
        run_id=mv.run_id or "",
        source=mv.source or "",
        created_at=datetime.fromtimestamp((mv.creation_timestamp or 0) / 1000, UTC),
        tags=tags,
        metrics=dict(metrics or {}),
        params=dict(params or {}),
        kind=tags.get(KIND_TAG) or KIND_RANKER,
        policy=tags.get(POLICY_TAG) or None,
    )
