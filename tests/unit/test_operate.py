"""`recsys operate`'s state machine on fakes: retrain and start, wait, promote, discard, guard stop, idempotence, dry run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from recsys.experiment_lifecycle import ExperimentBook, parse_arm
from recsys.operate import DECISIONS, DecisionLog, Plan, Ports, Readout, Trained, operate_once
from serving.experiments import Experiment

T0 = datetime(2026, 12, 1, 6, tzinfo=UTC)


@dataclass(frozen=True)
class Promoted:
    accepted: bool
    reason: str


@dataclass
class FakeRegistry:
    alias: dict[str, int] = field(default_factory=lambda: {"champion": 1})
    promotions: list[tuple[int, bool, str | None]] = field(default_factory=list)
    refuse: str | None = None

    def aliases(self) -> dict[str, int]:
        return dict(self.alias)

    def set_challenger(self, ref: int | str) -> object:
        self.alias["challenger"] = int(ref)
        return None

    def clear_challenger(self) -> int | None:
        return self.alias.pop("challenger", None)

    def promote(self, ref: int | str, *, force: bool = False, reason: str | None = None) -> Promoted:
        if self.refuse:
            return Promoted(False, self.refuse)
        self.promotions.append((int(ref), force, reason))
        self.alias["champion"] = int(ref)
        if self.alias.get("challenger") == int(ref):  # as the real registry does
            del self.alias["challenger"]
        return Promoted(True, reason or "")


@dataclass
class World:
    """The fakes and what they saw; `step()` runs one invocation."""

    tmp: Path
    registry: FakeRegistry = field(default_factory=FakeRegistry)
    readout: Readout = field(default_factory=lambda: Readout(0, "too few users", "nothing yet"))
    breach: str | None = None
    offline_wins: bool = True
    now: datetime = T0
    trained: list[int] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    book: ExperimentBook = field(init=False)

    def __post_init__(self) -> None:
        self.book = ExperimentBook(self.tmp / "experiments.yaml", self.tmp / "var", publish=False)

    def retrain(self, bootstrap: bool) -> Trained:
        version = 2 + len(self.trained)
        self.trained.append(version)
        champion = version if bootstrap else None
        if bootstrap:
            self.registry.alias["champion"] = version
        return Trained(version, self.offline_wins, f"offline verdict of v{version}", champion)

    def guard(self, dry_run: bool) -> str | None:
        running = self.book.running()
        if self.breach and running is not None and not dry_run:  # what experiment_guard.check does
            self.book.stop(running.name, "guardrail", f"guard rail: {self.breach}")
        return self.breach

    def ports(self) -> Ports:
        return Ports(retrain=self.retrain, registry=self.registry, book=self.book, guard=self.guard,
                     analyze=lambda experiment, since: self.readout, clock=lambda: self.now,
                     alert=self.alerts.append, journal=DecisionLog(self.tmp / "var" / DECISIONS))  # fmt: skip

    def step(self, plan: Plan = Plan(), dry_run: bool = False) -> Any:
        return operate_once(self.ports(), plan, dry_run=dry_run)

    def decisions(self) -> list[dict[str, Any]]:
        return DecisionLog(self.tmp / "var" / DECISIONS).records()

    def snapshot(self) -> tuple[Any, ...]:
        path = self.book.path
        return (dict(self.registry.alias), list(self.registry.promotions), path.read_text() if path.exists() else "",
                len(self.book.history()), len(self.decisions()), list(self.trained), len(self.alerts))  # fmt: skip


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def started(world: World) -> str:
    decision = world.step()
    assert decision.action == "started"
    return str(decision.experiment)


def test_no_experiment_retrains_registers_sets_challenger_and_starts_an_interleaving(world: World) -> None:
    decision = world.step(Plan(planned_users=500, planned_days=2.0))
    assert decision.action == "started" and decision.experiment == "operate-20261201-v2"
    assert world.trained == [2]
    assert world.registry.alias == {"champion": 1, "challenger": 2}  # challenger, not promoted
    assert world.registry.promotions == []
    running = world.book.running()
    assert running is not None and running.kind == "interleave"
    assert [(a.name, a.model) for a in running.arms] == [("champion", "champion"), ("challenger", "v2")]
    assert (running.planned_users, running.planned_days) == (500, 2.0)
    assert world.book.history()[-1]["by"] == "operate"
    assert (
        world.decisions()[-1]["action"] == "started" and world.decisions()[-1]["log_time"] == T0.isoformat()
    )
    assert world.alerts == []


def test_ab_kind_starts_a_split(world: World) -> None:
    world.step(Plan(kind="ab"))
    running = world.book.running()
    assert (
        running is not None
        and running.kind == "ab"
        and running.shares() == {"champion": 0.5, "challenger": 0.5}
    )


def test_running_and_plan_not_met_does_nothing(world: World) -> None:
    started(world)
    world.readout = Readout(120, "B wins", "120 credited users")
    world.now = T0 + timedelta(hours=12)
    before = world.snapshot()
    decision = world.step()
    assert decision.action == "waiting" and "120 users of 300" in decision.reason
    assert world.snapshot() == before


def test_plan_met_and_win_promotes_with_a_reason_citing_the_figures(world: World) -> None:
    name = started(world)
    world.readout = Readout(
        340, "B wins", "340 credited users; ΔAB +0.120, p = 0.002: B wins", {"delta": 0.12}
    )
    decision = world.step()
    assert decision.action == "promoted" and decision.champion == 2
    ((version, force, reason),) = world.registry.promotions
    assert version == 2 and force and "ΔAB +0.120, p = 0.002" in str(reason) and name in str(reason)
    assert world.registry.alias == {"champion": 2}
    assert world.book.running() is None and world.book.get(name).stop_reason == reason
    assert world.book.history()[-1]["action"] == "stop"
    record = world.decisions()[-1]
    assert record["action"] == "promoted" and record["figures"]["users"] == 340
    assert record["figures"]["analysis"] == {"delta": 0.12}
    (alert,) = world.alerts
    assert alert["labels"]["alertname"] == "ChampionPromoted" and alert["labels"]["severity"] == "info"
    assert alert["annotations"]["description"] == reason


def test_days_of_log_time_meet_the_plan_and_no_win_discards(world: World) -> None:
    name = started(world)
    world.readout = Readout(80, "no significant difference", "80 credited users: no significant difference")
    world.now = T0 + timedelta(days=1, minutes=1)
    decision = world.step()
    assert decision.action == "discarded" and "no significant win" in decision.reason
    assert world.registry.alias == {"champion": 1} and world.registry.promotions == []
    assert world.book.running() is None and world.book.get(name).stopped_at is not None
    assert world.alerts[-1]["labels"]["alertname"] == "ChallengerDiscarded"
    assert world.decisions()[-1]["action"] == "discarded"


def test_a_champion_win_or_the_other_kinds_word_is_not_a_win(world: World) -> None:
    started(world)  # interleave: "treatment wins" is A/B's word and must not count
    world.readout = Readout(400, "treatment wins", "x")
    assert world.step().action == "discarded"
    world.step(Plan(kind="ab"))
    world.readout = Readout(400, "treatment wins", "A/B on hit_rate: effect +0.03")
    assert world.step().action == "promoted"


def test_a_refused_promotion_discards(world: World) -> None:
    started(world)
    world.registry.refuse = "smoke test failed: boom"
    world.readout = Readout(400, "B wins", "B wins")
    decision = world.step()
    assert decision.action == "discarded" and "smoke test failed" in decision.reason
    assert world.registry.alias == {"champion": 1} and world.book.running() is None


def test_guard_rail_breach_stops_without_promotion(world: World) -> None:
    started(world)
    world.breach = "challenger: p99 900 ms > 600"
    world.readout = Readout(400, "B wins", "B wins")  # a win does not outrank a broken rail
    decision = world.step()
    assert decision.action == "guard_stopped" and "p99 900 ms" in decision.reason
    assert world.registry.promotions == [] and world.registry.alias == {"champion": 1}
    assert world.book.running() is None and world.book.history()[-1]["by"] == "guardrail"
    assert world.decisions()[-1]["action"] == "guard_stopped"


def test_running_twice_in_the_same_state_does_nothing_the_second_time(world: World) -> None:
    started(world)
    after_start = world.snapshot()
    assert world.step().action == "waiting"  # not a second retrain or experiment
    assert world.snapshot() == after_start
    assert world.step().action == "waiting"
    assert world.snapshot() == after_start


def test_a_step_that_died_after_promoting_is_finished_by_the_next(world: World) -> None:
    name = started(world)
    world.readout = Readout(400, "B wins", "B wins")
    world.registry.promote(2, force=True, reason="first try")  # the step died before its stop
    decision = world.step()
    assert decision.action == "promoted" and world.registry.alias["champion"] == 2
    assert world.book.get(name).stopped_at is not None


def test_dry_run_changes_nothing(world: World) -> None:
    empty = world.snapshot()
    decision = world.step(dry_run=True)
    assert decision.dry_run and decision.action == "started" and "would retrain" in decision.reason
    assert world.snapshot() == empty
    started(world)
    world.readout = Readout(400, "B wins", "B wins")
    before = world.snapshot()
    assert world.step(dry_run=True).action == "promoted"
    world.breach = "challenger: availability 0.90 < 0.99"
    assert world.step(dry_run=True).action == "guard_stopped"
    assert world.snapshot() == before


def test_without_a_champion_training_bootstraps_one(world: World) -> None:
    world.registry.alias.clear()
    decision = world.step()
    assert decision.action == "bootstrapped" and decision.champion == 2
    assert world.book.running() is None and world.alerts[-1]["labels"]["alertname"] == "ChampionPromoted"


def test_an_offline_loss_is_registered_but_not_challenged(world: World) -> None:
    world.offline_wins = False
    decision = world.step()
    assert decision.action == "rejected_offline" and world.book.running() is None
    assert "challenger" not in world.registry.alias
    assert world.step(Plan(require_offline_win=False)).action == "started"


def test_someone_elses_experiment_is_left_alone(world: World) -> None:
    arms = [
        parse_arm("name=control,model=champion,weight=50"),
        parse_arm("name=t,model=champion,weight=50,lam=1"),
    ]
    world.book.start(Experiment.model_validate({"name": "cost-test", "salt": "s", "arms": arms}), "alice")
    before = world.snapshot()
    assert world.step().action == "busy"
    assert world.snapshot() == before


def test_the_interleaving_summary_cites_the_figures() -> None:
    from monitoring.interleave_analysis import InterleaveResult
    from monitoring.interleave_credit import preference
    from recsys.operate_adapters import interleave_summary

    pref = preference([(0, 1)] * 70 + [(1, 0)] * 30 + [(1, 1)] * 10)
    text = interleave_summary(InterleaveResult("operate-x", T0, None, 150, pref, 200, "B wins"))
    assert "110 credited users of 150" in text and "by 70" in text and "ΔAB +0.364" in text
    assert text.endswith("B wins") and f"p = {pref.p_value:.3g}" in text
