"""Experiment lifecycle: start, stop and list experiments by editing the file serving watches, and journal every change.

Serving's workers re-read the experiment file when its content changes (every
`RECSYS_SERVING_MOVIE_CHECK_S`, 5 s by default), so a start or stop reaches all workers within
seconds, without a restart. One experiment runs at a time (the first enabled one is active): a
start refuses while another is running unless asked to replace it (which stops it first).
A stop keeps the experiment enabled with `stopped_at` set: routing then sends every user to its
control arm, and the analysis knows where the run ended.

Every change is a `Change` (who, when, what: the action, the experiment before and after, the
reason) appended to `var/experiments/journal.jsonl` and produced to the `recsys.experiments`
topic; a broker that cannot be reached is reported (the local journal still holds the change).
The file is written whole and atomically (a temporary file renamed over it), after validation.
"""

from __future__ import annotations

import getpass
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import yaml

from serving.experiments import Arm, Experiment, ExperimentFile, ExperimentFileError, load_experiments

JOURNAL: Final = Path("experiments") / "journal.jsonl"
"""The local journal of changes, under the var dir."""
HEADER: Final = (
    "# A/B and interleaving experiments of the recommendation service (format: docs/experiments.md).\n"
    "# Written by `recsys experiment start|stop`; hand edits are fine (serving validates before loading).\n"
)


class LifecycleError(ExperimentFileError):
    """A start or stop that cannot be done (unknown experiment, another one running, invalid definition)."""


@dataclass(frozen=True)
class Change:
    """One journalled change of an experiment."""

    ts: str
    by: str
    action: str
    """`start`, `stop` or `replace`."""
    experiment: str
    reason: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    def to_json(self) -> bytes:
        """Compact JSON, the topic's message."""
        return json.dumps(asdict(self), separators=(",", ":"), default=str).encode()


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def who() -> str:
    """The operator running the command (`RECSYS_OPERATOR`, else the login name)."""
    from recsys.settings import StackSettings

    return StackSettings().operator or getpass.getuser()


def parse_arm(spec: str) -> Arm:
    """An arm from `name=control,model=champion[,weight=50,lam=0.5,cost_budget=2,cold_start=self_description]`.

    A missing weight is 1 (equal split; interleaving ignores weights).
    """
    fields: dict[str, Any] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise LifecycleError(f"arm spec {spec!r}: expected key=value pairs separated by commas")
        fields[key.strip()] = None if value.strip().lower() in ("null", "none", "") else value.strip()
    fields.setdefault("weight", 1)
    try:
        return Arm.model_validate(fields)
    except ValueError as exc:
        raise LifecycleError(f"arm spec {spec!r}: {exc}") from exc


class ExperimentBook:
    """The experiment file serving watches, and the journal of changes made to it."""

    def __init__(self, path: Path, var_dir: Path, publish: bool = True) -> None:
        self.path, self.var_dir, self.publish = path, var_dir, publish
        self.last_publish_error: str | None = None

    def read(self) -> ExperimentFile:
        """The current file (empty when it does not exist yet)."""
        if not self.path.exists():
            return ExperimentFile()
        return load_experiments(self.path)[0]

    def get(self, name: str) -> Experiment:
        """One experiment by name; LifecycleError when absent."""
        for experiment in self.read().experiments:
            if experiment.name == name:
                return experiment
        raise LifecycleError(f"no experiment {name!r} in {self.path}")

    def running(self, current: ExperimentFile | None = None) -> Experiment | None:
        """The experiment routing follows now, when it is not stopped (of `current`, else of the file)."""
        active = (self.read() if current is None else current).active
        return active if active is not None and active.stopped_at is None else None

    def start(
        self,
        experiment: Experiment,
        by: str,
        replace: bool = False,
        reason: str = "",
        at: datetime | None = None,
    ) -> Change:
        """Add (or restart) an experiment as the running one; another running one is stopped only with `replace`.

        `at`: the start time recorded (default now). The analysis and the guard rails read log time,
        so a replayed or simulated stream passes its own clock (`recsys experiment start --stream-clock`).
        """
        when = _now() if at is None else at
        current = self.read()
        running = self.running(current)
        if running is not None and running.name != experiment.name and not replace:
            raise LifecycleError(f"experiment {running.name!r} is running: stop it first or pass --replace")
        started = experiment.model_copy(update={"enabled": True, "started_at": when, "stopped_at": None,
                                                "stop_reason": ""})  # fmt: skip
        others = []
        for other in current.experiments:
            if other.name == experiment.name:
                continue
            kept = other
            if (
                other.enabled and other.stopped_at is None
            ):  # only one runs; a replaced one is stopped and kept
                kept = other.model_copy(
                    update={"stopped_at": when, "stop_reason": f"replaced by {experiment.name}"}
                )
            others.append(kept.model_copy(update={"enabled": False}))
        before = next((e for e in current.experiments if e.name == experiment.name), None)
        self._write(ExperimentFile(experiments=(started, *others)))
        return self._journal("start", experiment.name, by, reason, before, started)

    def stop(self, name: str, by: str, reason: str, at: datetime | None = None) -> Change:
        """Send all of the experiment's traffic to its control arm (it stays enabled, with `stopped_at`; `at` as in start)."""
        current = self.read()
        before = self.get(name)
        if before.stopped_at is not None:
            raise LifecycleError(
                f"experiment {name!r} was already stopped at {before.stopped_at.isoformat()}"
            )
        after = before.model_copy(update={"stopped_at": _now() if at is None else at, "stop_reason": reason})
        self._write(
            ExperimentFile(experiments=tuple(after if e.name == name else e for e in current.experiments))
        )
        return self._journal("stop", name, by, reason, before, after)

    def history(self, name: str | None = None) -> list[dict[str, Any]]:
        """Journalled changes, oldest first (of one experiment when named)."""
        path = self.var_dir / JOURNAL
        if not path.exists():
            return []
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [r for r in rows if name is None or r["experiment"] == name]

    # --- internals ---------------------------------------------------------------------------

    def _write(self, experiments: ExperimentFile) -> None:
        # Validate the whole file as serving will, then replace it atomically: a reader never sees half a file.
        doc = {
            "experiments": [e.model_dump(mode="json", exclude_defaults=True) for e in experiments.experiments]
        }
        text = HEADER + yaml.safe_dump(doc, sort_keys=False)
        ExperimentFile.model_validate(yaml.safe_load(text))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, self.path)

    def _journal(
        self,
        action: str,
        name: str,
        by: str,
        reason: str,
        before: Experiment | None,
        after: Experiment | None,
    ) -> Change:
        change = Change(
            ts=_now().isoformat(), by=by, action=action, experiment=name, reason=reason,
            before=before.model_dump(mode="json") if before else None,
            after=after.model_dump(mode="json") if after else None,
        )  # fmt: skip
        path = self.var_dir / JOURNAL
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as out:
            out.write(change.to_json() + b"\n")
        if self.publish:
            self._publish(change)
        return change

    def _publish(self, change: Change) -> None:
        from events.kafka import ensure_topics, make_producer
        from events.topics import EXPERIMENTS

        try:
            ensure_topics({EXPERIMENTS: 1}, timeout_s=10.0)
            producer = make_producer()
            producer.produce(EXPERIMENTS, change.to_json(), key=change.experiment.encode())
            left = producer.flush(10.0)
            self.last_publish_error = f"{left} message(s) not delivered" if left else None
        except Exception as exc:  # the local journal has it; say so rather than fail the change
            self.last_publish_error = f"{type(exc).__name__}: {exc}"
