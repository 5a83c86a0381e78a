"""The champion/challenger loop (`recsys operate`): one idempotent step of a state machine per invocation.

The state lives outside the process (the registry's aliases, the experiment file, the decision
log), so a scheduler may run the step as often as it likes and a crashed step is finished by the
next one. Each step does exactly one of:

- no experiment of operate's runs: retrain on the latest data and register the version without
  promoting it; if the offline verdict says it beats the best baseline, make it the `challenger`
  and start `operate-<log date>-v<N>` (champion = control / team A, the pinned challenger =
  treatment / team B) with the plan and guard rails on the experiment. With no champion at all,
  training's own verdict-governed promotion bootstraps one instead.
- it runs: judge the guard rails first (a breach stops it, alerts, discards the challenger); else
  read the analysis, and once the plan is met (credited users for interleaving, users per arm for
  A/B, or days of log time since its start) promote on a significant challenger win ("B wins",
  "treatment wins") with a reason citing the figures, or discard. The promotion comes before the
  stop: a step that dies between the two leaves a running experiment, and the next step repeats
  the (idempotent) promotion, so a won experiment is never lost.
- another experiment runs (not named `operate-…`): nothing; people's experiments come first.

Every decision goes to the lifecycle journal (the stop's reason) and to `var/operate/decisions.jsonl`
with its figures; promotions and discards are also sent as info alerts to `recsys.alerts`.

For callers other than the CLI (the closed loop, benchmarks):
`operate_once(ports: Ports, plan: Plan = Plan(), dry_run: bool = False) -> Decision`, with the real
side effects from `recsys.operate_adapters.real_ports(var, redis_url, reports_dir, progress)`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from ranking.registry import CHALLENGER, CHAMPION
from serving.experiments import Arm, Experiment, Kind, PrimaryMetric

BY: Final = "operate"
"""The `by` of operate's changes in the lifecycle journal."""
PREFIX: Final = "operate-"
"""Names of the experiments operate starts (and the only ones it judges)."""
DECISIONS: Final = Path("operate") / "decisions.jsonl"
"""The decision log, under the var dir."""
WINS: Final = {"interleave": "B wins", "ab": "treatment wins"}
"""The analysis decision that is a significant win of the challenger, per experiment kind."""

Action = Literal[
    "started", "waiting", "promoted", "discarded", "guard_stopped", "bootstrapped", "rejected_offline", "busy"
]
"""What a step did (or, with dry_run, would do)."""


@dataclass(frozen=True)
class Plan:
    """How operate runs the experiments it starts (a running one keeps the plan it started with)."""

    kind: Kind = "interleave"
    planned_users: int | None = 300
    """Credited users (interleave) or users per arm (A/B) after which the experiment is decided."""
    planned_days: float | None = 1.0
    """Days of log time after which it is decided whatever the users (the first of the two met)."""
    primary_metric: PrimaryMetric = "hit_rate"
    require_offline_win: bool = True
    """Challenge only with a version whose offline verdict beats the best baseline."""
    force_past_gates: bool = True
    """An online win outranks the offline gates (which stay recorded on the version); the smoke test still holds."""


@dataclass(frozen=True)
class Trained:
    """What a retrain registered: the version and its offline verdict."""

    version: int
    offline_wins: bool
    offline_reason: str
    champion: int | None = None
    """The champion after training (only a bootstrap retrain may set one)."""


@dataclass(frozen=True)
class Readout:
    """The analysis of a running experiment as operate needs it."""

    users: int
    """Credited users (interleave) or the smallest arm's users (A/B)."""
    decision: str
    """The analysis' decision (`B wins`, `treatment wins`, `too few users`, ...)."""
    summary: str
    """One sentence with the figures, cited in the promotion or discard reason."""
    figures: Mapping[str, Any] = field(default_factory=dict)


class Promotion(Protocol):
    """The outcome of a promotion (`ranking.registry.PromotionResult`)."""

    @property
    def accepted(self) -> bool:
        """Whether the version became champion."""

    @property
    def reason(self) -> str:
        """Why (or why not)."""


class Registry(Protocol):
    """The registry calls operate makes (`ranking.registry.ModelRegistry` fits)."""

    def aliases(self) -> dict[str, int]:
        """Alias -> version."""

    def set_challenger(self, ref: int | str) -> object:
        """Point `challenger` at a version."""

    def clear_challenger(self) -> int | None:
        """Remove `challenger`."""

    def promote(self, ref: int | str, *, force: bool = ..., reason: str | None = ...) -> Promotion:
        """Make a version champion, recording `reason`."""


class Book(Protocol):
    """The experiment lifecycle calls operate makes (`recsys.experiment_lifecycle.ExperimentBook` fits)."""

    def running(self) -> Experiment | None:
        """The running experiment."""

    def start(
        self,
        experiment: Experiment,
        by: str,
        replace: bool = ...,
        reason: str = ...,
        at: datetime | None = ...,
    ) -> object:
        """Start an experiment (journalled) recording `at` as its start (log time)."""

    def stop(self, name: str, by: str, reason: str) -> object:
        """Stop an experiment (journalled): all traffic to control."""


