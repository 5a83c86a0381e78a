"""Experiment lifecycle and guard rails: the file serving watches, the journal, stop-to-control and the auto-stop."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from monitoring.guardrails import Limits, arm_health
from recsys.experiment_guard import check
from recsys.experiment_lifecycle import ExperimentBook, LifecycleError, parse_arm
from serving.experiments import Experiment, load_experiments
from serving.routing import Router


def experiment(name: str = "exp", **extra: object) -> Experiment:
    arms = [parse_arm("name=control,model=champion,weight=50"),
            parse_arm("name=treatment,model=challenger,weight=50,lam=0.5")]  # fmt: skip
    return Experiment.model_validate({"name": name, "salt": f"{name}-salt", "arms": arms, **extra})


@pytest.fixture
def book(tmp_path: Path) -> ExperimentBook:
    return ExperimentBook(tmp_path / "experiments.yaml", tmp_path / "var", publish=False)


def arms_of(path: Path, users: range) -> dict[str, int]:
    """How a router on the file assigns users (what serving's workers do after their reload)."""
    router = Router.from_file(path)
    counts: dict[str, int] = {}
    for user in users:
        arm = router.assign(user).arm.name
        counts[arm] = counts.get(arm, 0) + 1
    return counts


def test_parse_arm_reads_fields_and_refuses_garbage() -> None:
    arm = parse_arm("name=t,model=v7,weight=10,lam=0.25,cost_budget=null,cold_start=self_description")
    assert (arm.name, arm.model, arm.weight, arm.lam, arm.cost_budget, arm.cold_start) == (
        "t", "v7", 10, 0.25, None, "self_description")  # fmt: skip
    for bad in ("name", "name=t,model=best", "name=t,weight=-1"):
        with pytest.raises(LifecycleError):
            parse_arm(bad)


def test_start_writes_a_valid_file_and_journals_who_when_what(book: ExperimentBook) -> None:
    change = book.start(experiment(), "alice", reason="try λ 0.5")
    loaded = load_experiments(book.path)[0]
    assert loaded.active is not None and loaded.active.name == "exp"
    assert loaded.active.started_at is not None and loaded.active.stopped_at is None
    assert arms_of(book.path, range(1, 4001)).keys() == {"control", "treatment"}
    rows = book.history("exp")
    assert [(r["action"], r["by"], r["reason"]) for r in rows] == [("start", "alice", "try λ 0.5")]
    assert rows[0]["after"]["arms"][1]["lam"] == 0.5 and rows[0]["before"] is None
    assert change.ts == rows[0]["ts"]


def test_one_experiment_runs_at_a_time_unless_replaced(book: ExperimentBook) -> None:
    book.start(experiment("first"), "alice")
    with pytest.raises(LifecycleError, match="first"):
        book.start(experiment("second"), "bob")
    book.start(experiment("second"), "bob", replace=True)
    file = load_experiments(book.path)[0]
    assert file.active is not None and file.active.name == "second"
    first = next(e for e in file.experiments if e.name == "first")
    assert not first.enabled and first.stopped_at is not None and "second" in first.stop_reason


def test_stop_sends_every_user_to_control_and_keeps_the_experiment(book: ExperimentBook) -> None:
    book.start(experiment(), "alice")
    book.stop("exp", "bob", "enough data")
    router = Router.from_file(book.path)
    assignments = [router.assign(u) for u in range(1, 10_001)]
    assert {a.arm.name for a in assignments} == {"control"}
    assert {a.experiment for a in assignments} == {"exp"}, "the experiment's name stays on every answer"
    assert [r["action"] for r in book.history()] == ["start", "stop"]
    with pytest.raises(LifecycleError, match="already stopped"):
        book.stop("exp", "bob", "again")
    with pytest.raises(LifecycleError, match="no experiment"):
        book.stop("nope", "bob", "?")


def windows(arm_rows: dict[str, dict[str, float]], start: str = "2026-12-01T10:00") -> pd.DataFrame:
    """Window rows of the online job, one per arm (path model unless `fallback` is given)."""
    rows = []
    for arm, f in arm_rows.items():
        base = {"window_start": pd.Timestamp(start, tz="UTC"), "arm": arm, "model": "v1",
                "latency_p99_ms": f.get("p99", 50.0), "hit_cost_sum": f.get("cost", 0.0)}  # fmt: skip
        requests = int(f.get("requests", 1000))
        fallback = int(f.get("fallback", 0))
        available = int(requests * f.get("availability", 1.0))
        rows.append(base | {"path": "model", "requests": requests - fallback, "ok": requests - fallback,
                            "available": available - fallback})  # fmt: skip
        if fallback:
            rows.append(
                base | {"path": "fallback", "requests": fallback, "ok": fallback, "available": fallback}
            )
    return pd.DataFrame(rows)


def test_arm_health_judges_each_rail_and_needs_enough_requests() -> None:
    limits = Limits(availability_min=0.99, p99_ms_max=300, fallback_ratio_max=0.05, cost_per_1k_max=500,
                    min_requests=200)  # fmt: skip
    frame = windows({
        "ok": {}, "slow": {"p99": 900}, "down": {"availability": 0.9}, "fallbacks": {"fallback": 100},
        "costly": {"cost": 800}, "few": {"requests": 50, "p99": 5000},
    })  # fmt: skip
    since = pd.Timestamp("2026-12-01", tz="UTC")
    health = {
        h.arm: h for h in arm_health(frame, list(frame["arm"].unique()), since, pd.Timedelta("15min"), limits)
    }
    assert health["ok"].breaches == ()
    assert "p99" in health["slow"].breaches[0]
    assert "availability" in health["down"].breaches[0]
    assert "fallback ratio 0.100" in health["fallbacks"].breaches[0]
    assert "cost per 1k" in health["costly"].breaches[0] and health["costly"].cost_per_1k == pytest.approx(
        800
    )
    assert not health["few"].judged and health["few"].breaches == ()


def test_a_breaking_treatment_is_stopped_routed_to_control_and_alerted(book: ExperimentBook) -> None:
    book.start(experiment(guardrails={"p99_ms_max": 300}), "alice")
    started = book.get("exp").started_at
    later = (pd.Timestamp(started) + pd.Timedelta(minutes=5)).isoformat()
    healthy = check(book, windows({"control": {}, "treatment": {}}, later), publish_alert=False)
    assert healthy is not None and healthy.stopped is None
    # Control breaking a rail is reported, not acted on: stopping the experiment cannot fix control.
    assert (
        check(book, windows({"control": {"p99": 900}, "treatment": {}}, later), publish_alert=False).stopped
        is None
    )  # type: ignore[union-attr]
    result = check(book, windows({"control": {}, "treatment": {"p99": 900}}, later), publish_alert=False)
    assert result is not None and result.stopped is not None and result.alert is not None
    assert result.alert["labels"]["alertname"] == "ExperimentGuardrailBreached"
    assert (
        result.alert["labels"]["arm"] == "treatment" and "p99" in result.alert["annotations"]["description"]
    )
    assert {a.arm.name for a in map(Router.from_file(book.path).assign, range(1, 2001))} == {"control"}
    assert book.history()[-1]["by"] == "guardrail"
    assert check(book, windows({"treatment": {"p99": 900}}, later), publish_alert=False) is None, (
        "nothing runs now"
    )


def test_an_interleaving_is_judged_on_its_merged_lists_and_stopped_when_they_break(
    book: ExperimentBook,
) -> None:
    # The treatment of an interleaving never answers alone: its movies reach users in the merged lists,
    # labelled `interleave` in the windows. Judging the treatment arm's own label would never fire.
    book.start(experiment(kind="interleave", guardrails={"p99_ms_max": 300}), "alice")
    later = (pd.Timestamp(book.get("exp").started_at) + pd.Timedelta(minutes=5)).isoformat()
    healthy = check(book, windows({"control": {}, "interleave": {}}, later), publish_alert=False)
    assert healthy is not None and healthy.stopped is None
    assert {h.arm for h in healthy.health} == {"control", "interleave"}
    result = check(book, windows({"control": {}, "interleave": {"p99": 900}}, later), publish_alert=False)
    assert result is not None and result.stopped is not None and result.alert is not None
    assert result.alert["labels"]["arm"] == "interleave"


def test_windows_before_the_start_are_not_judged(book: ExperimentBook) -> None:
    book.start(experiment(guardrails={"p99_ms_max": 300}), "alice")
    before = windows({"control": {}, "treatment": {"p99": 900}}, "2020-01-01T00:00")
    result = check(book, before, publish_alert=False)
    assert result is not None and result.stopped is None


def test_start_and_stop_take_the_log_clock_of_a_replayed_stream(book: ExperimentBook) -> None:
    from datetime import UTC, datetime

    log_time = datetime(2019, 3, 1, 12, 0, tzinfo=UTC)
    book.start(experiment(), "alice", at=log_time)
    book.stop("exp", "alice", "done", at=datetime(2019, 3, 2, tzinfo=UTC))
    stored = book.get("exp")
    assert stored.started_at == log_time and stored.stopped_at == datetime(2019, 3, 2, tzinfo=UTC)


def test_a_corrupt_experiment_file_is_a_one_line_error_of_every_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from recsys.cli import app
    from serving.settings import get_serving_settings

    path = tmp_path / "experiments.yaml"
    path.write_text("experiments: [\n  {broken")
    monkeypatch.setenv("RECSYS_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("RECSYS_SERVING_EXPERIMENTS_FILE", str(path))
    get_serving_settings.cache_clear()
    try:
        runner = CliRunner()
        for args in (["stop", "exp"], ["status"], ["analyze", "exp"],
                     ["start", "exp", "--arm", "name=control,model=champion"]):  # fmt: skip
            result = runner.invoke(app, ["experiment", *args])
            assert result.exit_code == 2, (args, result.output)
            assert "is not valid YAML" in result.output and "Traceback" not in result.output, args
    finally:
        get_serving_settings.cache_clear()
