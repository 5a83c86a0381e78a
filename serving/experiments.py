"""A/B experiment definitions (the YAML file's schema) and the stable assignment of users to arms.

A user's bucket is the first 8 bytes of BLAKE2b over `"<salt>:<user_id>"` read as a big-endian
integer and divided by 2**64: uniform in [0, 1), the same in every process, language and restart
(Python's `hash()` is salted per process and would reshuffle users at every restart). The arm is
the first whose cumulative normalised weight exceeds the bucket, in file order. So assignment
depends only on the salt, the arm order and the weights: renaming the experiment or changing an
arm's model, λ, cost budget or cold-start policy moves nobody; a new salt reshuffles everyone;
raising the weight of the *last* arm only moves users into it (ramp-ups keep their earlier
treatment users).

Lifecycle fields (`kind`, `control`, `primary_metric`, `guardrails`, `planned_*`, `started_at`,
`stopped_at`, `stop_reason`) are optional, so files written before them stay valid. A stopped
experiment (`stopped_at` set) stays active but routes every user to its control arm
(`serving.routing`); an `interleave` experiment has exactly two arms, the first being control
(team A), and merges both arms' lists for every user instead of splitting them.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cached_property
from itertools import accumulate
from pathlib import Path
from typing import Annotated, Final, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import RecsysError
from ranking.cost_policy import CostRule
from ranking.registry import CHALLENGER, CHAMPION

NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
"""Experiment and arm names: short, lower-case, safe as Prometheus label values and in log lines."""
MODEL_PATTERN: Final = rf"^({CHAMPION}|{CHALLENGER}|v[1-9][0-9]*)$"
"""An arm's model: a registry alias (`champion`, `challenger`) or a pinned version (`v7`)."""
_SCALE: Final = float(1 << 64)

ColdStart = Literal["popular", "self_description"]
"""How an arm answers a user without history: popular movies, or matches to the user's self-description."""


Kind = Literal["ab", "interleave"]
"""`ab`: users split over the arms by weight; `interleave`: every user gets a team-draft merge of two arms' lists."""
PrimaryMetric = Literal["hit_rate", "watch_minutes", "rating", "cost_per_watch"]
"""The metric an experiment is decided on (monitoring's per-user analysis computes it)."""


INTERLEAVE_ARM: Final = "interleave"
"""The arm name of a merged (interleaved) answer: `X-Arm`, the record's `arm` and the metrics' arm label."""


class ExperimentFileError(RecsysError, ValueError):
    """The experiment file is missing, not YAML, or does not validate; `http_status` for the admin route."""

    http_status = 422


class Arm(BaseModel):
    """One treatment: which model answers, with which λ and list-cost budget, and how new users are served."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=NAME_PATTERN, description="Arm name, logged with every answer.")]
    weight: Annotated[float, Field(gt=0, allow_inf_nan=False, description="Relative share of users.")]
    model: Annotated[
        str, Field(pattern=MODEL_PATTERN, description="`champion`, `challenger` or a pinned version `v<N>`.")
    ] = CHAMPION
    lam: Annotated[
        float | None,
        Field(ge=0, allow_inf_nan=False, description="Cost penalty λ; null: the model's trained default."),
    ] = None
    cost_budget: Annotated[
        float | None,
        Field(
            ge=0,
            allow_inf_nan=False,
            description="Max mean license cost of the served list (USD per play); null: no budget.",
        ),
    ] = None
    cold_start: ColdStart = "popular"

    def cost_rule(self, default_lam: float | None) -> CostRule:
        """The arm's rule for `cost_policy.rerank`: its λ (null: `default_lam`, the model's; None there: 0) and budget."""
        lam = default_lam if self.lam is None else self.lam
        return CostRule(lam=lam or 0.0, max_mean_cost=self.cost_budget)


class Guardrails(BaseModel):
    """Limits a running treatment must keep; breaking one stops the experiment (judged by monitoring per window)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    availability_min: Annotated[
        float,
        Field(
            ge=0, le=1, allow_inf_nan=False, description="Min share of requests answered 200 within 600 ms."
        ),
    ] = 0.99
    p99_ms_max: Annotated[
        float, Field(gt=0, allow_inf_nan=False, description="Max 99th-percentile response time, ms.")
    ] = 600.0
    fallback_ratio_max: Annotated[
        float,
        Field(ge=0, le=1, allow_inf_nan=False, description="Max share of answers from a fallback list."),
    ] = 0.05
    cost_per_1k_max: Annotated[
        float | None,
        Field(
            ge=0,
            allow_inf_nan=False,
            description="Max licence USD of plays per 1,000 answered requests; null: no limit.",
        ),
    ] = None
    min_requests: Annotated[
        int, Field(ge=1, description="A window with fewer requests than this is not judged.")
    ] = 200


