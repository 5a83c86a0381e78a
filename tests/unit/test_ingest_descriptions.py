"""Ingestion's self-descriptions: bounded work per batch, retries, the rows' schema, and no second description."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from events.metadata import MovieMeta, UserMeta
from feature_repo.config import arrow_schema
from feature_repo.user_features import user_description
from ingestion import descriptions as D  # noqa: N812
from ingestion.descriptions import DescriptionWriter
from ingestion.enrichment import Lookup
from textmodel.describe import ParsedDescription
from textmodel.tfidf import TfidfEncoder
from textmodel.titles import TitleIndex


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Api:
    """The metadata API's user lookup: found users, a switch to fail, and the ids asked for."""

    def __init__(self, users: dict[int, UserMeta]) -> None:
        self.users = users
        self.down = False
        self.asked: list[list[int]] = []

    def __call__(self, ids: Sequence[int]) -> dict[int, UserMeta]:
        self.asked.append(list(ids))
        if self.down:
            return {}  # the client answers nothing for unavailable ids; it never raises
        return {u: self.users[u] for u in ids if u in self.users}


def meta(
    user: int, likes: str | None = "space adventures like The Martian", dislikes: str | None = "horror"
) -> UserMeta:
    return UserMeta(user_id=user, age=30, likes=likes, dislikes=dislikes)


def writer(api: Api, clock: Clock, **kw: Any) -> DescriptionWriter:
    return DescriptionWriter(api, load_encoder=lambda: TfidfEncoder(64), clock=clock, **kw)


def test_rows_hold_the_parsed_description_in_the_views_schema() -> None:
    api, clock = Api({1: meta(1), 2: meta(2, likes=None, dislikes=None)}), Clock()
    w = writer(api, clock)
    w.update_titles({"the+martian+2015": MovieMeta(id="the+martian+2015", title="The Martian")})
    w.want({1: 1_700_000_000 * 10**9, 2: 1_700_000_100 * 10**9})
    rows = w.rows(created_ns=1_800_000_000 * 10**9)
    assert rows is not None and rows.num_rows == 2
    got = {r["user_id"]: r for r in rows.to_pylist()}
    assert got[1]["description_kind"] == "informative"
    assert got[1]["liked_movie_ids"] == ["the+martian+2015"]
    assert got[1]["disliked_genres"] == ["Horror"]
    assert got[1]["text_model_id"] == "tfidf-h64-c3"
    assert len(got[1]["text_vector"]) == 64 and np.linalg.norm(got[1]["text_vector"]) == pytest.approx(
        1.0, abs=1e-5
    )
    assert got[2]["description_kind"] == "empty" and got[2]["text_vector"] == []
    assert got[1]["event_timestamp"].timestamp() == 1_700_000_000  # the account creation, not the write
    # Exactly the columns Feast's view and the offline schema have.
    assert set(rows.column_names) == set(arrow_schema(user_description).names)
    assert rows.select(arrow_schema(user_description).names).cast(arrow_schema(user_description))
    assert not w.pending and w.described == {1, 2}
    w.want({1: 0})
    assert not w.pending, "described users are not queued again"


def test_work_per_batch_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(D, "MAX_PER_BATCH", 3)
    api, clock = Api({u: meta(u) for u in range(10)}), Clock()
    w = writer(api, clock)
    w.want({u: 1 for u in range(10)})
    sizes = []
    while (rows := w.rows(0)) is not None:
        sizes.append(rows.num_rows)
    assert sizes == [3, 3, 3, 1]
    assert all(len(ids) <= 3 for ids in api.asked)


def test_a_failed_lookup_is_retried_with_backoff_then_given_up() -> None:
    api, clock = Api({5: meta(5)}), Clock()
    w = writer(api, clock)
    api.down = True
    w.want({5: 1})
    assert w.rows(0) is None and w.pending[5].attempts == 1
    assert w.rows(0) is None and len(api.asked) == 1, "not before its retry time"
    clock.now = D.RETRY_BASE_S
    api.down = False
    rows = w.rows(0)
    assert rows is not None and rows.column("user_id").to_pylist() == [5]
    api.down = True
    w.want({6: 1})
    for attempt in range(D.MAX_ATTEMPTS):
        clock.now += D.RETRY_BASE_S * 2**attempt
        assert w.rows(0) is None
    assert 6 not in w.pending and 6 not in w.described, "given up, never stored as described"


