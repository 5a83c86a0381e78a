"""The online metrics join: hits, attribution, availability, windows, ratings, cost, and restart from a snapshot."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from monitoring import safe_pickle
from monitoring.online import SEC, OnlineJoin, attribution

T0 = 1_700_000_000 * SEC - (1_700_000_000 * SEC) % (300 * SEC)  # a window boundary
LIST = ("a+2001", "b+2002", "c+2003")
FACTS = {"a+2001": (1.0, 100.0), "b+2002": (2.0, 50.0), "c+2003": (4.0, None)}


def _join() -> OnlineJoin:
    return OnlineJoin(300, 1800, 6 * 3600, 600, 0, catalog=lambda m: FACTS.get(m, (None, None)))


def _record(user: int, result: tuple[str, ...], **extra: Any) -> dict[str, Any]:
    return {"user_id": user, "result": list(result), "arm": "control", "model_version": 3} | extra


def _rows(join: OnlineJoin, drain: bool = True) -> list[dict[str, Any]]:
    join.advance(drain=drain)
    return join.take()[0]


def _total(rows: list[dict[str, Any]], column: str) -> float:
    return sum(r[column] for r in rows)


def test_a_watch_of_a_listed_movie_within_the_hit_window_is_a_hit_with_its_rank_minutes_and_cost() -> None:
    join = _join()
    join.recommendation(T0, 1, 200, LIST, 40)
    join.recommendation(T0, 2, 200, LIST, 40)
    join.recommendation(T0, 3, 200, LIST, 40)
    for minute in range(5):  # user 1 watches the second movie for 5 minutes
        join.watch(T0 + 60 * SEC + minute * 60 * SEC, 1, "b+2002")
    join.watch(T0 + 60 * SEC, 2, "z+1999")  # not listed
    join.watch(T0 + 1801 * SEC, 3, "a+2001")  # listed, but after the hit window
    rows = _rows(join)
    assert _total(rows, "requests") == 3 and _total(rows, "hits") == 1
    assert _total(rows, "hit_rank_sum") == 2 and _total(rows, "hit_minutes_sum") == 5
    assert _total(rows, "hit_completion_sum") == pytest.approx(5 / 50)
    assert _total(rows, "hit_cost_sum") == 2.0
    assert _total(rows, "list_cost_sum") == pytest.approx(3 * 7.0) and _total(rows, "list_cost_n") == 3


def test_provenance_attributes_a_line_in_either_order_and_unmatched_lines_are_counted() -> None:
    join = _join()
    join.provenance(_record(1, LIST))  # record first
    join.recommendation(T0, 1, 200, LIST, 40)
    join.recommendation(T0, 2, 200, LIST, 40)  # line first
    join.provenance(_record(2, LIST, arm="treatment", model_version=4))
    join.recommendation(T0, 3, 200, LIST, 40)  # never matched
    rows = _rows(join)
    by = {(r["arm"], r["model"], r["path"]): r["requests"] for r in rows}
    assert by == {
        ("control", "v3", "model"): 1,
        ("treatment", "v4", "model"): 1,
        ("unknown", "unknown", "unknown"): 1,
    }
    assert join.unattributed == 1


def test_paths_of_provenance_records() -> None:
    assert attribution({"arm": "a", "model_version": None, "cold_start": "popular"}).path == "cold_start"
    assert attribution({"arm": "a", "model_version": None, "fallback": "features_timeout"}) == (
        "a",
        "none",
        "fallback",
    )
    assert (
        attribution({"arm": "a", "model_version": 2, "fallback": "no_user_features"}).path
        == "model_no_features"
    )


def test_availability_counts_answers_200_within_the_sla_from_the_front_ends_lines() -> None:
    join = _join()
    join.recommendation(T0, 1, 200, LIST, 599)
    join.recommendation(T0, 2, 200, LIST, 601)
    join.recommendation(T0, 3, 0, (), 800)
    rows = _rows(join)
    assert (_total(rows, "requests"), _total(rows, "ok"), _total(rows, "available")) == (3, 2, 1)
    assert [r["path"] for r in rows if r["ok"] == 0] == ["error"]


def test_a_window_is_emitted_only_once_the_watermark_passed_its_end_plus_the_hit_window() -> None:
    join = _join()
    join.recommendation(T0, 1, 200, LIST, 40)
    join.note_time(T0 + 1800 * SEC)
    assert _rows(join, drain=False) == []
    join.note_time(T0 + 300 * SEC + 1800 * SEC)
    assert [r["window_start"] for r in _rows(join, drain=False)] == [T0 // 1000]


def test_ratings_of_a_hit_movie_are_credited_before_and_after_the_list_is_final() -> None:
    join = _join()
    join.provenance(_record(1, LIST))
    join.recommendation(T0, 1, 200, LIST, 40)
    join.watch(T0 + 60 * SEC, 1, "a+2001")
    join.rating(T0 + 600 * SEC, 1, "a+2001", 4)  # list still open
    join.rating(T0 + 600 * SEC, 1, "c+2003", 5)  # not the hit movie
    join.note_time(T0 + 3 * 3600 * SEC)
    join.advance()
    join.rating(T0 + 4 * 3600 * SEC, 1, "a+2001", 5)  # after final, within 6 h
    join.rating(T0 + 7 * 3600 * SEC, 1, "a+2001", 1)  # too late
    join.advance(drain=True)
    ratings = join.take()[1]
    assert [(r["rating"], r["arm"], r["model"]) for r in ratings] == [
        (4, "control", "v3"),
        (5, "control", "v3"),
    ]


def test_a_restart_from_a_snapshot_gives_the_same_rows_as_an_uninterrupted_run() -> None:
    def first_half(join: OnlineJoin) -> None:
        join.recommendation(T0, 1, 200, LIST, 40)
        join.recommendation(T0 + 10 * SEC, 2, 200, LIST, 40)

    def second_half(join: OnlineJoin) -> None:
        join.provenance(_record(1, LIST))
        join.watch(T0 + 60 * SEC, 1, "c+2003")
        join.watch(T0 + 70 * SEC, 2, "a+2001")

    whole = _join()
    first_half(whole)
    second_half(whole)
    restarted = _join()
    first_half(restarted)
    # The job's own loader: restricted to the types a checkpoint holds (a state it refused would fail here).
    state = safe_pickle.loads(pickle.dumps(restarted.snapshot(), protocol=pickle.HIGHEST_PROTOCOL))
    resumed = _join()
    resumed.restore(state)
    second_half(resumed)
    rows = _rows(resumed)
    assert rows == _rows(whole)
    assert _total(rows, "hits") == 2 and {r["arm"] for r in rows} == {"control", "unknown"}


def test_hostile_provenance_records_are_ignored_and_lines_still_count() -> None:
    join = _join()
    for record in ({}, {"user_id": "x"}, {"user_id": None}, {"user_id": 1, "result": 7}, {"user_id": [1]}):
        join.provenance(record)
    join.provenance({"user_id": 1, "result": list(LIST), "arm": None, "model_version": "3"})
    join.recommendation(T0, 1, 200, LIST, 40)
    rows = _rows(join)
    assert _total(rows, "requests") == 1 and [r["model"] for r in rows] == ["v3"]


class _Gadget:
    """What a planted checkpoint would hold: an object whose unpickling runs a command."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        import os

        return (os.system, ("touch /tmp/recsys-pwned-by-checkpoint",))


def test_a_planted_checkpoint_cannot_run_code_in_the_job(tmp_path: Any) -> None:
    import os

    marker = "/tmp/recsys-pwned-by-checkpoint"
    if os.path.exists(marker):
        os.remove(marker)
    payload = pickle.dumps({"version": 1, "join": _Gadget()})
    with pytest.raises(safe_pickle.UnsafeCheckpointError, match=r"(posix|os)\.system"):
        safe_pickle.loads(payload)
    assert not os.path.exists(marker)
    # Nor through a builtin that runs code when called with pickled arguments.
    with pytest.raises(safe_pickle.UnsafeCheckpointError, match=r"builtins\.eval"):
        safe_pickle.loads(b"cbuiltins\neval\n(S'1+1'\ntR.")