class DecisionLog:
    """`decisions.jsonl`: one JSON record per decision, and where each experiment started in log time."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: Mapping[str, Any]) -> None:
        """Add a record (one line)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as out:
            out.write(json.dumps(record, default=str) + "\n")

    def records(self) -> list[dict[str, Any]]:
        """Every record, oldest first."""
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def started_at(self, experiment: str) -> datetime | None:
        """The log time operate started `experiment` at (the lifecycle's `started_at` is wall time)."""
        starts = [r for r in self.records() if r["action"] == "started" and r["experiment"] == experiment]
        return datetime.fromisoformat(starts[-1]["log_time"]) if starts else None


@dataclass(frozen=True)
class Ports:
    """The side effects of a step, injected so the state machine is testable with fakes."""

    retrain: Callable[[bool], Trained]
    """Train on the latest data and register; True lets training promote by its verdict (bootstrap only)."""
    registry: Registry
    book: Book
    guard: Callable[[bool], str | None]
    """Judge the running experiment's rails; a breach's description (stopped and paged unless dry run)."""
    analyze: Callable[[Experiment, datetime], Readout]
    """Read out a running experiment from its log-time start."""
    clock: Callable[[], datetime]
    """Log time now (the latest event ingested)."""
    alert: Callable[[dict[str, Any]], None]
    journal: DecisionLog


@dataclass(frozen=True)
class Decision:
    """What one step did (or would do): the action, the versions, the reason and the figures behind it."""

    action: Action
    experiment: str | None
    champion: int | None
    challenger: int | None
    reason: str
    figures: Mapping[str, Any] = field(default_factory=dict)
    dry_run: bool = False

    def summary(self) -> str:
        """One line for the terminal."""
        head = "dry run, would be: " if self.dry_run else ""
        versions = f" (champion v{self.champion}, challenger v{self.challenger})".replace("vNone", "none")
        return (
            f"{head}{self.action}{' ' + self.experiment if self.experiment else ''}{versions}: {self.reason}"
        )


def experiment_for(plan: Plan, challenger: int, log_now: datetime) -> Experiment:
    """The experiment operate starts: control = the champion alias, treatment = the pinned challenger."""
    name = f"{PREFIX}{log_now:%Y%m%d}-v{challenger}"
    # Control follows the alias: once stopped, the experiment routes everyone to whatever is champion,
    # including the challenger just promoted. The treatment is pinned so the run tests one version.
    arms = (
        Arm(name="champion", weight=50, model=CHAMPION),
        Arm(name="challenger", weight=50, model=f"v{challenger}"),
    )
    return Experiment(name=name, salt=name, arms=arms, kind=plan.kind, primary_metric=plan.primary_metric,
                      planned_users=plan.planned_users, planned_days=plan.planned_days,
                      description=f"recsys operate: champion vs challenger v{challenger}")  # fmt: skip


def challenger_of(experiment: Experiment) -> int:
    """The version an operate experiment tests (its pinned treatment arm)."""
    return int(experiment.arms[-1].model.removeprefix("v"))


def plan_met(experiment: Experiment, users: int, days: float) -> bool:
    """Whether the experiment's plan is met: enough users, or enough days of log time (the first of the two)."""
    by_users = experiment.planned_users is not None and users >= experiment.planned_users
    by_days = experiment.planned_days is not None and days >= experiment.planned_days
    return by_users or by_days


def alert_of(decision: Decision, ts: str) -> dict[str, Any]:
    """An info alert in the guard rails' (Alertmanager's) shape for a change of champion or a discard."""
    promoted = decision.action in ("promoted", "bootstrapped")
    name = "ChampionPromoted" if promoted else "ChallengerDiscarded"
    version = decision.champion if promoted else decision.challenger
    subject = decision.experiment or "bootstrap"
    return {"status": "firing",
            "labels": {"alertname": name, "severity": "info", "experiment": subject, "version": str(version)},
            "annotations": {"summary": f"recsys operate: {decision.action} v{version} ({subject})",
                            "description": decision.reason},
            "startsAt": ts, "fingerprint": f"operate-{subject}-{decision.action}"}  # fmt: skip


def operate_once(ports: Ports, plan: Plan = Plan(), dry_run: bool = False) -> Decision:
    """Take one step of the loop (see the module doc); with `dry_run` change nothing and say what it would do."""
    running = ports.book.running()
    if running is None:
        return _start(ports, plan, dry_run)
    if not running.name.startswith(PREFIX):
        champion = ports.registry.aliases().get(CHAMPION)
        return Decision("busy", running.name, champion, None,
                        f"experiment {running.name} is not operate's: nothing to do until it stops", dry_run=dry_run)  # fmt: skip
    return _judge(ports, plan, running, dry_run)


