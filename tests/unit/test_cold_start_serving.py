"""Serving's `self_description` cold start: a stored vector is used, nothing stored is popular, the hand-over blends."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY

from ranking.cold_start import HANDOVER_PLAYS
from serving.cold_start import SelfDescriptionColdStart
from serving.cold_start_inputs import catalogue_frame, popularity_prior, stored_description
from serving.cold_start_paths import cold_start_outcome, handover_outcome
from serving.experiments import parse_experiments
from serving.movie_table import MovieTable
from serving.recommender import Outcome, has_history
from serving.routing import Router
from textmodel.encoder import Matrix
from textmodel.settings import TextSettings
from textmodel.tfidf import TfidfEncoder

MOVIES = {
    # id: (genres, cost, 7-day plays). Equal plays: the policy z-scores its prior, so in a catalogue
    # of six any difference in plays would be a full standard deviation and drown the text.
    "blockbuster+one+2020": (["Action"], 1.0, 10),
    "blockbuster+two+2021": (["Comedy"], 1.0, 10),
    "family+hit+2019": (["Family"], 1.0, 10),
    "alien+space+adventure+galaxy+1999": (["Science Fiction", "Adventure"], 1.0, 10),
    "romantic+paris+love+story+2001": (["Romance"], 1.0, 10),
    "haunted+house+horror+2005": (["Horror"], 1.0, 10),
}
POPULAR = ["blockbuster+one+2020", "blockbuster+two+2021", "family+hit+2019"]


class FakeModel:
    """A non-TF-IDF encoder (so the policy is not `degraded`): hashed words under its own model id."""

    def __init__(self) -> None:
        self._inner = TfidfEncoder(256, char_ngrams=False)

    @property
    def model_id(self) -> str:
        return "fake-model-v1"

    @property
    def dim(self) -> int:
        return 256

    def encode(self, texts: Sequence[str]) -> Matrix:
        return self._inner.encode(texts)


def table() -> MovieTable:
    ids = list(MOVIES)
    return MovieTable.from_rows(
        {
            "movie_id": ids,
            "movie_metadata__genres": [MOVIES[m][0] for m in ids],
            "movie_metadata__cost": [MOVIES[m][1] for m in ids],
            "movie_popularity__plays_7d": [MOVIES[m][2] for m in ids],
            "movie_metadata__year": [int(m[-4:]) for m in ids],
        },
        generation=1,
    )


def description(encoder: Any, likes: str, **overrides: Any) -> dict[str, Any]:
    """A user's online read holding a stored description (as ingestion writes it)."""
    row: dict[str, Any] = {
        "user_id": 7,
        "user_description__text_vector": encoder.encode([likes])[0].tolist(),
        "user_description__text_model_id": encoder.model_id,
        "user_description__liked_movie_ids": [],
        "user_description__disliked_movie_ids": [],
        "user_description__liked_genres": [],
        "user_description__disliked_genres": [],
        "user_description__description_kind": "informative",
    }
    row.update({f"user_description__{k}": v for k, v in overrides.items()})
    return row


@pytest.fixture
def cold(tmp_path: Path) -> SelfDescriptionColdStart:
    policy = SelfDescriptionColdStart(FakeModel, TextSettings(RECSYS_VAR_DIR=tmp_path))  # type: ignore[call-arg]
    policy.built = policy.build(table(), POPULAR)
    return policy


def outcomes(outcome: str) -> float:
    labels = {"policy": "self_description", "outcome": outcome}
    return REGISTRY.get_sample_value("recsys_cold_start_outcome_total", labels) or 0.0


def test_a_stored_vector_is_used_and_the_answer_differs_from_popular(cold: SelfDescriptionColdStart) -> None:
    user = description(FakeModel(), "space adventure with aliens across the galaxy")
    before = outcomes("stored_vector")
    out = cold_start_outcome(cold, POPULAR, "self_description", user)
    assert out.path == "cold_start" and out.reason == "self_description:stored_vector"
    assert out.movies[0] == "alien+space+adventure+galaxy+1999"
    assert out.movies[:3] != POPULAR
    assert len(out.movies) == len(MOVIES)
    assert outcomes("stored_vector") == before + 1


def test_named_genres_and_dislikes_count_without_a_vector(cold: SelfDescriptionColdStart) -> None:
    user = description(FakeModel(), "", text_vector=[], liked_genres=["Horror"], disliked_genres=["Action"])
    out = cold_start_outcome(cold, POPULAR, "self_description", user)
    assert out.reason == "self_description:no_vector"
    assert out.movies[0] == "haunted+house+horror+2005"
    assert out.movies[-1] == "blockbuster+one+2020"  # the disliked genre is pushed to the bottom


def test_nothing_stored_serves_popular_and_is_counted(cold: SelfDescriptionColdStart) -> None:
    before = outcomes("no_description")
    for user in (None, {"user_id": 7, "user_description__description_kind": None}):
        out = cold_start_outcome(cold, POPULAR, "self_description", user)
        assert (out.path, out.reason, out.movies) == ("cold_start", "popular:no_description", POPULAR)
    assert outcomes("no_description") == before + 2


