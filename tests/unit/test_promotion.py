"""Cut-off planning over spans of hours to years, and the promotion rule driven by the verdict (pure logic)."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ranking import columns as C  # noqa: N812
from ranking.dataset import MAX_HORIZON, plan_splits
from ranking.evaluate import ModelScores
from ranking.promotion import register_and_promote
from ranking.ranker import Ranker, RankerParams
from ranking.transforms import FEATURE_COLUMNS
from ranking.verdict import Verdict


@pytest.mark.parametrize("span", [pd.Timedelta(hours=6), pd.Timedelta(days=14), pd.Timedelta(days=3 * 365)])
def test_cut_offs_fit_inside_the_span_in_time_order(span: pd.Timedelta) -> None:
    t0 = pd.Timestamp("2016-01-01", tz="UTC")
    starts = t0 + pd.to_timedelta(np.linspace(0, span.total_seconds(), 500), unit="s")
    sessions = pd.DataFrame({C.START_TS: starts, C.END_TS: starts})
    splits = plan_splits(sessions)
    assert [s.name for s in splits][-2:] == ["valid", "test"] and len(splits) >= 3
    assert all(t0 < s.cutoff < s.end <= t0 + span for s in splits)
    assert all(a.cutoff < b.cutoff for a, b in itertools.pairwise(splits))
    assert all(s.end <= splits[-2].cutoff for s in splits if s.name.startswith("train"))
    assert splits[-1].end - splits[-1].cutoff <= MAX_HORIZON


@dataclass
class _Info:
    version: int
    kind: str = "ranker"


@dataclass
class _Outcome:
    accepted: bool
    reason: str = ""


@dataclass
class FakeRegistry:
    """Records calls; the real registry is covered by tests/unit/test_registry.py."""

    champion: int | None = None
    champion_kind: str = "ranker"
    gates_pass: bool = True
    versions: list[Path] = field(default_factory=list)
    promoted: list[tuple[int, str | None]] = field(default_factory=list)
    challenger: int | None = None

    def register(self, model_dir: Path, *_: Any) -> _Info:
        self.versions.append(model_dir)
        return _Info(len(self.versions))

    def resolve(self, alias: str) -> _Info | None:
        return _Info(self.champion, self.champion_kind) if alias == "champion" and self.champion else None

    def promote(self, version: int, smoke: Any, force: bool = False, reason: str | None = None) -> _Outcome:
        if not force and not self.gates_pass:
            return _Outcome(False, "gates")
        self.champion = version
        self.promoted.append((version, reason))
        return _Outcome(True)

    def set_challenger(self, version: int) -> None:
        self.challenger = version


def _result(tmp_path: Path, wins: bool) -> Any:
    model_dir = tmp_path / "latest"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, len(FEATURE_COLUMNS))).astype(np.float32)
    Ranker.train(x, (x[:, 0] > 0).astype(np.int64), np.full(10, 20), 1.0, RankerParams(n_estimators=3)).save(
        model_dir
    )
    (model_dir / "candidates").mkdir()
    (model_dir / "candidates" / "index.json").write_text("{}")
    verdict = Verdict("lambdarank (λ=0)", "item_item", 100, 0.2, 0.1, 0.1 if wins else -0.1,
                      0.05 if wins else -0.2, 0.15 if wins else 0.01, wins)  # fmt: skip
    scores = [ModelScores("item_item", 0.1, 0, 0, 0, 1.0), ModelScores("lambdarank (λ=0)", 0.2, 0, 0, 0, 1.0)]

    class _Cmp:
        pass

    cmp = _Cmp()
    cmp.verdict, cmp.scores = verdict, scores  # type: ignore[attr-defined]

    class _Result:
        pass

    res = _Result()
    res.comparison, res.model_dir, res.report_dir = cmp, model_dir, tmp_path  # type: ignore[attr-defined]
    return res


def test_a_ranker_that_loses_is_not_promoted_and_the_best_baseline_becomes_the_first_champion(
    tmp_path: Path,
) -> None:
    reg = FakeRegistry()
    decision = register_and_promote(reg, _result(tmp_path, wins=False), None, None)
    assert decision.promoted == "baseline:item_item" and reg.champion == 2
    meta = json.loads((reg.versions[1] / "meta.json").read_text())
    assert meta["kind"] == "baseline" and meta["policy"] == "item_item"
    assert (reg.versions[1] / "candidates" / "index.json").exists() and not (
        reg.versions[1] / "model.txt"
    ).exists()
    assert reg.promoted[0][1] and "not above zero" in reg.promoted[0][1]


def test_a_ranker_that_loses_leaves_an_existing_champion_in_place(tmp_path: Path) -> None:
    reg = FakeRegistry(champion=7)
    decision = register_and_promote(reg, _result(tmp_path, wins=False), None, None)
    assert decision.promoted == "none" and reg.champion == 7 and len(reg.versions) == 1


def test_a_ranker_that_loses_to_a_baseline_champion_refreshes_it_with_the_best_baseline_refit(
    tmp_path: Path,
) -> None:
    # A baseline champion is a policy with a candidate index fit when it was registered: kept, it
    # would serve that index forever; the verdict measured every policy on the newest data.
    reg = FakeRegistry(champion=7, champion_kind="baseline")
    decision = register_and_promote(reg, _result(tmp_path, wins=False), None, None)
    assert decision.promoted == "baseline:item_item" and reg.champion == 2 and len(reg.versions) == 2
    assert json.loads((reg.versions[1] / "meta.json").read_text())["policy"] == "item_item"
    assert reg.promoted[0][1] and "baseline champion v7 gives way" in reg.promoted[0][1]


def test_a_ranker_that_wins_is_promoted_even_as_the_first_version_and_gates_still_apply(
    tmp_path: Path,
) -> None:
    reg = FakeRegistry()
    assert register_and_promote(reg, _result(tmp_path, wins=True), None, None).promoted == "ranker"
    assert reg.champion == 1
    gated = FakeRegistry(champion=3, gates_pass=False)
    decision = register_and_promote(gated, _result(tmp_path / "b", wins=True), None, None)
    assert decision.promoted == "none" and gated.champion == 3 and gated.challenger == 1
