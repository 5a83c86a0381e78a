"""The interleaved answer's merge step on plain lists, and when team A answers alone (fake runtime, fake rankings)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from serving import interleave_path
from serving.experiments import Arm
from serving.interleave_path import Interleaving, merge
from serving.recommender import Outcome

A_LIST = [f"a{i}" for i in range(20)]
B_LIST = [f"b{i}" for i in range(20)]
ARMS = (Arm(name="control", weight=1, model="champion"), Arm(name="treatment", weight=1, model="challenger"))


def outcome(movies: list[str], **changes: Any) -> Outcome:
    return Outcome(list(movies), changes.pop("path", "model"), {"als": 70}, 0.05, **changes)


def teams_of(out: Interleaving) -> str:
    assert out.record is not None
    teams: str = out.record["teams"]
    return teams


def test_merge_credits_each_position_to_the_team_whose_list_holds_it() -> None:
    shared = A_LIST[:5] + B_LIST[:15]  # overlapping lists: shared movies go to whoever picks first
    for seed in ("0" * 32, "f" * 32, "1234abcd" * 4):
        out = merge(outcome(A_LIST), outcome(shared), seed, ("control", "treatment"), (1, 2))
        assert out.record is not None and out.fallback is None
        teams = out.record["teams"]
        assert len(teams) == len(out.outcome.movies) == 20 and set(teams) == {"A", "B"}
        assert len(set(out.outcome.movies)) == 20
        for movie, team in zip(out.outcome.movies, teams, strict=True):
            assert movie in (A_LIST if team == "A" else shared), (movie, team)
        assert {k: v for k, v in out.record.items() if k != "teams"} == {
            "a": "control",
            "b": "treatment",
            "a_version": 1,
            "b_version": 2,
        }


def test_merge_is_fixed_by_the_seed_and_keeps_team_as_metadata() -> None:
    a = outcome(A_LIST, reason="handover:self_description share=0.20")
    first = merge(a, outcome(B_LIST), "seed-1", ("c", "t"), (3, None))
    assert merge(a, outcome(B_LIST), "seed-1", ("c", "t"), (3, None)) == first
    others = {teams_of(merge(a, outcome(B_LIST), f"seed-{i}", ("c", "t"), (3, None))) for i in range(20)}
    assert len(others) > 1, "different request ids draw different coins"
    merged = first.outcome
    assert (merged.candidate_sources, merged.lam, merged.reason, merged.path) == (
        {"als": 70},
        0.05,
        "handover:self_description share=0.20",
        "model",
    )
    # Team draft: after every even number of picks both teams have placed as many movies.
    teams = teams_of(first)
    assert all(teams[: 2 * i].count("A") == i for i in range(11))


# --- interleave(): when team A answers alone ---------------------------------------------------


def fake_rt(available: dict[str, int]) -> Any:
    bundles = {ref: SimpleNamespace(version=v) for ref, v in available.items()}
    return SimpleNamespace(models=SimpleNamespace(available=lambda: available, loaded=bundles))


def test_interleave_merges_when_team_b_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interleave_path, "ranked", lambda rt, uid, user, bundle, arm: outcome(B_LIST))
    out = interleave_path.interleave(
        fake_rt({"champion": 1, "challenger": 2}), 7, {}, outcome(A_LIST), ARMS, 1, "r"
    )
    assert out.record is not None and out.fallback is None
    assert (out.record["a_version"], out.record["b_version"]) == (1, 2)
    assert set(out.outcome.movies) <= set(A_LIST) | set(B_LIST)


def test_team_b_without_its_model_leaves_team_a_alone_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def never(*_args: Any) -> Outcome:
        raise AssertionError("B must not be ranked by the champion under B's name")

    monkeypatch.setattr(interleave_path, "ranked", never)
    a = outcome(A_LIST)
    out = interleave_path.interleave(fake_rt({"champion": 1}), 7, {}, a, ARMS, 1, "r")
    assert out.outcome is a and out.record is None
    assert out.fallback == "interleave: challenger not available: control alone"


def test_team_b_raising_leaves_team_a_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: Any) -> Outcome:
        raise ValueError("bad trees")

    monkeypatch.setattr(interleave_path, "ranked", broken)
    a = outcome(A_LIST)
    out = interleave_path.interleave(fake_rt({"champion": 1, "challenger": 2}), 7, {}, a, ARMS, 1, "r")
    assert (out.outcome, out.record, out.fallback) == (a, None, "interleave_error:ValueError")


def test_a_degraded_team_a_answer_is_not_interleaved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interleave_path, "ranked", lambda *_a: outcome(B_LIST))
    a = outcome(A_LIST, path="model_no_features", reason="no_user_features")
    out = interleave_path.interleave(fake_rt({"champion": 1, "challenger": 2}), 7, None, a, ARMS, 1, "r")
    assert (out.outcome, out.record, out.fallback) == (a, None, None)
