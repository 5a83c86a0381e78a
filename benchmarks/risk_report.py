"""The risk benchmark's plots and printed lines, from its JSON record (`benchmarks/risk.py`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from monitoring.fairness import GROUPINGS

TITLES = {"age_group": "age group", "gender": "gender", "occupation_group": "occupation group"}


def fmt(value: Any, digits: int = 4) -> str:
    """A figure for the printed lines (None / NaN as –)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _err(rows: list[dict[str, Any]], value: str, ci: str) -> tuple[Any, Any]:
    v = np.array([r[value] if r[value] is not None else np.nan for r in rows], dtype=float)
    low = np.array([r[ci][0] if r[ci][0] is not None else np.nan for r in rows], dtype=float)
    high = np.array([r[ci][1] if r[ci][1] is not None else np.nan for r in rows], dtype=float)
    return v, np.vstack([np.maximum(v - low, 0), np.maximum(high - v, 0)])


def plot_online(record: dict[str, Any], path: Path) -> Path:
    """Closed-loop hit rate per group (95% intervals clustered by user), one marker per arm."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), gridspec_kw={"width_ratios": [6, 2, 6]}, sharey=True)
    arms = record["arms"]
    for ax, grouping in zip(axes, GROUPINGS, strict=True):
        for j, (share, arm) in enumerate(arms.items()):
            rows = arm["figures"]["online_groups"][grouping]
            order = [r["group"] for r in arms["0"]["figures"]["online_groups"][grouping]]
            rows = sorted(rows, key=lambda r: order.index(r["group"]) if r["group"] in order else 99)
            rate = [{"v": r["rate"], "ci": [r["ci_low"], r["ci_high"]]} for r in rows]
            v, err = _err(rate, "v", "ci")
            x = np.arange(len(rows)) + (j - (len(arms) - 1) / 2) * 0.2
            ax.errorbar(x, v, yerr=err, fmt="o" if j == 0 else "s", capsize=3,
                        label=f"exploration share {share}")  # fmt: skip
            ax.set_xticks(np.arange(len(rows)), [f"{r['group']}\n({r['users']:,})" for r in rows], fontsize=7)
        overall = arms["0"]["figures"]["hit_rate"]["rate"]
        ax.axhline(overall, color="gray", lw=0.8, ls="--")
        ax.set_title(TITLES[grouping])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("online hit rate (listed movie watched within 30 min)")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle("Closed-loop hit rate by user group (users in brackets; dashed: all users, share 0)")
    fig.tight_layout()
    return _save(fig, plt, path)


def plot_offline(record: dict[str, Any], path: Path) -> Path:
    """NDCG@20 per group on the test cut-off: the LambdaRank under its cost rule and the served champion."""
    plt = _plt()
    off = record["arms"]["0"]["offline"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), gridspec_kw={"width_ratios": [6, 2, 6]}, sharey=True)
    keys = [k for k in ("lambdarank", "champion") if k in off["models"]]
    for ax, grouping in zip(axes, GROUPINGS, strict=True):
        rows = off["groups"][grouping]
        for j, key in enumerate(keys):
            v, err = _err([r[key] for r in rows], "ndcg20", "ndcg20_ci")
            x = np.arange(len(rows)) + (j - (len(keys) - 1) / 2) * 0.2
            ax.errorbar(
                x, v, yerr=err, fmt="o" if j == 0 else "s", capsize=3, label=f"{key}: {off['models'][key]}"
            )
        ax.set_xticks(np.arange(len(rows)), [f"{r['group']}\n({r['users']:,})" for r in rows], fontsize=7)
        ax.set_title(TITLES[grouping])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("NDCG@20 on the held-out split")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle("Offline quality by user group (test cut-off; users in brackets; 95% intervals)")
    fig.tight_layout()
    return _save(fig, plt, path)


def plot_exposure(record: dict[str, Any], path: Path) -> Path:
    """Share of recommendation slots vs share of watches per popularity decile."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.2))
    arms = record["arms"]
    rows = arms["0"]["figures"]["exposure_deciles"]
    x = np.array([r["decile"] for r in rows])
    bars = [("watches (share 0)", [r["watch_share"] for r in rows])]
    bars += [
        (f"slots, share {s}", [r["slot_share"] for r in a["figures"]["exposure_deciles"]])
        for s, a in arms.items()
    ]
    width = 0.8 / len(bars)
    for j, (label, values) in enumerate(bars):
        ax.bar(x + (j - (len(bars) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(x, [f"D{d}" for d in x])
    ax.set_xlabel("popularity decile of the catalogue (D1: the 10% of movies watched most in the window)")
    ax.set_ylabel("share")
    g = " / ".join(f"{fmt(a['figures']['concentration']['gini'], 3)} (share {s})" for s, a in arms.items())
    ax.set_title(f"Exposure by popularity: Gini of recommendation counts {g}", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _save(fig, plt, path)


def plot_feedback(record: dict[str, Any], path: Path) -> Path:
    """Per simulated day: coverage, Gini, top-decile share and hit rate, one line per arm."""
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8))
    panels = (("coverage", "catalogue coverage"), ("gini", "Gini of recommendations"),
              ("top_decile_share", "top-decile share of slots"), ("hit_rate", "online hit rate"))  # fmt: skip
    for ax, (key, title) in zip(axes, panels, strict=True):
        for share, arm in record["arms"].items():
            days = arm["figures"]["per_day"]
            ax.plot(
                [d["day"] for d in days], [d[key] for d in days], "o-", ms=3, label=f"exploration {share}"
            )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("simulated day (daily retrain)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, plt, path)


def _save(fig: Any, plt: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_all(record: dict[str, Any], folder: Path) -> dict[str, Path]:
    """Every plot whose data the record holds."""
    out = {"online_groups": plot_online(record, folder / "fairness_online.png"),
           "exposure": plot_exposure(record, folder / "exposure_deciles.png"),
           "feedback_loop": plot_feedback(record, folder / "feedback_loop.png")}  # fmt: skip
    if "offline" in record["arms"]["0"]:
        out["offline_groups"] = plot_offline(record, folder / "fairness_offline.png")
    return out


def summary_lines(record: dict[str, Any]) -> list[str]:
    """The figures, one line each, as the script prints them."""
    arms = record["arms"]
    main = arms["0"]
    w = main["world"]
    lines = [f"world: {w['users']:,} users x {w['movies']:,} movies; history {w['history_days']:g} days at "
             f"{w['history_rate']:g} sessions/h; {w['loop_days']} simulated days of closed loop at {w['rate']:g} "
             f"sessions/h per arm, retrained daily; arms: exploration share {', '.join(arms)}"]  # fmt: skip
    if "note" in record["exploration"]:
        lines.append(f"exploration: {record['exploration']['note']}")
    off = main.get("offline")
    if off:
        lines.append(f"offline (test cut-off, {off['users']:,} users): " + "; ".join(
            f"{k} {off['models'][k]} NDCG@20 {fmt(v['ndcg20'])} recall@20 {fmt(v['recall20'])}"
            for k, v in off["overall"].items()))  # fmt: skip
        for grouping in GROUPINGS:
            lines.append(f"offline NDCG@20 / recall@20 of lambdarank by {TITLES[grouping]}: " + ", ".join(
                f"{r['group']} ({r['users']:,}) {fmt(r['lambdarank']['ndcg20'])} [{fmt(r['lambdarank']['ndcg20_ci'][0])}, "
                f"{fmt(r['lambdarank']['ndcg20_ci'][1])}] / {fmt(r['lambdarank']['recall20'])}"
                + (f" (champion {fmt(r['champion']['ndcg20'])})" if "champion" in r else "")
                for r in off["groups"][grouping]))  # fmt: skip
    for share, arm in arms.items():
        f = arm["figures"]
        h = f["hit_rate"]
        lines.append(f"share {share}: online hit rate {fmt(h['rate'])} [{fmt(h['ci'][0])}, {fmt(h['ci'][1])}] over "
                     f"{f['lists']:,} lists of {f['users']:,} users")  # fmt: skip
        for grouping in GROUPINGS:
            lines.append(f"share {share}: online hit rate by {TITLES[grouping]}: " + ", ".join(
                f"{r['group']} {fmt(r['rate'])} [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}] ({r['users']:,} users)"
                for r in f["online_groups"][grouping]))  # fmt: skip
        ex = f["exposure_deciles"]
        lines.append(f"share {share}: slots vs watches by popularity decile: " + ", ".join(
            f"D{r['decile']} {fmt(r['slot_share'], 3)}/{fmt(r['watch_share'], 3)}" for r in ex))  # fmt: skip
        c = f["concentration"]
        lines.append(f"share {share}: whole window: Gini {fmt(c['gini'])}, coverage {fmt(c['coverage'])} "
                     f"({c['movies_recommended']:,} of {c['catalogue']:,} movies), top-decile share "
                     f"{fmt(c['top_decile_share'])}, {c['slots']:,} slots")  # fmt: skip
        days = f["per_day"]
        if days:
            first, last = days[0], days[-1]
            lines.append(f"share {share}: per day coverage {fmt(first['coverage'])} -> {fmt(last['coverage'])}, Gini "
                         f"{fmt(first['gini'])} -> {fmt(last['gini'])}, top-decile share {fmt(first['top_decile_share'])} "
                         f"-> {fmt(last['top_decile_share'])}, hit rate {fmt(first['hit_rate'])} -> "
                         f"{fmt(last['hit_rate'])} (day {first['day']} -> day {last['day']})")  # fmt: skip
        champions = [f"v{d['champion']} {d['champion_policy']}" for d in arm["days"]]
        lines.append(f"share {share}: champions by day: {', '.join(champions)}")
    poison = main.get("poison")
    if poison:
        lines.append(
            f"poisoning probe: {poison['accounts']} fake accounts x {poison['minutes']} min + a {poison['rating']}-star "
            f"rating of {poison['movie']} ({poison['plays_in_window_before']} plays in the window before): in "
            f"{poison['listed_before']}/{poison['lists_before']} warm users' lists before ({poison['champion_before']}), "
            f"{poison['listed_after']}/{poison['lists_after']} after the retrain ({poison['champion_after']}); "
            f"ranks after {poison['ranks_after'][:10]}"
        )
    drill = main.get("drill")
    if drill:
        s = drill["seconds"]
        lines.append(f"drill: injected {drill['injected_at']}, Prometheus pending {drill['pending_at']}, firing "
                     f"{drill['firing_at']}, {drill['alertname']} on recsys.alerts {drill['alert_at']} "
                     f"({fmt(s.get('injection_to_alert_on_topic'))} s), mitigated {drill['mitigated_at']}, model "
                     f"answers {drill['recovered_at']} ({fmt(s.get('mitigation_to_model_answers'))} s), resolved "
                     f"{drill['resolved_at']} ({fmt(s.get('mitigation_to_resolved_on_topic'))} s after the "
                     f"mitigation); answers during the fault {drill['answers_during_fault']}"
                     + (f"; error: {drill['error']}" if drill.get("error") else ""))  # fmt: skip
    secs = ", ".join(f"share {s} {fmt(a['seconds'].get('arm'))} s" for s, a in arms.items())
    lines.append(f"time: {secs}")
    return lines
