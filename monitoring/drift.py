"""`recsys monitor drift`: current profiles against the champion's training reference, per column a Hellinger score.

The current window is the last `hours` whole hours of log time, the newest being the hour of the
latest event in the offline store (not the wall clock, so a replayed old log is judged in its own
time); whole hours, so the hourly profiles on disk are whole hours. The feature log's window ends at its own
newest row. Drift is decided by the effect size (Hellinger > `drift_threshold`), never by a
p-value alone (monitoring.scores). The result goes to `drift/<stamp>.json` and
`drift/latest.json` (format: monitoring.layout.DRIFT_JSON), which the exporter serves as gauges.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from monitoring.layout import MonitorLayout
from monitoring.profiles import (
    EVENT_COLUMNS,
    SCORE,
    SETTLE_S,
    Kind,
    column_rows,
    event_frames,
    feature_columns,
    hourly_profiles,
    latest_event,
    profile_frames,
    read_feature_log,
    read_profile,
    window_ids,
    write_profile,
)
from monitoring.reference import Champion, events_window, find_champion, reference_sample
from monitoring.schema import SchemaChange, metadata_changes, stream_changes
from monitoring.scores import score_column
from monitoring.settings import MonitorSettings


@dataclass(frozen=True)
class DriftRow:
    """One column's drift (a DRIFT_JSON row; `rows`/`reference_rows` added for the reader)."""

    profile: str
    feature: str
    kind: Kind
    score: float
    p_value: float | None
    drifted: bool
    rows: int
    reference_rows: int
    metric: str = "hellinger"


@dataclass(frozen=True)
class Skipped:
    """A profile or column not scored, and why (no feature log, no champion, too few values)."""

    profile: str
    feature: str | None
    reason: str


@dataclass
class DriftResult:
    """What one drift run found; `to_json` gives the DRIFT_JSON document."""

    threshold: float
    window: tuple[pd.Timestamp, pd.Timestamp] | None
    reference: dict[str, Any]
    rows: list[DriftRow] = field(default_factory=list)
    schema: list[SchemaChange] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    computed_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def drifted(self) -> list[DriftRow]:
        """The rows above the threshold."""
        return [r for r in self.rows if r.drifted]

    def to_json(self) -> dict[str, Any]:
        """The document written to drift/latest.json."""
        window = None if self.window is None else {"start": self.window[0].isoformat(), "end": self.window[1].isoformat()}  # fmt: skip
        return {
            "computed_at": self.computed_at.isoformat(),
            "reference": self.reference,
            "window": window,
            "threshold": self.threshold,
            "rows": [asdict(r) for r in self.rows],
            "schema": [c.to_dict() for c in self.schema],
            "skipped": [asdict(s) for s in self.skipped],
        }


def compare(
    profile: str, current: Any, reference: Any, kinds: dict[str, Kind], threshold: float, min_rows: int
) -> tuple[list[DriftRow], list[Skipped]]:
    """Score every column of `kinds` present in both profile views; too few values on a side skips it."""
    rows: list[DriftRow] = []
    skipped: list[Skipped] = []
    for column, kind in kinds.items():
        n, n_ref = column_rows(current, column), column_rows(reference, column)
        if min(n, n_ref) < min_rows:
            skipped.append(Skipped(profile, column, f"{n} current, {n_ref} reference values (< {min_rows})"))
            continue
        got = score_column(kind, current, reference, column)
        if got is None or math.isnan(got.score):
            skipped.append(Skipped(profile, column, "no distribution to compare"))
            continue
        rows.append(
            DriftRow(profile, column, kind, round(got.score, 6), got.p_value, got.score > threshold, n, n_ref)
        )
    return rows, skipped


def _events(
    settings: MonitorSettings, champion: Champion, hours: float, result: DriftResult, layout: MonitorLayout
) -> None:
    offline = settings.var_dir / "offline"
    end = latest_event(offline)
    if end is None:
        result.skipped.append(Skipped("events", None, f"no events landed under {offline}"))
        return
    # The last `hours` whole hours, the newest being the hour of the latest event.
    start = (end.floor("h") + pd.Timedelta(hours=1) - pd.Timedelta(hours=hours)).floor("h")
    end = end + pd.Timedelta(microseconds=1)  # the newest event is inside the window
    result.window = (start, end)
    settled = end - pd.Timedelta(seconds=SETTLE_S)
    current = hourly_profiles(event_frames(offline, start, end, settled), layout.profiles / "events")
    ref = events_window(champion, start, settings.drift_reference_hours)
    cached = layout.profiles / "reference" / f"events-v{champion.version}.bin"
    if champion.data_end is not None and cached.is_file():
        reference = read_profile(cached)
    elif champion.data_end is not None:
        reference = profile_frames(event_frames(offline, ref.start, ref.end, settled).values())
        if reference is not None:
            write_profile(reference, cached)
    else:  # the preceding period: the same whole hours as any window, stored beside them
        reference = hourly_profiles(
            event_frames(offline, ref.start, ref.end, settled), layout.profiles / "events"
        )
    result.reference |= {"source": ref.source, "window": {"start": ref.start.isoformat(), "end": ref.end.isoformat()}}  # fmt: skip
    result.reference["rows"] += column_rows(reference, "minutes_watched")
    if reference is None or current is None:
        why = "no events in the reference window" if reference is None else "no events in the window"
        result.skipped.append(Skipped("events", None, why))
    else:
        rows, skipped = compare("events", current, reference, EVENT_COLUMNS, settings.drift_threshold, settings.drift_min_rows)  # fmt: skip
        result.rows += rows
        result.skipped += skipped
    result.schema += stream_changes(offline, (start, end), (ref.start, ref.end))
    movies, users = window_ids(offline, start, end, settings.schema_sample)
    changes, note = metadata_changes(settings.meta_url, movies, users)
    result.schema += changes
    if note:
        result.skipped.append(Skipped("schema", "metadata", note))


