"""The guard-rail action: a running experiment whose treatment breaks a rail is stopped, routed to control and alerted.

`check` reads the online job's windows (`monitoring.guardrails`), and on a breach stops the
experiment through the lifecycle (journalled, routing back to control within seconds) and sends
an alert in Alertmanager's shape to `recsys.alerts` (where the alert sink forwards Prometheus
alerts), labelled `alertname=ExperimentGuardrailBreached`, the experiment and the arm.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from monitoring.guardrails import ArmHealth, Limits, arm_health, breached
from recsys.experiment_lifecycle import Change, ExperimentBook
from serving.experiments import INTERLEAVE_ARM, Experiment

LOOKBACK = pd.Timedelta(minutes=15)
"""Window rows judged: the most recent quarter hour of log time (three 5-minute windows)."""
GUARD: str = "guardrail"
"""The `by` of a guard-rail stop in the journal."""


@dataclass(frozen=True)
class GuardResult:
    """What a check saw and did."""

    experiment: str
    health: list[ArmHealth]
    stopped: Change | None
    alert: dict[str, Any] | None


def control_of(experiment: Experiment) -> str:
    """The control arm's name (the first arm unless named)."""
    return experiment.control or experiment.arms[0].name


def judged_arms(experiment: Experiment) -> list[str]:
    """The arm labels whose windows are judged: the arms of an A/B split; control and the merged lists
    of an interleaving (its treatment never answers alone: its movies reach users only interleaved)."""
    if experiment.kind == "interleave":
        return [control_of(experiment), INTERLEAVE_ARM]
    return [a.name for a in experiment.arms]


def limits_of(experiment: Experiment) -> Limits:
    """The experiment's rails as monitoring takes them."""
    g = experiment.guardrails
    return Limits(g.availability_min, g.p99_ms_max, g.fallback_ratio_max, g.cost_per_1k_max, g.min_requests)


def windows_of(var_dir: Path) -> pd.DataFrame:
    """The online job's window rows under a var dir."""
    from monitoring.layout import MonitorLayout
    from monitoring.tables import read_windows

    return read_windows(MonitorLayout(var_dir))


def check(
    book: ExperimentBook, windows: pd.DataFrame | None = None, publish_alert: bool = True
) -> GuardResult | None:
    """Judge the running experiment (None when none runs); stop and alert on a treatment breach."""
    experiment = book.running()
    if experiment is None:
        return None
    frame = windows_of(book.var_dir) if windows is None else windows
    since = pd.Timestamp(experiment.started_at or datetime.min.replace(tzinfo=UTC))
    health = arm_health(frame, judged_arms(experiment), since, LOOKBACK, limits_of(experiment))
    bad = breached(health, control_of(experiment))
    if not bad:
        return GuardResult(experiment.name, health, None, None)
    reason = "; ".join(f"{h.arm}: {', '.join(h.breaches)}" for h in bad)
    change = book.stop(experiment.name, GUARD, f"guard rail: {reason}")
    alert = {
        "status": "firing",
        "labels": {
            "alertname": "ExperimentGuardrailBreached",
            "severity": "page",
            "experiment": experiment.name,
            "arm": ",".join(h.arm for h in bad),
        },
        "annotations": {
            "summary": f"experiment {experiment.name} stopped, traffic back to control",
            "description": reason,
        },
        "startsAt": change.ts,
        "fingerprint": f"guardrail-{experiment.name}",
    }
    if publish_alert:
        _send(alert)
    return GuardResult(experiment.name, health, change, alert)


def _send(alert: dict[str, Any]) -> None:
    from events.kafka import ensure_topics, make_producer
    from events.topics import ALERTS

    ensure_topics({ALERTS: 1}, timeout_s=10.0)
    producer = make_producer()
    producer.produce(ALERTS, json.dumps(alert).encode(), key=str(alert["fingerprint"]).encode())
    producer.flush(10.0)
