"""The cold-start evaluation on a tiny synthetic log: cohort, labels, policies, figures, intervals, report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from events.metadata import GENRES
from ranking import columns as C  # noqa: N812
from ranking.cold_eval import (
    DESCRIPTION,
    DESCRIPTION_TITLES,
    POPULARITY,
    cohort,
    decayed_popularity,
    evaluate,
    policy_lists,
)
from ranking.cold_start import ColdStartPolicy
from recsys.cold_start_eval import default_cutoff, report_lines, summary
from textmodel.describe import INFORMATIVE, VAGUE, parse_description
from textmodel.titles import TitleIndex

T0 = pd.Timestamp("2026-11-01", tz="UTC")
CUT = T0 + pd.Timedelta(days=3)
END = T0 + pd.Timedelta(days=20)
HORROR = [f"scream+{i}+2000" for i in range(6)]
COMEDY = [f"laughs+{i}+2001" for i in range(6)]
MOVIES = HORROR + COMEDY


def _session(user: int, movie: str, start: pd.Timestamp, minutes: int = 90) -> dict[str, object]:
    return {C.USER: user, C.ITEM: movie, C.MINUTES: minutes, C.START_TS: start,
            C.END_TS: start + pd.Timedelta(minutes=minutes)}  # fmt: skip


@pytest.fixture(scope="module")
def world() -> dict[str, object]:
    rows = []
    # Old users (before the cut-off) make comedies popular.
    for u in range(1, 30):
        for j, m in enumerate(COMEDY[:4]):
            rows.append(_session(u, m, T0 + pd.Timedelta(hours=u + j)))
    rows.append(_session(1, HORROR[0], T0 + pd.Timedelta(hours=40)))
    # New users after the cut-off: horror fans say so, and watch horror in their first week.
    accounts = []
    for u in range(100, 140):
        joined = CUT + pd.Timedelta(days=1, hours=u - 100)
        accounts.append({C.USER: u, "ts": joined})
        for j, m in enumerate(HORROR[1:4]):
            rows.append(_session(u, m, joined + pd.Timedelta(hours=2 + j)))
        rows.append(_session(u, HORROR[4], joined + pd.Timedelta(days=8)))  # after the first week: no label
    accounts.append({C.USER: 200, "ts": END - pd.Timedelta(days=2)})  # first week not observed: left out
    accounts.append({C.USER: 5, "ts": T0})  # joined before the cut-off: not new
    sessions = pd.DataFrame(rows)
    ratings = pd.DataFrame({C.USER: pd.Series(dtype="int64"), C.ITEM: pd.Series(dtype="str"),
                            C.RATING: pd.Series(dtype="int64"), "ts": pd.Series(dtype="datetime64[us, UTC]")})  # fmt: skip
    genres = np.zeros((len(MOVIES), len(GENRES)), dtype=bool)
    genres[: len(HORROR), GENRES.index("Horror")] = True
    genres[len(HORROR) :, GENRES.index("Comedy")] = True
    return {"sessions": sessions, "ratings": ratings, "accounts": pd.DataFrame(accounts), "genres": genres}


def _policy(world: dict[str, object], lam: float = 0.0) -> ColdStartPolicy:
    sessions = world["sessions"]
    assert isinstance(sessions, pd.DataFrame)
    pop = decayed_popularity(sessions, MOVIES, CUT, 7.0)
    cost = np.where(np.arange(len(MOVIES)) % 2 == 0, 1.0, 2.0)
    return ColdStartPolicy(MOVIES, None, None, world["genres"], pop, cost, lam)  # type: ignore[arg-type]


def test_cohort_is_new_users_with_their_first_week(world: dict[str, object]) -> None:
    co = cohort(world["accounts"], world["sessions"], world["ratings"], {}, CUT, END)  # type: ignore[arg-type]
    assert co.users.tolist() == list(range(100, 140))
    assert set(co.truth[C.ITEM]) == set(HORROR[1:4])  # the day-8 session is outside the first week
    assert (co.truth[C.GAIN] == 3).all()  # 90 of 100 default minutes: watched through


def test_decayed_popularity_only_counts_plays_before(world: dict[str, object]) -> None:
    pop = decayed_popularity(world["sessions"], MOVIES, CUT, 7.0)  # type: ignore[arg-type]
    assert pop[MOVIES.index(HORROR[2])] == 0.0  # watched by new users only, after the cut-off
    assert pop[MOVIES.index(COMEDY[0])] > pop[MOVIES.index(HORROR[0])] > 0


def test_description_beats_popularity_on_synthetic_fans(world: dict[str, object]) -> None:
    co = cohort(world["accounts"], world["sessions"], world["ratings"], {}, CUT, END)  # type: ignore[arg-type]
    titles = TitleIndex.build(MOVIES, [None] * len(MOVIES))
    parsed = {int(u): parse_description("scary movies!", "no comedies", None, titles) for u in co.users[:30]}
    parsed |= {int(u): parse_description("anything really", None, None, titles) for u in co.users[30:]}
    cost = pd.Series(np.where(np.arange(len(MOVIES)) % 2 == 0, 1.0, 2.0), index=MOVIES)
    r = evaluate(co, parsed, _policy(world), cost, CUT)
    assert r.users == 40 and r.kinds == {"empty": 0, "vague": 10, "informative": 30}
    pop, desc = r.figure(POPULARITY), r.figure(DESCRIPTION)
    assert pop is not None and desc is not None and desc.ndcg > pop.ndcg
    diff, low, high = r.ci[DESCRIPTION]
    assert low > 0 and low <= diff <= high
    # Vague users are served popularity by every policy: no difference at all.
    assert r.ci_by_kind[(DESCRIPTION, VAGUE)] == (0.0, 0.0, 0.0)
    assert r.figure(DESCRIPTION_TITLES, INFORMATIVE) is not None
    text = "\n".join(report_lines(r) + summary(r))
    assert "description − popularity" in text and "| informative | description |" in text


def test_lists_are_top_k_and_deterministic(world: dict[str, object]) -> None:
    titles = TitleIndex.build(MOVIES, [None] * len(MOVIES))
    parsed = {1: parse_description("scary movies, especially scream 2", None, None, titles)}
    users = np.array([1, 2], dtype=np.int64)
    a, b = policy_lists(_policy(world), parsed, users, 5), policy_lists(_policy(world), parsed, users, 5)
    for name in (POPULARITY, DESCRIPTION, DESCRIPTION_TITLES):
        pd.testing.assert_frame_equal(a[name], b[name])
        assert a[name].groupby(C.USER).size().tolist() == [5, 5]
    top = a[DESCRIPTION_TITLES]
    assert top[(top[C.USER] == 1) & (top[C.RANK] == 1)][C.ITEM].item() == "scream+2+2000"


def test_cost_penalty_lowers_mean_cost(world: dict[str, object]) -> None:
    co = cohort(world["accounts"], world["sessions"], world["ratings"], {}, CUT, END)  # type: ignore[arg-type]
    cost = pd.Series(np.where(np.arange(len(MOVIES)) % 2 == 0, 1.0, 2.0), index=MOVIES)
    free, priced = (evaluate(co, {}, _policy(world, lam), cost, CUT, k=4) for lam in (0.0, 5.0))
    f, p = free.figure(POPULARITY), priced.figure(POPULARITY)
    assert f is not None and p is not None and p.mean_cost < f.mean_cost


def test_default_cutoff_leaves_a_full_week(world: dict[str, object], tmp_path: Path) -> None:
    sessions = world["sessions"]
    assert isinstance(sessions, pd.DataFrame)
    at = default_cutoff(sessions, 7.0)
    assert at <= sessions[C.END_TS].max() - pd.Timedelta(days=14)


def test_no_new_users_gives_an_empty_report(world: dict[str, object]) -> None:
    late = END + pd.Timedelta(days=30)
    co = cohort(world["accounts"], world["sessions"], world["ratings"], {}, late, END)  # type: ignore[arg-type]
    assert len(co.users) == 0 and co.truth.empty
    r = evaluate(co, {}, _policy(world), pd.Series(1.0, index=MOVIES), late)
    assert r.users == 0 and r.figures == [] and r.ci == {}
    assert "0 users" in "\n".join(report_lines(r))


def test_descriptions_from_the_metadata_api() -> None:
    import json

    import httpx

    from recsys.cold_start_eval import descriptions_api

    def answer(request: httpx.Request) -> httpx.Response:
        ids = [int(i) for i in request.url.path.rsplit("/", 1)[1].split(",")]
        records = [
            {"user_id": i, "age": 30, "likes": f"horror {i}", "dislikes": None}
            if i < 3
            else {"user_id": i, "error": "not found"}
            for i in ids
        ]
        body = records[0] if len(records) == 1 else records
        return httpx.Response(200 if len(records) > 1 or ids[0] < 3 else 404, content=json.dumps(body))

    found = descriptions_api([1, 2, 9], "http://meta", transport=httpx.MockTransport(answer))
    assert found == {1: ("horror 1", None), 2: ("horror 2", None)}
    with pytest.raises(RuntimeError, match="answered for none"):
        descriptions_api([9], "http://meta", transport=httpx.MockTransport(answer))