def _served(
    settings: MonitorSettings, champion: Champion, hours: float, result: DriftResult, layout: MonitorLayout
) -> None:
    sample = reference_sample(champion)
    if champion.version is None or sample is None:
        why = champion.note or f"champion v{champion.version} has no reference sample"
        result.skipped += [Skipped(p, None, why) for p in ("features", "scores")]
        return
    log = read_feature_log(layout.feature_log, champion.version)
    if log.empty:
        result.skipped += [Skipped(p, None, f"no feature log rows of v{champion.version}") for p in ("features", "scores")]  # fmt: skip
        return
    end = log["ts"].max()
    log = log[log["ts"] >= (end.floor("h") + pd.Timedelta(hours=1) - pd.Timedelta(hours=hours)).floor("h")]
    columns = [c for c in feature_columns(log) if c in set(feature_columns(sample))]
    result.reference["rows"] += len(sample)
    for profile, wanted in (("features", columns), ("scores", [SCORE])):
        cols = [c for c in wanted if c in log.columns and c in sample.columns]
        current = hourly_profiles({profile: log[["ts", *cols]]}, layout.profiles / profile)
        path = layout.profiles / "reference" / f"{profile}-v{champion.version}.bin"
        reference = read_profile(path) if path.is_file() else profile_frames([sample[cols]])
        if reference is not None and not path.is_file():
            write_profile(reference, path)
        kinds: dict[str, Kind] = dict.fromkeys(cols, "numeric")
        rows, skipped = compare(profile, current, reference, kinds, settings.drift_threshold, settings.drift_min_rows)  # fmt: skip
        result.rows += rows
        result.skipped += skipped


def run_drift(
    settings: MonitorSettings, hours: float = 24.0, champion: Champion | None = None
) -> DriftResult:
    """Profile the window, score it against the reference, check schemas, write the result files; return it.

    `champion` is looked up in the registry unless given (a benchmark or test names its own).
    """
    layout = MonitorLayout(settings.var_dir)
    champion = champion or find_champion(settings.var_dir)
    result = DriftResult(settings.drift_threshold, None, {"model_version": champion.version, "rows": 0,
                         "notes": [champion.note] if champion.note else []})  # fmt: skip
    _events(settings, champion, hours, result, layout)
    _served(settings, champion, hours, result, layout)
    write_result(result, layout)
    return result


def write_result(result: DriftResult, layout: MonitorLayout) -> None:
    """`drift/<stamp>.json` and `drift/latest.json`, each replaced atomically."""
    layout.drift.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result.to_json(), indent=1)
    stamp = result.computed_at.strftime("%Y%m%dT%H%M%S")
    for name in (f"{stamp}.json", "latest.json"):
        tmp = layout.drift / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(layout.drift / name)


def print_drift(result: DriftResult, json_out: bool = False) -> None:
    """The result as a table (drifted rows first) with schema changes and skipped checks, or as JSON."""
    if json_out:
        print(json.dumps(result.to_json(), indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 110))  # feature names are long: never cut them
    window = "no window" if result.window is None else f"{result.window[0]:%Y-%m-%d %H:%M} .. {result.window[1]:%Y-%m-%d %H:%M} UTC"  # fmt: skip
    ref = result.reference
    table = Table(
        title=f"Drift {window} against {ref.get('source', 'the reference')} (threshold {result.threshold:g})"
    )
    for name in ("profile", "feature", "kind", "hellinger", "p-value", "rows", "ref rows", "drifted"):
        table.add_column(
            name, justify="right" if name in {"hellinger", "p-value", "rows", "ref rows"} else "left"
        )
    for r in sorted(result.rows, key=lambda r: (not r.drifted, -r.score)):
        p = "" if r.p_value is None else f"{r.p_value:.2g}"
        table.add_row(r.profile, r.feature, r.kind, f"{r.score:.3f}", p, str(r.rows), str(r.reference_rows),
                      "[bold red]DRIFT[/]" if r.drifted else "ok")  # fmt: skip
    console.print(table)
    for c in result.schema:
        console.print(f"schema {c.source}: {c.field} {c.change} ({c.detail})")
    for s in result.skipped:
        console.print(f"[dim]skipped {s.profile}{'/' + s.feature if s.feature else ''}: {s.reason}[/]")
    for note in ref.get("notes", []):
        console.print(f"[dim]note: {note}[/]")
