"""The demo's cold-start step: `recsys evaluate --cold-start` on the demo's history, new users judged on their first day."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from recsys.demo import DemoContext

FIRST_DAYS = 1.0
"""Label window after sign-up: the demo's history is a few days long, a first week does not fit."""
PRIOR_HOURS = 6.0
"""The cut-off comes this long after the history starts, so popularity has plays to count before it."""


def cold_start_step(ctx: DemoContext) -> None:
    """Popularity vs the self-description policies for the users who signed up during the demo's history."""
    import pandas as pd

    from ingestion.settings import get_ingest_settings
    from ranking import columns as C  # noqa: N812
    from ranking.interactions import load_sessions
    from recsys.cold_start_eval import REPORT, run_cold_start_evaluation, summary
    from recsys.settings import get_settings

    var = get_settings().var
    start = load_sessions(var / "offline")[C.START_TS].min()
    cutoff = (start + pd.Timedelta(hours=PRIOR_HOURS)).floor("s").isoformat()
    meta_url = ctx.metadata_url or get_ingest_settings().meta_url
    result = run_cold_start_evaluation(var, Path("reports"), meta_url, progress=lambda m: None,
                                       cutoff=cutoff, days=FIRST_DAYS)  # fmt: skip
    lines = summary(result)
    ctx.facts["cold start (new users' first day)"] = "; ".join(line.split("  recall")[0] for line in lines)
    ctx.where["cold-start report"] = f"reports/{REPORT}"