def _start(ports: Ports, plan: Plan, dry_run: bool) -> Decision:
    champion = ports.registry.aliases().get(CHAMPION)
    now = ports.clock()
    if dry_run:
        what = (f"start a {plan.kind} experiment against champion v{champion} "
                f"(plan: {plan.planned_users} users or {plan.planned_days} days)") if champion is not None else (
                "let training promote by its offline verdict (no champion yet)")  # fmt: skip
        return Decision("started" if champion is not None else "bootstrapped", None, champion, None,
                        f"would retrain on the latest data, register the version and {what}", dry_run=True)  # fmt: skip
    if champion is None:  # nothing to compare online against: training's own verdict decides
        trained = ports.retrain(True)
        decision = Decision("bootstrapped", None, trained.champion, trained.version,
                            f"no champion yet: training promoted by its offline verdict: {trained.offline_reason}")  # fmt: skip
        return _record(ports, decision, now, alert=trained.champion is not None)
    trained = ports.retrain(False)
    if plan.require_offline_win and not trained.offline_wins:
        decision = Decision("rejected_offline", None, champion, trained.version,
                            f"v{trained.version} registered, not challenged: {trained.offline_reason}")  # fmt: skip
        return _record(ports, decision, now, alert=False)
    ports.registry.set_challenger(trained.version)
    experiment = experiment_for(plan, trained.version, now)
    reason = f"challenger v{trained.version} vs champion v{champion}; offline: {trained.offline_reason}"
    # Stamped in log time: the guard rails and the analysis read windows of the stream's clock, which
    # in a replay or a simulation is far from the wall clock.
    ports.book.start(experiment, by=BY, reason=reason, at=now)
    decision = Decision("started", experiment.name, champion, trained.version, reason,
                        {"kind": plan.kind, "planned_users": plan.planned_users, "planned_days": plan.planned_days})  # fmt: skip
    return _record(ports, decision, now, alert=False)


def _judge(ports: Ports, plan: Plan, experiment: Experiment, dry_run: bool) -> Decision:
    champion = ports.registry.aliases().get(CHAMPION)
    challenger = challenger_of(experiment)
    name = experiment.name
    breach = ports.guard(dry_run)
    now = ports.clock()
    if breach is not None:
        reason = f"guard rail breached ({breach}): experiment stopped, challenger v{challenger} discarded"
        decision = Decision("guard_stopped", name, champion, challenger, reason, dry_run=dry_run)
        if dry_run:
            return decision
        _clear_challenger(ports, challenger)  # the guard already stopped and paged
        return _record(ports, decision, now, alert=True)
    since = ports.journal.started_at(name) or experiment.started_at or now
    days = (now - since) / timedelta(days=1)
    readout = ports.analyze(experiment, since)
    figures = {"users": readout.users, "days": round(days, 3), "decision": readout.decision,
               "planned_users": experiment.planned_users, "planned_days": experiment.planned_days,
               "analysis": dict(readout.figures)}  # fmt: skip
    if not plan_met(experiment, readout.users, days):
        return Decision("waiting", name, champion, challenger,
                        f"plan not met: {readout.users} users of {experiment.planned_users}, {days:.2f} days "
                        f"of {experiment.planned_days}; so far: {readout.summary}", figures, dry_run)  # fmt: skip
    evidence = f"{name} ({experiment.kind}, {days:.2f} days of log time): {readout.summary}"
    if readout.decision == WINS[experiment.kind]:
        decision = Decision("promoted", name, challenger, challenger,
                            f"challenger v{challenger} won {evidence}", figures, dry_run)  # fmt: skip
        if not dry_run:
            result = ports.registry.promote(challenger, force=plan.force_past_gates, reason=decision.reason)
            if not result.accepted:
                decision = Decision("discarded", name, champion, challenger,
                                    f"won but promotion refused ({result.reason}): {evidence}", figures)  # fmt: skip
                _clear_challenger(ports, challenger)
    else:
        decision = Decision("discarded", name, champion, challenger,
                            f"no significant win for challenger v{challenger}: {evidence}", figures, dry_run)  # fmt: skip
        if not dry_run:
            _clear_challenger(ports, challenger)
    if dry_run:
        return decision
    ports.book.stop(name, BY, decision.reason)  # after the promotion: see the module doc
    return _record(ports, decision, now, alert=True)


def _clear_challenger(ports: Ports, challenger: int) -> None:
    # Only our own challenger: someone may have pointed the alias at another version meanwhile.
    if ports.registry.aliases().get(CHALLENGER) == challenger:
        ports.registry.clear_challenger()


def _record(ports: Ports, decision: Decision, log_now: datetime, alert: bool) -> Decision:
    ts = datetime.now(UTC).replace(microsecond=0).isoformat()
    ports.journal.append({"ts": ts, "log_time": log_now.isoformat(), **asdict(decision)})
    if alert:
        ports.alert(alert_of(decision, ts))
    return decision
