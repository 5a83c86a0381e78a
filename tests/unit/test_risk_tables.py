"""The risk analysis's Markdown tables come from the benchmark's JSON record, row for row."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.risk_tables import tables_markdown

RECORD = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "risk.json"


def test_every_group_decile_and_day_of_the_record_is_a_table_row() -> None:
    record = json.loads(RECORD.read_text())
    text = tables_markdown(record)
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    arms = record["arms"]
    main = arms["0"]
    for grouping, groups in main["offline"]["groups"].items():
        for g in groups:
            ci = g["lambdarank"]["ndcg20_ci"]
            cell = f"{g['lambdarank']['ndcg20']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
            assert any(r.startswith(f"| {g['group']} | {g['users']:,} | {cell}") for r in rows), (
                grouping,
                g["group"],
            )
    for share, arm in arms.items():
        for day in arm["figures"]["per_day"]:
            assert any(
                r.startswith(f"| share {share} | {day['day']} | {day['coverage']:.3f} |") for r in rows
            )
    deciles = [r for r in rows if r.startswith("| D")]
    assert len(deciles) == len(main["figures"]["exposure_deciles"])
    assert text.startswith("<!-- written by benchmarks/risk.py")