class Experiment(BaseModel):
    """A named split of users over arms (or an interleaving of two); `salt` decides who lands where."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[
        str, Field(pattern=NAME_PATTERN, description="Experiment name, logged with every answer.")
    ]
    salt: Annotated[str, Field(min_length=1, description="Hash salt; a new salt reshuffles every user.")]
    arms: Annotated[tuple[Arm, ...], Field(min_length=1, description="Arms in assignment order.")]
    enabled: bool = True
    description: str = ""
    kind: Annotated[
        Kind,
        Field(description="`ab` splits users by weight; `interleave` merges two arms' lists for everyone."),
    ] = "ab"
    control: Annotated[str | None, Field(description="Name of the control arm; null: the first arm.")] = None
    primary_metric: Annotated[
        PrimaryMetric, Field(description="The metric the experiment is decided on.")
    ] = "hit_rate"
    guardrails: Annotated[
        Guardrails, Field(description="Limits that stop the experiment when a treatment breaks one.")
    ] = Guardrails()
    planned_users: Annotated[
        int | None, Field(ge=0, description="Planned sample size (users); null: not planned.")
    ] = None
    planned_days: Annotated[
        float | None,
        Field(ge=0, allow_inf_nan=False, description="Planned duration in days; null: not planned."),
    ] = None
    started_at: Annotated[
        datetime | None, Field(description="When the experiment started (naive times are read as UTC).")
    ] = None
    stopped_at: Annotated[
        datetime | None,
        Field(description="When it was stopped; set: every user goes to the control arm (naive: UTC)."),
    ] = None
    stop_reason: Annotated[str, Field(description="Why it was stopped (who or which guard rail).")] = ""

    @field_validator("started_at", "stopped_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # YAML gives naive datetimes for times without a zone; comparing naive with aware raises.
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    @model_validator(mode="after")
    def _lifecycle(self) -> Self:
        names = [a.name for a in self.arms]
        if self.control is not None and self.control not in names:
            raise ValueError(f"control {self.control!r} is not an arm; arms: {', '.join(names)}")
        if self.kind == "interleave":
            if len(self.arms) != 2:
                raise ValueError(f"an interleave experiment needs exactly 2 arms, got {len(self.arms)}")
            if self.control not in (None, names[0]):
                # Team A is the first arm; a control elsewhere would make "A" mean treatment.
                raise ValueError("an interleave experiment's control must be its first arm (team A)")
        if self.started_at and self.stopped_at and self.stopped_at < self.started_at:
            raise ValueError("stopped_at is before started_at")
        return self

    @field_validator("arms")
    @classmethod
    def _unique_arm_names(cls, arms: tuple[Arm, ...]) -> tuple[Arm, ...]:
        dupes = _duplicates(a.name for a in arms)
        if dupes:
            raise ValueError(f"arm names must be unique; repeated: {', '.join(dupes)}")
        return arms

    # A cached_property, not a PrivateAttr: pydantic serves private attributes through
    # __getattr__ (~4 µs a read here), a cached value is a plain instance-dict hit.
    @cached_property
    def bounds(self) -> tuple[float, ...]:
        """Cumulative normalised weights of the arms, in order; the last is exactly 1."""
        total = sum(a.weight for a in self.arms)
        bounds = [w / total for w in accumulate(a.weight for a in self.arms)]
        bounds[-1] = 1.0  # float sums may end at 0.9999999999999999: no bucket may fall past the last arm
        return tuple(bounds)

    @cached_property
    def control_arm(self) -> Arm:
        """The arm named by `control` (default: the first); where a stopped experiment sends everyone."""
        return next((a for a in self.arms if a.name == self.control), self.arms[0])

    @property
    def is_stopped(self) -> bool:
        """Whether the experiment was stopped (`stopped_at` set): all traffic goes to control."""
        return self.stopped_at is not None

    def shares(self) -> dict[str, float]:
        """Arm name -> share of users (weights normalised to sum to 1)."""
        total = sum(a.weight for a in self.arms)
        return {a.name: a.weight / total for a in self.arms}

    def arm_for_bucket(self, bucket: float) -> Arm:
        """The arm whose cumulative interval holds a bucket in [0, 1)."""
        return self.arms[bisect.bisect_right(self.bounds, bucket)]


class ExperimentFile(BaseModel):
    """The whole file: experiments by unique name; the first enabled one is active."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    experiments: tuple[Experiment, ...] = ()

    @field_validator("experiments")
    @classmethod
    def _unique_experiment_names(cls, experiments: tuple[Experiment, ...]) -> tuple[Experiment, ...]:
        dupes = _duplicates(e.name for e in experiments)
        if dupes:
            raise ValueError(f"experiment names must be unique; repeated: {', '.join(dupes)}")
        return experiments

    @property
    def active(self) -> Experiment | None:
        """The experiment traffic is split by: the first enabled one (None: everyone gets the champion)."""
        return next((e for e in self.experiments if e.enabled), None)


def _duplicates(names: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    repeated: set[str] = set()
    for name in names:
        (repeated if name in seen else seen).add(name)
    return sorted(repeated)


def bucket(user_id: int, salt: str) -> float:
    """The user's stable position in [0, 1) under a salt (BLAKE2b-64 of `"<salt>:<user_id>"` / 2**64)."""
    digest = hashlib.blake2b(f"{salt}:{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def assign(user_id: int, experiment: Experiment) -> Arm:
    """The arm a user gets in an experiment: stable across processes, restarts and reloads with the same salt."""
    return experiment.arm_for_bucket(bucket(user_id, experiment.salt))


def parse_experiments(text: str, source: str = "<text>") -> ExperimentFile:
    """Validate an experiment file's YAML text; ExperimentFileError says what is wrong and where."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ExperimentFileError(f"{source} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ExperimentFileError(f"{source} must hold a mapping with an 'experiments' list")
    try:
        return ExperimentFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise ExperimentFileError(f"{source} is invalid: {problems}") from exc


def load_experiments(path: Path) -> tuple[ExperimentFile, bytes]:
    """Read and validate an experiment file; returns the parsed file and its raw bytes (for a content hash)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ExperimentFileError(f"cannot read experiment file {path}: {exc.strerror or exc}") from exc
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise ExperimentFileError(f"{path} is not UTF-8 text: {exc}") from exc
    return parse_experiments(text, str(path)), data
