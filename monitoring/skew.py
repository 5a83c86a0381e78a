"""`recsys monitor skew`: served feature rows against the training path, value by value, and against training's rows.

Two checks per feature. **Log and recompute** (`monitoring.skew_replay`, the decision for every
feature Feast provides or the transforms derive): a seeded sample of the served rows is rebuilt
through training's point-in-time path at the feature time serving used, and `mismatch_share`
is the share of rows whose values differ; `skewed` = above `skew_mismatch_threshold`.
**Distribution** (information for those, the decision for the candidate columns and the score,
which the replay takes from the log): the PSI of the served values on bins of the training
reference sample (`monitoring.psi`), both means and the mean shift in training standard
deviations; `skewed` = PSI above `skew_psi_threshold`. When the replay cannot run (no Feast
registry or offline store) every row is decided by PSI and the result's `replay` says why.
A result goes to `skew/<stamp>.json` and `skew/latest.json` (format `monitoring.layout.SKEW_JSON`),
which the exporter turns into the gauges `recsys_skew_psi`, `recsys_skew_mismatch_share` and
`recsys_skew_detected`. How to read it and what the known differences mean: docs/skew.md.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pyarrow.dataset as ds

from core.errors import RecsysError
from core.layout import REFERENCE_SAMPLE
from monitoring.layout import MonitorLayout
from monitoring.psi import compare_column
from monitoring.settings import MonitorSettings
from monitoring.skew_notes import NOTES
from monitoring.skew_replay import ReplayUnavailableError, ValueMatch, replay_served
from ranking.transforms import FEATURE_COLUMNS

log = logging.getLogger(__name__)

SCORE: Final = "score"
"""Column of the model's relevance score, on both sides."""


class SkewInputError(RecsysError):
    """The skew check lacks an input: no champion, no served rows for it, or no reference sample."""

    http_status = 404


@dataclass(frozen=True)
class SkewRow:
    """One feature's skew (a row of `SKEW_JSON`)."""

    feature: str
    psi: float
    mean_train: float | None
    mean_served: float | None
    mean_shift: float
    """In training standard deviations."""
    skewed: bool
    note: str
    mismatch_share: float | None = None
    """Share of replayed rows whose served value differs from the training path's (None: not recomputed)."""
    mean_replayed: float | None = None
    """Mean of the training path's values over the replayed rows."""
    written_after: float | None = None
    """Share of the differing rows that read offline data written after the answer (not online yet then)."""


@dataclass(frozen=True)
class SkewResult:
    """A skew run: which version, rows on each side, the thresholds, whether the replay ran, one row per feature."""

    computed_at: str
    model_version: int | None
    served_rows: int
    train_rows: int
    threshold: float
    rows: list[SkewRow]
    mismatch_threshold: float = 0.05
    replayed_rows: int = 0
    replay: str = "not run"
    """`ok`, or why the replay did not run (then every row is decided by PSI)."""

    @property
    def skewed(self) -> list[str]:
        """Features above the threshold."""
        return [r.feature for r in self.rows if r.skewed]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (`monitoring.layout.SKEW_JSON`); a mean of a side without values is null."""
        return asdict(self)


def champion_model_dir(settings: MonitorSettings) -> tuple[int, Path]:
    """The champion's version and a verified local copy of its files (the registry's download cache)."""
    from ranking.registry import CHAMPION, ModelRegistry
    from ranking.settings import RankSettings

    registry = ModelRegistry.open(RankSettings(var_dir=settings.var_dir))
    version = registry.aliases().get(CHAMPION)
    if version is None:
        raise SkewInputError(
            f"no champion in the model registry under {settings.var_dir}: nothing to compare with"
        )
    return version, registry.download(version)


def read_reference(model_dir: Path, version: int | None = None) -> pd.DataFrame:
    """The model's training reference sample (feature columns, score, label)."""
    path = model_dir / REFERENCE_SAMPLE
    if not path.is_file():
        raise SkewInputError(
            f"v{version} has no training reference sample ({REFERENCE_SAMPLE}): it was trained before "
            "`recsys train` kept one (or is a baseline policy); retrain to check its skew"
        )
    return pd.read_parquet(path)


