"""`recsys monitor skew`: served feature rows against the champion's training rows, feature by feature.

Serving logs a uniform sample of the rows its ranker scored (`serving.feature_log`); training
keeps a uniform sample of the rows it learned from beside the model (`ranking.reference_sample`).
Both hold the same `ranking.transforms.FEATURE_COLUMNS`, so for each feature this computes the
PSI of the served values on bins of the training values (`monitoring.psi`), both means and the
mean shift in training standard deviations; `skewed` = PSI above `skew_psi_threshold`. The
model's score is compared too (row `score`): skew in any input shows up in its output.
A result goes to `skew/<stamp>.json` and `skew/latest.json` (format `monitoring.layout.SKEW_JSON`),
which the exporter turns into the gauges `recsys_skew_psi` and `recsys_skew_detected`. How to read
it and what the known differences mean: docs/skew.md.
"""

from __future__ import annotations

import json
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
from ranking.transforms import FEATURE_COLUMNS

SCORE: Final = "score"
"""Column of the model's relevance score, on both sides."""
_ALS = (
    "ALS fits differ: per training cut-off on a 200,000-user sample, serving's index on everyone at the data end; "
    "measured PSI 0.03-0.07, the sample alone 0.06 (docs/skew.md, suspect a)"
)
_FROZEN = (
    "frozen at the index build (training's data end) while popularity features are live: the gap grows with "
    "the index's age (docs/skew.md, suspect b)"
)
_LIVE_POP = (
    "live, while popularity candidates come from the index frozen at training: an index older than ~6 h moves "
    "it among the candidates (PSI 0.7-1 at 24 h; docs/skew.md, suspect b)"
)
_CLOCK = (
    "time since an event: serving's clock is later than every training cut-off (by three label horizons or more), "
    "so it shifts with the model's age: drift, not a computation skew"
)
_ITEM = "item-item fit on more history in serving's index than in the cut-off indexes: similarities grow with data"
_CUMULATIVE = "cumulative count: grows between the training cut-offs and serving time"
NOTES: Final[dict[str, str]] = {
    "score_als": _ALS,
    "sim_als_last": _ALS,
    "rank_als": _ALS,
    "rank_pop": _FROZEN
    + "; its own shares cannot move (ranks 1..k), the staleness shows in the live features",
    "score_pop": _FROZEN,
    "movie_popularity__plays_1h": _LIVE_POP,
    "movie_popularity__plays_24h": _LIVE_POP,
    "movie_popularity__plays_7d": _LIVE_POP,
    "plays_trend_24h_7d": _LIVE_POP,
    "plays_trend_1h_24h": _LIVE_POP,
    "user_days_since_active": _CLOCK,
    "user_account_age_days": _CLOCK,
    "movie_days_in_stream": _CLOCK,
    "movie_age_years": _CLOCK,
    "score_item": _ITEM,
    "sim_item_last": _ITEM,
    "user_watch_stats__watch_count_total": _CUMULATIVE,
    "user_rating_stats__rating_count": _CUMULATIVE,
    "movie_rating_stats__rating_count": _CUMULATIVE,
}
"""Known, explained differences between training and serving, per feature (the rows' `note`; measured in docs/skew.md).

A note explains why a row may be flagged; it does not silence it: a PSI far beyond what the
note's figures describe is still worth a look.
"""


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


@dataclass(frozen=True)
class SkewResult:
    """A skew run: which version, how many rows each side, the threshold and one row per feature."""

    computed_at: str
    model_version: int | None
    served_rows: int
    train_rows: int
    threshold: float
    rows: list[SkewRow]

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
    dataset = ds.dataset(files, format="parquet")
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
    train: pd.DataFrame, served: pd.DataFrame, threshold: float, notes: dict[str, str] | None = None
) -> list[SkewRow]:
    """One row per model feature (and the score) present on both sides."""
    notes = NOTES if notes is None else notes
    rows = []
    for name in (*FEATURE_COLUMNS, SCORE):
        if name not in train or name not in served:
            continue
        c = compare_column(train[name].to_numpy("float64"), served[name].to_numpy("float64"))
        note = notes.get(name, "")
        if c.nan_served > c.nan_train + 0.2:  # the usual cause of a skewed row: a feature serving cannot read
            note = "; ".join(filter(None, [note, f"missing in {c.nan_served:.0%} of served rows, "
                                                  f"{c.nan_train:.0%} in training"]))  # fmt: skip
        rows.append(SkewRow(name, round(c.psi, 6), c.mean_train, c.mean_served, round(c.mean_shift, 4),
                            c.psi > threshold, note))  # fmt: skip
    return rows


def run_skew(settings: MonitorSettings, hours: float = 24.0) -> SkewResult:
    """Compare the last `hours` of the champion's served rows with its training reference; write the result."""
    version, model_dir = champion_model_dir(settings)
    train = read_reference(model_dir, version)
    layout = MonitorLayout(settings.var_dir)
    served = read_served(layout.feature_log, datetime.now(UTC) - timedelta(hours=hours), version)
    result = SkewResult(
        computed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        model_version=version,
        served_rows=len(served),
        train_rows=len(train),
        threshold=settings.skew_psi_threshold,
        rows=compare(train, served, settings.skew_psi_threshold),
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
        title=f"train/serve skew of v{result.model_version}: {result.served_rows:,} served rows vs "
        f"{result.train_rows:,} training rows (PSI threshold {result.threshold:g})"
    )
    for col in ("feature", "PSI", "mean train", "mean served", "shift (sd)", "skewed", "note"):
        table.add_column(col, justify="right" if col not in ("feature", "note") else "left")

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.4g}"

    for r in sorted(result.rows, key=lambda r: -r.psi):
        table.add_row(r.feature, f"{r.psi:.3f}", num(r.mean_train), num(r.mean_served), f"{r.mean_shift:+.2f}",
                      "yes" if r.skewed else "", r.note, style="red" if r.skewed else None)  # fmt: skip
    console.print(table)
    console.print(
        f"{len(result.skewed)} of {len(result.rows)} features skewed: {', '.join(result.skewed) or 'none'}"
    )