def test_an_inline_read_answers_when_nothing_is_stored_and_a_stored_row_wins(
    cold: SelfDescriptionColdStart,
) -> None:
    from textmodel.describe import parse_description

    assert cold.built is not None
    parsed = parse_description("alien space adventure galaxy", None, FakeModel(), cold.built.titles)
    out = cold_start_outcome(cold, POPULAR, "self_description", None, (parsed, "inline_encode"))
    assert out.reason == "self_description:inline_encode"
    assert out.movies[0] == "alien+space+adventure+galaxy+1999"
    failed = cold_start_outcome(cold, POPULAR, "self_description", None, (None, "inline_unavailable"))
    assert (failed.reason, failed.movies) == ("popular:inline_unavailable", POPULAR)
    stored = description(FakeModel(), "", text_vector=[], liked_genres=["Horror"])
    out = cold_start_outcome(cold, POPULAR, "self_description", stored, (parsed, "inline_encode"))
    assert out.reason == "self_description:no_vector", "a stored row is never overridden by an inline read"


def test_before_the_first_build_the_arm_serves_popular(tmp_path: Path) -> None:
    idle = SelfDescriptionColdStart(FakeModel, TextSettings(RECSYS_VAR_DIR=tmp_path))  # type: ignore[call-arg]
    out = cold_start_outcome(idle, POPULAR, "self_description", description(FakeModel(), "aliens"))
    assert (out.reason, out.movies) == ("popular:not_ready", POPULAR)


def test_the_popular_arm_never_reads_the_description(cold: SelfDescriptionColdStart) -> None:
    out = cold_start_outcome(cold, POPULAR, "popular", description(FakeModel(), "aliens in space"))
    assert (out.reason, out.movies) == ("popular", POPULAR)


def test_another_encoders_vector_is_not_compared(cold: SelfDescriptionColdStart) -> None:
    other = TfidfEncoder(64)  # ingestion ran degraded: its vectors are not the policy's
    user = description(
        other, "space adventure aliens galaxy", liked_movie_ids=["romantic+paris+love+story+2001"]
    )
    out = cold_start_outcome(cold, POPULAR, "self_description", user)
    assert out.reason == "self_description:model_mismatch"
    assert out.movies[0] == "romantic+paris+love+story+2001"  # the named title still counts


def test_a_degraded_encoder_is_its_own_outcome(tmp_path: Path) -> None:
    settings = TextSettings(RECSYS_VAR_DIR=tmp_path)  # type: ignore[call-arg]
    degraded = SelfDescriptionColdStart(lambda: TfidfEncoder(128), settings)
    degraded.built = degraded.build(table(), POPULAR)
    out = cold_start_outcome(
        degraded, POPULAR, "self_description", description(TfidfEncoder(128), "aliens space")
    )
    assert out.reason == "self_description:degraded_encoder"
    assert out.movies[0] == "alien+space+adventure+galaxy+1999"


def test_watched_movies_are_never_served(cold: SelfDescriptionColdStart) -> None:
    user = description(FakeModel(), "space adventure aliens galaxy")
    user["user_watch_stats__recent_movie_ids"] = ["alien+space+adventure+galaxy+1999"]
    out = cold_start_outcome(cold, POPULAR, "self_description", user)
    assert "alien+space+adventure+galaxy+1999" not in out.movies


def test_the_handover_blends_a_little_history_and_leaves_enough_history_alone(
    cold: SelfDescriptionColdStart,
) -> None:
    ranked = Outcome(
        ["blockbuster+two+2021", "family+hit+2019", "blockbuster+one+2020"], "model", {"als": 3}, 0.0
    )
    user = description(FakeModel(), "space adventure aliens galaxy")
    answers = {}
    for plays in (0, 1, 3, HANDOVER_PLAYS):
        user["user_watch_stats__watch_count_total"] = plays
        answers[plays] = handover_outcome(cold, ranked, user)
    assert answers[0].movies[0] == "alien+space+adventure+galaxy+1999"  # no plays: the description decides
    assert answers[0].reason == "handover:self_description share=1.00"
    assert answers[0].candidate_sources["self_description"] > 0
    assert answers[3].reason is not None and answers[3].reason.startswith("handover:")
    position = {
        p: a.movies.index("alien+space+adventure+galaxy+1999")
        for p, a in answers.items()
        if p < HANDOVER_PLAYS
    }
    assert position[0] <= position[1] <= position[3]  # the ranker takes over smoothly
    assert answers[HANDOVER_PLAYS] is ranked  # enough plays: the ranker's answer untouched
    assert (
        handover_outcome(cold, ranked, {"user_watch_stats__watch_count_total": 1}) is ranked
    )  # nothing stored