def read_served(folder: Path, since: datetime, version: int | None) -> pd.DataFrame:
    """Feature log rows logged at or after `since` by the given model version (all versions when None)."""
    days = pd.date_range(since.date(), datetime.now(UTC).date(), freq="D")
    files = [
        str(f)
        for day in days
        for f in sorted((folder / f"date={day:%Y-%m-%d}").glob("*.parquet"))  # temp files end in .tmp
    ]
    if not files:
        raise SkewInputError(
            f"no served feature log under {folder} since {since:%Y-%m-%d %H:%M} UTC: serving writes one when "
            "RECSYS_SERVING_FEATURE_LOG_RATE > 0 and the model answers requests"
        )
    # The newest file's schema: older files lack later columns (`as_of`), which read as null.
    newest = max(files, key=lambda f: Path(f).stat().st_mtime)
    dataset = ds.dataset(files, format="parquet", schema=ds.dataset(newest, format="parquet").schema)
    expr = ds.field("ts") >= pd.Timestamp(since)
    if version is not None:
        expr = expr & (ds.field("model_version") == version)
    frame: pd.DataFrame = dataset.to_table(filter=expr).to_pandas()
    if frame.empty:
        seen = sorted(set(dataset.to_table(columns=["model_version"]).column(0).to_pylist()))
        raise SkewInputError(
            f"the feature log under {folder} has no rows of v{version} since {since:%Y-%m-%d %H:%M} UTC "
            f"(versions logged: {', '.join(f'v{v}' for v in seen) or 'none'})"
        )
    return frame


def compare(
    train: pd.DataFrame,
    served: pd.DataFrame,
    threshold: float,
    notes: dict[str, str] | None = None,
    matches: dict[str, ValueMatch] | None = None,
    mismatch_threshold: float = 0.05,
) -> list[SkewRow]:
    """One row per model feature (and the score) present on both sides; a feature in `matches` is decided by it."""
    notes = NOTES if notes is None else notes
    matches = matches or {}
    rows = []
    for name in (*FEATURE_COLUMNS, SCORE):
        if name not in train or name not in served:
            continue
        c = compare_column(train[name].to_numpy("float64"), served[name].to_numpy("float64"))
        note = notes.get(name, "")
        if c.nan_served > c.nan_train + 0.2:  # the usual cause of a skewed row: a feature serving cannot read
            note = "; ".join(filter(None, [note, f"missing in {c.nan_served:.0%} of served rows, "
                                                  f"{c.nan_train:.0%} in training"]))  # fmt: skip
        m = matches.get(name)
        if m is None:
            rows.append(SkewRow(name, round(c.psi, 6), c.mean_train, c.mean_served, round(c.mean_shift, 4),
                                c.psi > threshold, note))  # fmt: skip
            continue
        note = f"PSI: {note}" if note else ""  # the notes explain the distribution, not this row's decision
        if (
            m.mismatch_share > 0 and m.missing_offline > m.mismatch_share / 2
        ):  # Feast's offline TTL, or a lost row
            note = "; ".join(filter(None, [f"replay: {m.missing_offline:.0%} of rows have a value online and none "
                                           "offline (the offline join applies the view's ttl, the online read does "
                                           "not; or the offline store lacks the row)", note]))  # fmt: skip
        if m.written_after > 0.5:
            note = "; ".join(filter(None, [f"replay: {m.written_after:.0%} of the differing rows read offline data "
                                           "written after the answer (not online yet when serving answered: "
                                           "ingestion lag, not a computation difference)", note]))  # fmt: skip
        rows.append(SkewRow(name, round(c.psi, 6), c.mean_train, c.mean_served, round(c.mean_shift, 4),
                            m.mismatch_share > mismatch_threshold, note, round(m.mismatch_share, 6),
                            m.mean_replayed, round(m.written_after, 6)))  # fmt: skip
    return rows


