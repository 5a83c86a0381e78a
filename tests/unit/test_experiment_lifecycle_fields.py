"""Experiment lifecycle fields: validation, old files still load, stop sends everyone to control, interleave routing."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from serving.experiments import (
    Arm,
    Experiment,
    ExperimentFileError,
    Guardrails,
    assign,
    load_experiments,
    parse_experiments,
)
from serving.provenance_record import ProvenanceRecord
from serving.routing import Router
from tests.integration.test_cold_start_path import EXPERIMENTS as COLD_EXPERIMENTS
from tests.integration.test_serving import EXPERIMENTS as SERVING_EXPERIMENTS

REPO = Path(__file__).resolve().parents[2]
USERS = range(10_000)


def two_arm_yaml(extra: str = "", arms: int = 2, weights: tuple[int, ...] = (90, 10)) -> str:
    """One enabled experiment with arms control, treatment (, extra2...) and experiment-level lines `extra`."""
    names = ["control", "treatment", "third"][:arms]
    arm_lines = "".join(
        f"      - {{name: {n}, weight: {weights[i] if i < len(weights) else 1}, "
        f"model: {'champion' if i == 0 else 'challenger'}}}\n"
        for i, n in enumerate(names)
    )
    return f"experiments:\n  - name: exp\n    salt: life-1\n{extra}    arms:\n{arm_lines}"


def router_for(tmp_path: Path, text: str) -> Router:
    path = tmp_path / "e.yaml"
    path.write_text(text)
    return Router.from_file(path)


# --- old files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [SERVING_EXPERIMENTS, COLD_EXPERIMENTS], ids=["serving", "cold_start"])
def test_files_written_before_the_lifecycle_fields_still_load_with_the_defaults(text: str) -> None:
    experiment = parse_experiments(text).active
    assert experiment is not None
    assert (experiment.kind, experiment.control, experiment.primary_metric) == ("ab", None, "hit_rate")
    assert experiment.control_arm is experiment.arms[0]
    assert experiment.guardrails == Guardrails()
    assert (experiment.planned_users, experiment.planned_days) == (None, None)
    assert (experiment.started_at, experiment.stopped_at, experiment.stop_reason) == (None, None, "")
    assert not experiment.is_stopped


def test_the_shipped_file_loads_and_names_its_control() -> None:
    parsed, _ = load_experiments(REPO / "deploy" / "experiments.yaml")
    experiment = parsed.active
    assert experiment is not None and experiment.kind == "ab" and experiment.control_arm.name == "control"
    assert not experiment.is_stopped


def test_guardrail_defaults_are_the_slas() -> None:
    g = Guardrails()
    assert (g.availability_min, g.p99_ms_max, g.fallback_ratio_max) == (0.99, 600.0, 0.05)
    assert (g.cost_per_1k_max, g.min_requests) == (None, 200)
    assert all(f.description for f in Guardrails.model_fields.values())


def test_every_lifecycle_field_round_trips_from_yaml() -> None:
    extra = (
        "    kind: ab\n    control: treatment\n    primary_metric: cost_per_watch\n"
        "    guardrails: {availability_min: 0.995, p99_ms_max: 300, fallback_ratio_max: 0.02,"
        " cost_per_1k_max: 40.5, min_requests: 500}\n"
        "    planned_users: 20000\n    planned_days: 7.5\n"
        "    started_at: 2026-12-01T10:00:00Z\n    stopped_at: 2026-12-03 10:00:00\n"
        "    stop_reason: 'guardrail p99_ms_max: 812 ms > 300 ms'\n"
    )
    e = parse_experiments(two_arm_yaml(extra)).experiments[0]
    assert (e.control_arm.name, e.primary_metric) == ("treatment", "cost_per_watch")
    assert e.guardrails == Guardrails(
        availability_min=0.995,
        p99_ms_max=300,
        fallback_ratio_max=0.02,
        cost_per_1k_max=40.5,
        min_requests=500,
    )
    assert (e.planned_users, e.planned_days) == (20000, 7.5)
    assert e.started_at == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert e.stopped_at == datetime(2026, 12, 3, 10, tzinfo=UTC), "a time without zone is read as UTC"
    assert e.is_stopped and e.stop_reason.startswith("guardrail")


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "arms", "message"),
    [
        ("    kind: interleave\n", 1, "exactly 2 arms, got 1"),
        ("    kind: interleave\n", 3, "exactly 2 arms, got 3"),
        ("    kind: interleave\n    control: treatment\n", 2, "control must be its first arm"),
        ("    kind: abx\n", 2, "kind"),
        ("    control: nobody\n", 2, "'nobody' is not an arm"),
        ("    primary_metric: clicks\n", 2, "primary_metric"),
        ("    guardrails: {availability_min: 1.5}\n", 2, "guardrails.availability_min"),
        ("    guardrails: {availability_min: -0.1}\n", 2, "guardrails.availability_min"),
        ("    guardrails: {p99_ms_max: 0}\n", 2, "guardrails.p99_ms_max"),
        ("    guardrails: {fallback_ratio_max: 1.2}\n", 2, "guardrails.fallback_ratio_max"),
        ("    guardrails: {cost_per_1k_max: -1}\n", 2, "guardrails.cost_per_1k_max"),
        ("    guardrails: {min_requests: 0}\n", 2, "guardrails.min_requests"),
        ("    guardrails: {p99_max: 500}\n", 2, "guardrails.p99_max: Extra inputs"),
        ("    planned_users: -1\n", 2, "planned_users"),
        ("    planned_days: -0.5\n", 2, "planned_days"),
        (
            "    started_at: 2026-12-02T00:00:00Z\n    stopped_at: 2026-12-01T00:00:00Z\n",
            2,
            "before started_at",
        ),
    ],
)
def test_invalid_lifecycle_fields_are_refused_with_the_reason(extra: str, arms: int, message: str) -> None:
    with pytest.raises(ExperimentFileError, match=message):
        parse_experiments(two_arm_yaml(extra, arms=arms))


def test_an_interleave_experiment_with_two_arms_validates() -> None:
    e = parse_experiments(two_arm_yaml("    kind: interleave\n    control: control\n")).experiments[0]
    assert e.kind == "interleave" and e.control_arm.name == "control"


# --- routing ------------------------------------------------------------------------------------


def test_a_stopped_experiment_sends_every_user_to_control_and_keeps_its_name(tmp_path: Path) -> None:
    router = router_for(tmp_path, two_arm_yaml("    stopped_at: 2026-12-03T10:00:00Z\n", weights=(50, 50)))
    assignments = [router.assign(u) for u in USERS]
    assert {a.arm.name for a in assignments} == {"control"}
    assert {a.experiment for a in assignments} == {"exp"}
    assert all(a.partner is None for a in assignments)
    view = router.describe()
    assert view["stopped"] is True and view["control"] == "control"
    assert view["lifecycle"]["stopped_at"] == "2026-12-03T10:00:00Z"


def test_stop_routes_to_the_named_control_even_when_it_is_not_the_first_arm(tmp_path: Path) -> None:
    text = two_arm_yaml("    control: treatment\n    stopped_at: 2026-12-03T10:00:00Z\n", weights=(90, 10))
    router = router_for(tmp_path, text)
    assert {router.assign(u).arm.name for u in USERS} == {"treatment"}


def test_stop_and_restart_by_reload_without_a_new_router(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(two_arm_yaml(weights=(50, 50)))
    router = Router.from_file(path)
    experiment = router.experiment
    assert experiment is not None
    running = [router.assign(u).arm.name for u in USERS]
    # The running split is the hash split, untouched by the new fields.
    assert running == [assign(u, experiment).name for u in USERS]
    assert running.count("treatment") / len(USERS) == pytest.approx(0.5, abs=0.02)
    path.write_text(
        two_arm_yaml("    stopped_at: 2026-12-03T10:00:00Z\n    stop_reason: by hand\n", weights=(50, 50))
    )
    router.reload()
    assert {router.assign(u).arm.name for u in USERS} == {"control"}
    path.write_text(two_arm_yaml(weights=(50, 50)))  # cleared: every user back in their old arm
    router.reload()
    assert [router.assign(u).arm.name for u in USERS] == running


def test_interleave_gives_every_user_control_as_team_a_and_treatment_as_partner(tmp_path: Path) -> None:
    router = router_for(tmp_path, two_arm_yaml("    kind: interleave\n", weights=(99, 1)))
    assignments = [router.assign(u) for u in USERS]
    assert {(a.experiment, a.arm.name, a.partner.name if a.partner else None) for a in assignments} == {
        ("exp", "control", "treatment")
    }, "no user split: weights are ignored"
    assert router.describe()["kind"] == "interleave"


def test_a_stopped_interleave_serves_control_alone(tmp_path: Path) -> None:
    router = router_for(
        tmp_path, two_arm_yaml("    kind: interleave\n    stopped_at: 2026-12-03T10:00:00Z\n")
    )
    assert {(router.assign(u).arm.name, router.assign(u).partner) for u in USERS} == {("control", None)}


def test_assignment_stays_cheap_for_every_kind(tmp_path: Path) -> None:
    """The request path's cost: generous bound (µs here are ~2-3), printed for the record."""
    texts = {
        "ab": two_arm_yaml(),
        "stopped": two_arm_yaml("    stopped_at: 2026-12-03T10:00:00Z\n"),
        "interleave": two_arm_yaml("    kind: interleave\n"),
    }
    for kind, text in texts.items():
        router = router_for(tmp_path, text)
        t0 = time.perf_counter()
        for u in USERS:
            router.assign(u)
        per_call_us = (time.perf_counter() - t0) / len(USERS) * 1e6
        print(f"assign ({kind}): {per_call_us:.2f} µs")
        assert per_call_us < 50.0, kind


