"""The risk benchmark's figures as Markdown tables, from its JSON record (`benchmarks/risk.py` writes them
next to its plots, so `docs/risk-analysis.md` quotes the script's own output rather than hand-copied numbers)."""

from __future__ import annotations

from typing import Any

from benchmarks.risk_report import TITLES
from monitoring.fairness import GROUPINGS


def _f(value: Any, digits: int = 3) -> str:
    """A table cell: fixed decimals, `–` for a missing value."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else f"{value:,}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    align = ["---"] + ["---:"] * (len(header) - 1)
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(align) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def offline_tables(off: dict[str, Any]) -> list[str]:
    """Per group: the ranker's and the champion's NDCG@20 (95% CI) and recall@20, and the oracle's NDCG@20."""
    out: list[str] = []
    for grouping in GROUPINGS:
        rows = []
        for r in off["groups"][grouping]:
            lr, ch, orc = r["lambdarank"], r.get("champion", {}), r.get("oracle", {})
            ci, cci = lr.get("ndcg20_ci", [None, None]), ch.get("ndcg20_ci", [None, None])
            rows.append([r["group"], _f(r["users"]), f"{_f(lr['ndcg20'])} [{_f(ci[0])}, {_f(ci[1])}]",
                         f"{_f(ch.get('ndcg20'))} [{_f(cci[0])}, {_f(cci[1])}]", _f(lr.get("recall20")),
                         _f(ch.get("recall20")), _f(orc.get("ndcg20"))])  # fmt: skip
        header = [TITLES[grouping].capitalize(), "test users", "lambdarank NDCG@20 [95% CI]",
                  "champion NDCG@20 [95% CI]", "lambdarank recall@20", "champion recall@20", "oracle NDCG@20"]  # fmt: skip
        out += [*_table(header, rows), ""]
    return out


def online_tables(arms: dict[str, Any]) -> list[str]:
    """Per group: each arm's closed-loop hit rate with its user-clustered 95% interval."""
    out: list[str] = []
    for grouping in GROUPINGS:
        by_arm = {
            share: {r["group"]: r for r in arm["figures"]["online_groups"][grouping]}
            for share, arm in arms.items()
        }
        groups = sorted({g for rows in by_arm.values() for g in rows})
        rows = []
        for g in groups:
            cells = [g]
            for share in arms:
                r = by_arm[share].get(g)
                cells.append(f"{_f(r['users'])} / {_f(r['trials'])} / {_f(r['rate'])} [{_f(r['ci_low'])}, {_f(r['ci_high'])}]"
                             if r else "–")  # fmt: skip
            rows.append(cells)
        header = [TITLES[grouping].capitalize()] + [
            f"share {s}: users / lists / hit rate [95% CI]" for s in arms
        ]
        out += [*_table(header, rows), ""]
    return out


def exposure_tables(arms: dict[str, Any]) -> list[str]:
    """Share of recommendation slots vs share of watches per popularity decile, then concentration per arm."""
    deciles = {s: {r["decile"]: r for r in a["figures"]["exposure_deciles"]} for s, a in arms.items()}
    rows = []
    for d in sorted({d for rows in deciles.values() for d in rows}):
        first = next(iter(deciles.values())).get(d, {})
        rows.append([f"D{d}", _f(first.get("movies")), _f(first.get("watch_share"))]
                    + [_f(deciles[s].get(d, {}).get("slot_share")) for s in arms])  # fmt: skip
    out = [
        *_table(
            ["Popularity decile", "movies", "share of watches"]
            + [f"share of slots (share {s})" for s in arms],
            rows,
        ),
        "",
    ]
    conc = []
    for s, a in arms.items():
        c = a["figures"]["concentration"]
        conc.append([f"share {s}", _f(c["slots"]), f"{_f(c['movies_recommended'])} of {_f(c['catalogue'])}",
                     _f(c["coverage"]), _f(c["gini"]), _f(c["top_decile_share"])])  # fmt: skip
    return [
        *out,
        *_table(["Arm", "slots", "movies recommended", "coverage", "Gini", "top-decile share"], conc),
        "",
    ]


def feedback_table(arms: dict[str, Any]) -> list[str]:
    """Per simulated day and arm: coverage, Gini, top-decile share, hit rate and the day's champion."""
    rows = []
    for s, a in arms.items():
        champions = {d["day"]: f"v{d['champion']} {d['champion_policy']}" for d in a.get("days", [])}
        for d in a["figures"]["per_day"]:
            rows.append([f"share {s}", str(d["day"]), _f(d["coverage"]), _f(d["gini"]), _f(d["top_decile_share"]),
                         _f(d["hit_rate"]), champions.get(d["day"], "–")])  # fmt: skip
    return [*_table(["Arm", "day", "coverage", "Gini", "top-decile share", "hit rate", "champion"], rows), ""]


def tables_markdown(record: dict[str, Any]) -> str:
    """Every table of the risk analysis, each under a heading."""
    arms = record["arms"]
    lines = ["<!-- written by benchmarks/risk.py from its JSON record: do not edit by hand -->", ""]
    off = arms["0"].get("offline")
    if off:
        overall = "; ".join(f"{k} ({off['models'][k]}) NDCG@20 {_f(v['ndcg20'])}, recall@20 {_f(v['recall20'])}"
                            for k, v in off["overall"].items())  # fmt: skip
        lines += [
            f"### Offline quality per group ({off['users']:,} test users)",
            "",
            f"Overall: {overall}",
            "",
        ]
        lines += offline_tables(off)
    lines += ["### Online hit rate per group", "", *online_tables(arms)]
    lines += ["### Exposure by popularity decile and concentration", "", *exposure_tables(arms)]
    lines += ["### Feedback loop, per simulated day", "", *feedback_table(arms)]
    return "\n".join(lines)