def test_a_record_fetched_by_the_profile_lookup_is_not_asked_for_again() -> None:
    api, clock = Api({}), Clock()
    w = writer(api, clock)
    w.want({8: 1}, {8: meta(8)})
    assert w.rows(0) is not None and api.asked == []


def test_parse_and_encoder_failures_never_raise() -> None:
    api, clock = Api({1: meta(1)}), Clock()

    def broken(*_: Any) -> ParsedDescription:
        raise RuntimeError("encoder exploded")

    w = DescriptionWriter(api, load_encoder=lambda: TfidfEncoder(64), parse=broken, clock=clock)
    w.want({1: 1})
    assert w.rows(0) is None and w.pending[1].attempts == 1

    def no_model() -> TfidfEncoder:
        raise RuntimeError("no model")

    w = DescriptionWriter(api, load_encoder=no_model, clock=clock)
    w.want({1: 1})
    rows = w.rows(0)  # titles and genres still count; the row says no vector
    assert rows is not None and rows.column("text_vector").to_pylist() == [[]]


def test_a_restart_knows_whom_it_described(tmp_path: Path) -> None:
    folder = tmp_path / "user_description"
    folder.mkdir()
    schema = arrow_schema(user_description)
    pq.write_table(pa.Table.from_pylist([], schema=schema), folder / "empty.parquet")
    api, clock = Api({1: meta(1)}), Clock()
    first = writer(api, clock)
    first.want({1: 1})
    rows = first.rows(0)
    assert rows is not None
    pq.write_table(rows, folder / "movielog-p0-000000000000-000000000009.parquet")
    again = writer(api, clock)
    again.restore(folder)
    again.want({1: 1})
    assert again.described == {1} and not again.pending


def test_titles_index_follows_the_enriched_catalogue() -> None:
    built: list[int] = []

    def build(ids: Sequence[str], titles: Sequence[str | None]) -> TitleIndex:
        built.append(len(ids))
        return TitleIndex.build(ids, titles)

    clock = Clock()
    w = DescriptionWriter(Api({}), build_titles=build, clock=clock)
    movies = {"a+2000": MovieMeta(id="a+2000", title="A")}
    w.update_titles(movies)
    w.update_titles(movies)
    movies["b+2001"] = MovieMeta(id="b+2001", title="B")
    w.update_titles(movies)  # grew, but within TITLE_REFRESH_S of the last build
    clock.now = D.TITLE_REFRESH_S + 1
    w.update_titles(movies)
    assert built == [1, 2]


class OutageApi(Api):
    """The client's real answer shape: a `Lookup` that says which ids got no answer (API down)."""

    def __call__(self, ids: Sequence[int]) -> Lookup[int, UserMeta]:  # type: ignore[override]
        self.asked.append(list(ids))
        if self.down:
            return Lookup(unavailable=set(ids))
        found = {u: self.users[u] for u in ids if u in self.users}
        return Lookup(found=found, not_found=set(ids) - set(found))


def test_an_outage_longer_than_the_retry_budget_costs_no_description() -> None:
    api, clock = OutageApi({5: meta(5)}), Clock()
    w = writer(api, clock)
    api.down = True
    w.want({5: 1})
    for _ in range(3 * D.MAX_ATTEMPTS):  # an outage far longer than MAX_ATTEMPTS lookups
        clock.now += D.RETRY_MAX_S
        assert w.rows(0) is None
    assert w.pending[5].attempts == 0 and w.pending[5].next_try - clock.now <= D.RETRY_MAX_S
    api.down = False
    clock.now += D.RETRY_MAX_S
    rows = w.rows(0)
    assert rows is not None and rows.column("user_id").to_pylist() == [5], "described once the API is back"


def test_a_user_the_api_does_not_know_is_still_given_up_and_the_queue_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api, clock = OutageApi({}), Clock()
    w = writer(api, clock)
    w.want({6: 1})
    for attempt in range(D.MAX_ATTEMPTS):
        clock.now += D.RETRY_BASE_S * 2**attempt
        assert w.rows(0) is None
    assert 6 not in w.pending, "a definite 'no such user' spends the attempts"
    monkeypatch.setattr(D, "MAX_PENDING", 3)
    w.want({u: u for u in range(10, 16)})
    assert list(w.pending) == [13, 14, 15], "the newest sign-ups are kept"
