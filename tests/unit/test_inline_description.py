"""Inline self-description reads: one lookup per user, unknown users remembered, bad answers and a dead API degrade."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from serving.inline_description import BREAKER_FAILURES, InlineDescriber
from tests.unit.test_cold_start_serving import FakeModel
from textmodel.titles import TitleIndex

TITLES = TitleIndex.build(["alien+space+adventure+galaxy+1999", "haunted+house+horror+2005"], [None, None])
USERS = {7: {"user_id": 7, "likes": "I love alien space adventure galaxy", "dislikes": "horror"}}


class Api:
    """A metadata API as an httpx transport: counts calls; `mode` picks the failure it plays."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode, self.calls = mode, 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        user = int(request.url.path.rsplit("/", 1)[1])
        if self.mode == "down":
            raise httpx.ConnectError("refused", request=request)
        if self.mode == "500":
            return httpx.Response(500, text="boom")
        if self.mode == "garbage":
            return httpx.Response(200, text="<html>not json</html>")
        if self.mode == "other_user":
            return httpx.Response(200, json={**USERS[7], "user_id": 8})
        if user not in USERS:
            return httpx.Response(404, json={"error": "not found"})
        return httpx.Response(200, content=json.dumps(USERS[user]).encode())


def describe(api: Api, user: int, times: int = 1) -> list[tuple[object, str]]:
    async def run() -> list[tuple[object, str]]:
        inline = InlineDescriber("http://meta", 0.5, transport=httpx.MockTransport(api))
        try:
            return [await inline.describe(user, FakeModel(), TITLES) for _ in range(times)]
        finally:
            await inline.aclose()

    return asyncio.run(run())


def test_a_user_is_fetched_once_parsed_and_encoded() -> None:
    api = Api()
    answers = describe(api, 7, times=3)
    assert api.calls == 1, "later requests use the cached answer"
    parsed, outcome = answers[0]
    assert outcome == "inline_encode" and all(a[1] == "inline_encode" for a in answers)
    assert parsed is not None
    assert parsed.liked == ("alien+space+adventure+galaxy+1999",)  # type: ignore[attr-defined]
    assert parsed.disliked_genres == ("Horror",)  # type: ignore[attr-defined]
    assert parsed.model_id == "fake-model-v1" and parsed.vector is not None  # type: ignore[attr-defined]


def test_a_user_the_api_does_not_know_is_remembered_as_not_found() -> None:
    api = Api()
    assert describe(api, 99, times=3) == [(None, "inline_not_found")] * 3
    assert api.calls == 1


@pytest.mark.parametrize("mode", ["down", "500", "garbage", "other_user"])
def test_a_failing_or_wrong_answer_is_unavailable_and_the_breaker_stops_asking(mode: str) -> None:
    api = Api(mode)
    answers = describe(api, 7, times=BREAKER_FAILURES + 5)
    assert {a for a in answers} == {(None, "inline_unavailable")}
    assert api.calls == BREAKER_FAILURES, "after the breaker opens no request reaches the API"


def test_a_hung_api_costs_at_most_the_timeout() -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json=USERS[7])

    async def run() -> tuple[tuple[object, str], float]:
        inline = InlineDescriber("http://meta", 0.1, transport=httpx.MockTransport(hang))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        answer = await inline.describe(7, FakeModel(), TITLES)
        await inline.aclose()
        return answer, loop.time() - t0

    answer, took = asyncio.run(run())
    assert answer == (None, "inline_unavailable") and took < 0.5