def run_skew(settings: MonitorSettings, hours: float = 24.0) -> SkewResult:
    """Compare the last `hours` of the champion's served rows with its training reference; write the result."""
    version, model_dir = champion_model_dir(settings)
    train = read_reference(model_dir, version)
    layout = MonitorLayout(settings.var_dir)
    served = read_served(layout.feature_log, datetime.now(UTC) - timedelta(hours=hours), version)
    matches: dict[str, ValueMatch] = {}
    replayed, replay = 0, "ok"
    try:
        done = replay_served(
            settings.var_dir, settings.redis_url, model_dir, served, settings.skew_replay_rows
        )
        matches, replayed = done.matches, done.rows
    except ReplayUnavailableError as exc:
        replay = f"not run: {exc}; every row decided by PSI"
    except Exception as exc:  # a broken offline store must not take the distribution check with it
        log.warning("skew replay failed", exc_info=True)
        replay = f"failed: {type(exc).__name__}: {exc}; every row decided by PSI"
    result = SkewResult(
        computed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        model_version=version,
        served_rows=len(served),
        train_rows=len(train),
        threshold=settings.skew_psi_threshold,
        rows=compare(
            train, served, settings.skew_psi_threshold, None, matches, settings.skew_mismatch_threshold
        ),
        mismatch_threshold=settings.skew_mismatch_threshold,
        replayed_rows=replayed,
        replay=replay,
    )
    write_result(result, layout.skew)
    return result


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such a number becomes null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write_result(result: SkewResult, folder: Path) -> Path:
    """Write `<stamp>.json` and replace `latest.json` (atomically: a scrape never reads half a file)."""
    data = result.to_dict()
    data["rows"] = [{k: _finite(v) for k, v in row.items()} for row in data["rows"]]
    text = json.dumps(data, indent=1, allow_nan=False)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.fromisoformat(result.computed_at).strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"{stamp}.json"
    path.write_text(text)
    tmp = folder / ".latest.json.tmp"
    tmp.write_text(text)
    tmp.replace(folder / "latest.json")
    return path


def print_skew(result: SkewResult, json_out: bool = False) -> None:
    """Print a result as a rich table (skewed rows in red) or as its JSON."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if json_out:
        console.print_json(json.dumps(result.to_dict(), default=str))
        return
    table = Table(
        title=f"train/serve skew of v{result.model_version}: {result.served_rows:,} served rows "
        f"({result.replayed_rows:,} recomputed through the training path) vs {result.train_rows:,} training rows "
        f"(mismatch threshold {result.mismatch_threshold:g}, PSI threshold {result.threshold:g})"
    )
    for col in ("feature", "mismatch", "PSI", "mean train", "mean served", "mean replayed", "shift (sd)",
                "skewed", "note"):  # fmt: skip
        table.add_column(col, justify="right" if col not in ("feature", "note") else "left")

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.4g}"

    def order(r: SkewRow) -> tuple[bool, float, float]:
        return (not r.skewed, -(r.mismatch_share if r.mismatch_share is not None else -1.0), -r.psi)

    for r in sorted(result.rows, key=order):
        by = "mismatch" if r.mismatch_share is not None else "PSI"
        table.add_row(r.feature, "-" if r.mismatch_share is None else f"{r.mismatch_share:.3f}", f"{r.psi:.3f}",
                      num(r.mean_train), num(r.mean_served), num(r.mean_replayed), f"{r.mean_shift:+.2f}",
                      f"yes ({by})" if r.skewed else "", r.note, style="red" if r.skewed else None)  # fmt: skip
    console.print(table)
    recomputed = [r for r in result.rows if r.mismatch_share is not None]
    by_psi = [r for r in result.rows if r.mismatch_share is None]
    console.print(f"replay: {result.replay}")
    console.print(
        f"log and recompute: {sum(r.skewed for r in recomputed)} of {len(recomputed)} recomputed features differ "
        f"(mismatch > {result.mismatch_threshold:g}): {', '.join(r.feature for r in recomputed if r.skewed) or 'none'}"
        f"; {sum(r.skewed and (r.written_after or 0) > 0.5 for r in recomputed)} of them mostly on rows that read "
        "offline data written after the answer (ingestion lag)"
    )
    console.print(
        f"distribution: {sum(r.skewed for r in by_psi)} of {len(by_psi)} PSI-decided rows skewed: "
        f"{', '.join(r.feature for r in by_psi if r.skewed) or 'none'}; PSI alone would flag "
        f"{sum(r.psi > result.threshold for r in result.rows)} of {len(result.rows)}"
    )
    console.print(
        f"{len(result.skewed)} of {len(result.rows)} features skewed: {', '.join(result.skewed) or 'none'}"
    )
