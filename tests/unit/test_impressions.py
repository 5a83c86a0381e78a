"""Impression rows of the online join: one per final list, with experiment, hits, watched listed movies and interleaving credit."""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

from monitoring.impressions import Origin
from monitoring.layout import IMPRESSION_COLUMNS, MonitorLayout
from monitoring.online import SEC, Attribution, OnlineJoin
from monitoring.tables import IMPRESSION_SCHEMA, read_impressions, write_tuples

T0 = 1_700_000_000 * SEC - (1_700_000_000 * SEC) % (300 * SEC)
LIST = ("a+2001", "b+2002", "c+2003", "d+2004")
FACTS = {"a+2001": (1.0, 100.0), "b+2002": (2.0, 50.0), "c+2003": (4.0, None)}


def _join() -> OnlineJoin:
    return OnlineJoin(300, 1800, 6 * 3600, 600, 0, catalog=lambda m: FACTS.get(m, (None, None)))


def _record(user: int, **extra: Any) -> dict[str, Any]:
    return {"user_id": user, "result": list(LIST), "arm": "treatment", "model_version": 4,
            "experiment": "ranker-v4"} | extra  # fmt: skip


def _impressions(join: OnlineJoin) -> dict[int, dict[str, Any]]:
    join.advance(drain=True)
    return {row[1]: dict(zip(IMPRESSION_COLUMNS, row, strict=True)) for row in join.take_impressions()}


def test_a_scripted_session_gives_one_impression_per_list_with_hit_watched_and_experiment() -> None:
    join = _join()
    join.provenance(_record(1))
    join.recommendation(T0, 1, 200, LIST, 40)
    for minute in range(3):
        join.watch(T0 + (60 + 60 * minute) * SEC, 1, "b+2002")  # the hit: rank 2, 3 minutes
    join.watch(T0 + 400 * SEC, 1, "a+2001")  # a second listed movie
    join.watch(T0 + 410 * SEC, 1, "a+2001")  # the same movie again: still one distinct
    join.watch(T0 + 500 * SEC, 1, "z+1999")  # not listed
    join.watch(T0 + 1900 * SEC, 1, "c+2003")  # listed, after the hit window
    join.recommendation(T0 + 5 * SEC, 2, 200, LIST, 700)  # never attributed, never watched
    join.recommendation(T0 + 6 * SEC, 3, 503, (), 900)  # failed request
    rows = _impressions(join)
    assert set(rows) == {1, 2, 3}
    one = rows[1]
    assert (one["ts"], one["experiment"], one["arm"], one["model"], one["path"]) == (
        T0 // 1000, "ranker-v4", "treatment", "v4", "model",
    )  # fmt: skip
    assert (one["hit"], one["hit_rank"], one["hit_minutes"], one["watched_listed"]) == (1, 2, 3, 2)
    assert math.isclose(one["hit_completion"], 3 / 50) and one["hit_cost"] == 2.0
    assert one["list_cost"] == 7.0  # d+2004's cost is unknown: left out, as in the window rows
    assert (one["teams"], one["credit_a"], one["credit_b"]) == ("", 0, 0)
    two = rows[2]
    assert (two["experiment"], two["arm"], two["hit"], two["hit_rank"], two["hit_cost"]) == (
        "", "unknown", 0, 0, 0.0,
    )  # fmt: skip
    assert math.isnan(two["hit_completion"]) and two["latency_ms"] == 700
    three = rows[3]
    assert (three["status"], three["path"], three["experiment"], three["watched_listed"]) == (
        503,
        "error",
        "",
        0,
    )
    assert math.isnan(three["list_cost"])


def test_an_interleaved_list_credits_each_distinct_watched_movie_to_the_team_that_placed_it() -> None:
    join = _join()
    join.recommendation(T0, 1, 200, LIST, 40)  # the line before its record this time
    interleave = {"teams": "ABBA", "a": "control", "b": "treatment", "a_version": 3, "b_version": 4}
    join.provenance(_record(1, experiment="ranker-il", arm="interleave", interleave=interleave))
    for movie in ("b+2002", "c+2003", "d+2004", "b+2002"):  # B, B, A; b twice counts once
        join.watch(T0 + 120 * SEC, 1, movie)
    row = _impressions(join)[1]
    assert (row["experiment"], row["teams"], row["credit_a"], row["credit_b"]) == ("ranker-il", "ABBA", 1, 2)
    assert row["watched_listed"] == 3 and row["hit_rank"] == 2


def test_a_teams_string_that_does_not_fit_its_list_credits_nobody() -> None:
    join = _join()
    join.provenance(_record(1, interleave={"teams": "AB"}))
    join.recommendation(T0, 1, 200, LIST, 40)
    join.watch(T0 + 60 * SEC, 1, "a+2001")
    row = _impressions(join)[1]
    assert (row["teams"], row["credit_a"], row["credit_b"], row["hit"]) == ("AB", 0, 0, 1)


def test_a_snapshot_from_before_impressions_restores_without_crashing() -> None:
    join = _join()
    join.recommendation(T0, 1, 200, LIST, 40)  # waiting for its record
    join.provenance(_record(2))  # a buffered record
    state = join.snapshot()
    # What the previous version pickled: no impression list, lists without the new fields,
    # buffered records as bare attributions.
    del state["impression_rows"]
    state["records"] = {k: [o.who for o in v] for k, v in state["records"].items()}
    old = pickle.loads(pickle.dumps(state))
    for shown in old["pending"]:
        for name in ("experiment", "teams", "watched"):
            object.__delattr__(shown, name)
    resumed = _join()
    resumed.restore(old)
    assert all(isinstance(o, Origin) for v in resumed.records.values() for o in v)
    resumed.recommendation(T0 + SEC, 2, 200, LIST, 40)
    resumed.provenance(_record(1))
    resumed.watch(T0 + 60 * SEC, 1, "a+2001")
    rows = _impressions(resumed)
    assert (rows[1]["experiment"], rows[1]["hit"], rows[1]["watched_listed"]) == ("ranker-v4", 1, 1)
    assert (rows[2]["arm"], rows[2]["experiment"]) == ("treatment", "")  # an old record: no experiment
    assert resumed.take()[0]  # the window rows still come out


def test_impression_rows_round_trip_through_parquet(tmp_path: Path) -> None:
    join = _join()
    join.provenance(_record(1))
    join.recommendation(T0, 1, 200, LIST, 40)
    join.recommendation(T0, 2, 0, (), 800)
    join.advance(drain=True)
    layout = MonitorLayout(tmp_path)
    write_tuples(layout.impressions, 0, join.take_impressions(), IMPRESSION_SCHEMA)
    frame = read_impressions(layout)
    assert list(frame.columns) == list(IMPRESSION_COLUMNS) and len(frame) == 2
    assert str(frame["ts"].dtype) == "datetime64[us, UTC]"
    assert sorted(frame["experiment"]) == ["", "ranker-v4"]
    assert Attribution("treatment", "v4", "model") in set(
        zip(frame["arm"], frame["model"], frame["path"], strict=True)
    )
