"""The demo's monitoring step: the online metrics job over the demo's streams, drift, skew and the HTML dashboard."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from recsys.demo import DemoContext


def monitor_step(ctx: DemoContext) -> None:
    """Run `recsys monitor stream|drift|skew|report` once each and put the closed loop's figures in the summary."""
    from monitoring.drift import run_drift
    from monitoring.layout import MonitorLayout
    from monitoring.report import write_report
    from monitoring.settings import get_monitor_settings
    from monitoring.skew import run_skew
    from monitoring.stream import run_stream
    from monitoring.tables import read_windows

    settings = get_monitor_settings()
    # Until idle, then drain: the demo's streams are finite, so every window is closed at the end.
    summary = run_stream(settings, until_idle_s=3.0, serve_metrics=False)
    windows = read_windows(MonitorLayout(settings.var_dir))
    closed = windows[windows["path"] != "unknown"]  # answered by our API (provenance matched)
    legacy = windows[windows["path"] == "unknown"]  # the open-loop history's trending lists
    ctx.facts["online metrics job"] = summary.describe()

    def figures(rows: pd.DataFrame) -> str:
        t = rows.sum(numeric_only=True)
        ok = float(t["ok"]) or float("nan")
        return (
            f"{int(t['requests']):,} lists, availability {t['available'] / max(1, t['requests']):.1%}, "
            f"hit rate {t['hits'] / ok:.1%}, licence cost {t['list_cost_sum'] / ok * 1000:,.0f} USD per 1,000 lists "
            f"served, {t['hit_cost_sum'] / ok * 1000:,.0f} USD per 1,000 from the watches they led to"
        )

    ctx.facts["closed loop, as the monitor saw it"] = figures(closed)
    if ctx.loop_taken is not None and ctx.loop_taken[1]:
        taken, answered = ctx.loop_taken
        ctx.facts["closed loop, as the simulator recorded it"] = (
            f"{taken:,} of {answered:,} answered lists taken ({taken / answered:.1%}); the monitor's hit rate is "
            "higher by the users whose own choice happened to be listed"
        )
    if len(legacy):
        ctx.facts["open-loop history (legacy trending list)"] = figures(legacy)
    try:
        drift = run_drift(settings, hours=24.0)
        names = ", ".join(f"{r.profile}.{r.feature}" for r in drift.drifted) or "none"
        ctx.facts["drift"] = f"{len(drift.rows)} columns scored, drifted: {names}"
    except Exception as exc:  # the demo goes on to the report, which shows the reason too
        ctx.facts["drift"] = f"not computed: {exc}"
    try:
        skew = run_skew(settings, hours=24.0)
        ctx.facts["train/serve skew"] = (
            f"{len(skew.rows)} features, {skew.served_rows:,} served rows vs {skew.train_rows:,} training rows; "
            f"skewed: {', '.join(skew.skewed) or 'none'}"
        )
    except Exception as exc:
        ctx.facts["train/serve skew"] = f"not computed: {exc}"
    path = write_report(settings)
    ctx.where["monitoring dashboard"] = f"{path} (file://{path.resolve()})"
    ctx.where["online metrics (Parquet)"] = str(MonitorLayout(settings.var_dir).windows)
    ctx.where["monitor again"] = "recsys monitor stream | drift | skew | report"