def test_the_build_follows_the_table_and_only_when_an_arm_uses_it(tmp_path: Path) -> None:
    from serving.models import ModelManager

    settings = TextSettings(RECSYS_VAR_DIR=tmp_path)  # type: ignore[call-arg]
    loads: list[int] = []

    def load() -> FakeModel:
        loads.append(1)
        return FakeModel()

    cold = SelfDescriptionColdStart(load, settings)
    manager = ModelManager(lambda: None, lambda b: None, 60.0)
    popular_only = "experiments:\n  - {name: e, salt: s, arms: [{name: a, weight: 1, cold_start: popular}]}\n"
    cold.schedule(table(), manager, Router(parse_experiments(popular_only)))
    assert not cold.wait(5.0) and not loads, "no arm uses it: nothing is loaded or built"
    assert not cold.building(Router(parse_experiments(popular_only))), "readiness does not wait for it"
    ours = popular_only.replace("popular}", "self_description}")
    assert cold.building(Router(parse_experiments(ours))), "readiness waits for the first build"
    cold.schedule(table(), manager, Router(parse_experiments(ours)))
    assert cold.wait(30.0) and cold.built is not None
    assert not cold.building(Router(parse_experiments(ours)))
    assert cold.built.generation == 1 and cold.built.model_id == "fake-model-v1"
    assert list(tmp_path.glob("textmodel/movie_vectors/fake-model-v1-*.npz")), (
        "movie vectors cached under var/"
    )


def test_inputs_come_from_the_movie_table() -> None:
    t = table()
    frame = catalogue_frame(t)
    assert list(frame["movie_id"]) == list(MOVIES)
    assert list(frame.loc[3, "genres"]) == ["Adventure", "Science Fiction"]  # GENRES order
    assert frame.loc[3, "year"] == 1999
    assert list(popularity_prior(t, POPULAR)) == [10.0] * len(MOVIES)
    empty_plays = MovieTable.from_rows({"movie_id": list(MOVIES)})
    prior = popularity_prior(empty_plays, POPULAR)  # no plays counted yet: the champion's popular order
    assert prior[0] > prior[1] > prior[2] > 0 and not prior[3:].any()
    assert stored_description({"user_description__description_kind": "empty"}) is not None
    stored = stored_description(description(FakeModel(), "x y z", liked_movie_ids=["a+2000"]))
    assert stored is not None and stored.liked == ("a+2000",) and stored.vector is not None
    assert stored.vector.dtype == np.float32


def test_an_account_alone_is_no_history() -> None:
    """Ingestion writes a watch row at account creation (last_active_ts set, no sessions): still a cold user."""
    signed_up = {"user_watch_stats__watch_count_total": 0, "user_watch_stats__last_active_ts": 1_800_000_000}
    assert not has_history(signed_up, None, 10**9)
    assert has_history({**signed_up, "user_rating_stats__rating_count": 1}, None, 10**9)


def test_a_refresh_that_moved_only_plays_and_costs_reprices_the_policy(tmp_path: Path) -> None:
    from ranking.cold_start import ColdStartPolicy
    from textmodel.describe import ParsedDescription

    def with_plays(
        plays: list[int], genres_of_first: list[str] | None = None, generation: int = 1
    ) -> MovieTable:
        ids = list(MOVIES)
        genres = [MOVIES[m][0] for m in ids]
        if genres_of_first is not None:
            genres[0] = genres_of_first
        return MovieTable.from_rows({
            "movie_id": ids, "movie_metadata__genres": genres,
            "movie_metadata__cost": [MOVIES[m][1] * (1 + i) for i, m in enumerate(ids)],
            "movie_popularity__plays_7d": plays, "movie_metadata__year": [int(m[-4:]) for m in ids],
        }, generation=generation)  # fmt: skip

    cold = SelfDescriptionColdStart(FakeModel, TextSettings(RECSYS_VAR_DIR=tmp_path))  # type: ignore[call-arg]
    n = len(MOVIES)
    cold.built = first = cold.build(with_plays([10] * n), POPULAR, lam=0.1)
    moved = with_plays([1, 50, 3, 10, 200, 7][:n] + [5] * max(0, n - 6), generation=2)
    second = cold.build(moved, POPULAR, lam=0.3)
    assert second.titles is first.titles and second.generation == 2, "re-priced: titles and vectors kept"
    # Identical to a full build of the same table.
    full = SelfDescriptionColdStart(FakeModel, TextSettings(RECSYS_VAR_DIR=tmp_path)).build(
        moved, POPULAR, 0.3
    )  # type: ignore[call-arg]
    encoder = FakeModel()
    d = ParsedDescription(
        vector=encoder.encode(["space adventure aliens"])[0], model_id=encoder.model_id, liked=(),
        disliked=(), liked_genres=("Science Fiction",), disliked_genres=(), kind="informative",
    )  # fmt: skip
    assert np.allclose(second.policy.scores(d), full.policy.scores(d))
    assert isinstance(second.policy, ColdStartPolicy) and second.policy.lam == 0.3
    cold.built = second
    regenred = cold.build(with_plays([10] * n, ["Horror"], generation=3), POPULAR, lam=0.1)
    assert regenred.titles is not first.titles, "a genre changed the documents: a full build"
