"""The training window (`RECSYS_RANK_HISTORY_DAYS`): only the log's last days reach training."""

from __future__ import annotations

import pandas as pd
import pytest

from ranking import columns as C  # noqa: N812
from ranking.interactions import last_days
from ranking.settings import RankSettings

T = pd.Timestamp("2026-11-20 12:00", tz="UTC")


def test_last_days_keeps_sessions_ending_and_ratings_given_within_the_window() -> None:
    ends = [T - pd.Timedelta(days=d) for d in (10, 7.5, 6.9, 1, 0)]
    sessions = pd.DataFrame(
        {C.USER: [1, 2, 3, 4, 5], C.ITEM: list("abcde"), C.START_TS: ends, C.END_TS: ends}
    )
    ratings = pd.DataFrame({C.USER: [1, 3], C.ITEM: ["a", "c"], C.RATING: [4, 5],
                            "ts": [T - pd.Timedelta(days=9), T - pd.Timedelta(days=2)]})  # fmt: skip
    kept, rated = last_days(sessions, ratings, 7.0)
    assert kept[C.USER].tolist() == [3, 4, 5]
    assert rated[C.USER].tolist() == [3]
    # The window is measured back from the latest session, not from the wall clock.
    assert len(last_days(sessions, ratings, 100.0)[0]) == 5


def test_the_knob_is_off_by_default_and_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECSYS_RANK_HISTORY_DAYS", raising=False)
    assert RankSettings().history_days is None
    monkeypatch.setenv("RECSYS_RANK_HISTORY_DAYS", "7")
    assert RankSettings().history_days == 7.0