def test_experiment_objects_take_the_fields_directly() -> None:
    arms = (Arm(name="c", weight=1), Arm(name="t", weight=1))
    e = Experiment(name="e", salt="s", arms=arms, kind="interleave", planned_days=0)
    assert e.control_arm.name == "c" and not e.is_stopped
    stopped = e.model_copy(update={"stopped_at": datetime(2026, 12, 1, tzinfo=UTC)})
    assert stopped.is_stopped


# --- the provenance record ----------------------------------------------------------------------


def test_a_record_without_the_interleave_field_still_parses() -> None:
    old = (
        '{"request_id":"609359e270594abe9b333ed72b302bd1","ts":"2026-11-25T19:46:20.583+00:00",'
        '"user_id":42,"experiment":null,"arm":"default","model_name":null,"model_version":null,'
        '"result":["a+1999"],"latency_ms":3.5,"status":200}'
    )
    rec = ProvenanceRecord.from_json(old)
    assert rec.interleave is None and rec.result == ["a+1999"]
    teams = {"teams": "AB", "a": "control", "b": "treatment", "a_version": 1, "b_version": 2}
    new = ProvenanceRecord(user_id=1, experiment="x", arm="interleave", model_name=None, model_version=1,
                           result=["a", "b"], latency_ms=1.0, interleave=teams)  # fmt: skip
    assert ProvenanceRecord.from_json(new.to_json()).interleave == teams
