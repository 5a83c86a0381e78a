"""Self-description cold start: title matching, parsing, the policy's terms, the hand-over rule."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

import ranking.cold_start as cs
from events.metadata import GENRES
from ranking.cold_start import HANDOVER_PLAYS, ColdStartPolicy, blend, handover_weight
from textmodel.describe import EMPTY, INFORMATIVE, VAGUE, ParsedDescription, parse_description
from textmodel.tfidf import TfidfEncoder
from textmodel.titles import TitleIndex

IDS = [
    "the+matrix+1999",
    "the+matrix+reloaded+2003",
    "up+2009",
    "her+2013",
    "fist+star+fury+2025",
    "ivys+hunter+2020",
    "the+blast+2026",
    "the+blast+1990",
    "monsters_+inc.+2001",
    "spider-man+3+2007",
    "the+party+2001",
    "amelie+2001",
]
TITLES: list[str | None] = [
    "Matrix, The",
    "The Matrix Reloaded",
    "Up",
    "Her",
    "Fist: Star Fury",
    "Ivy's Hunter",
    "The Blast",
    "The Blast",
    None,
    "Spider-Man 3",
    "The Party",
    "Amélie",
]


@pytest.fixture(scope="module")
def index() -> TitleIndex:
    return TitleIndex.build(IDS, TITLES)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I loved The Matrix!", ["the+matrix+1999"]),
        ("THE MATRIX RELOADED was ok", ["the+matrix+reloaded+2003"]),  # case; longest title wins
        ("the matrix (1999)", ["the+matrix+1999"]),  # year, weak form made strong by it
        ("Matrix, The is great", ["the+matrix+1999"]),  # article order as catalogues write it
        ("ivys hunter", ["ivys+hunter+2020"]),  # punctuation
        (
            "Ivy's Hunter, and Monsters, Inc.",
            ["ivys+hunter+2020", "monsters_+inc.+2001"],
        ),  # title from the slug
        ("loved spider man 3", ["spider-man+3+2007"]),
        ("I watched the blast 1990 twice", ["the+blast+1990"]),  # year picks the remake
        ("Watched The Blast", ["the+blast+1990", "the+blast+2026"]),  # no year: both versions named
        ("I grew up watching Her and Up", ["her+2013", "up+2009"]),  # capitalised mid-sentence
        ("amelie", ["amelie+2001"]),  # accents folded
    ],
)
def test_title_matching(index: TitleIndex, text: str, expected: list[str]) -> None:
    assert index.match(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "i love up",
        "Up to you",
        "her favourite movies",
        "it was a blast",
        "we had a party",
        "we went to the party",
        "anything really",
        "the matrix of options",  # lower-case single-word title inside a mixed-case text is not trusted
        "",
    ],
)
def test_no_false_hits_on_common_words(index: TitleIndex, text: str) -> None:
    assert index.match(text.capitalize() if text.startswith("the matrix") else text) == []


def test_shortest_unambiguous_head(index: TitleIndex) -> None:
    # "Fist: Star Fury" is known by its head when no other movie has it.
    assert index.match("I liked Fist and nothing else") == ["fist+star+fury+2025"]
    two = TitleIndex.build(["fist+a+2020", "fist+b+2021"], ["Fist: Alpha", "Fist: Beta"])
    assert two.match("I liked Fist and nothing else") == []
    assert two.match("I liked Fist: Beta") == ["fist+b+2021"]


def test_parse_genres_titles_and_negation(index: TitleIndex) -> None:
    d = parse_description(
        "Scary movies and sci-fi, especially The Matrix. But not rom-coms.",
        "I can't stand westerns, and Her put me to sleep.",
        None,
        index,
    )
    assert d.liked == ("the+matrix+1999",)
    assert d.disliked == ("her+2013",)
    assert d.liked_genres == ("Horror", "Science Fiction")
    assert set(d.disliked_genres) == {"Romance", "Comedy", "Western"}
    assert d.kind == INFORMATIVE and d.vector is None and d.model_id is None


@pytest.mark.parametrize(
    ("likes", "liked", "disliked"),
    [
        ("I love horror, nothing beats it", ("Horror",), ()),
        ("comedies, not horror", ("Comedy",), ("Horror",)),
        ("I'm not sure, maybe westerns", ("Western",), ()),
        ("I don't like dramas", (), ("Drama",)),
    ],
)
def test_negation_precedes_the_mention(
    index: TitleIndex, likes: str, liked: tuple[str, ...], disliked: tuple[str, ...]
) -> None:
    d = parse_description(likes, None, None, index)
    assert (d.liked_genres, d.disliked_genres) == (liked, disliked)


def test_title_words_are_not_genres() -> None:
    index = TitleIndex.build(["star+wars+1977"], ["Star Wars"])
    d = parse_description("Star Wars", None, None, index)
    assert d.liked == ("star+wars+1977",) and d.liked_genres == ()


@pytest.mark.parametrize(
    ("likes", "dislikes", "kind"),
    [
        (None, None, EMPTY),
        ("  ", "", EMPTY),
        ("anything really", "n/a", VAGUE),
        ("depends on my mood", None, VAGUE),
        ("good movies", "not sure", VAGUE),
        ("movies about space robots", None, INFORMATIVE),
        ("", "no westerns", INFORMATIVE),
    ],
)
def test_kinds(index: TitleIndex, likes: str | None, dislikes: str | None, kind: str) -> None:
    assert parse_description(likes, dislikes, None, index).kind == kind


def test_vector_is_the_encoders(index: TitleIndex) -> None:
    enc = TfidfEncoder(64)
    d = parse_description("horror movies", None, enc, index)
    assert d.model_id == enc.model_id and d.vector is not None
    np.testing.assert_allclose(d.vector, enc.encode(["horror movies"])[0])
    assert parse_description("", "horror", enc, index).vector is None


def _genres(rows: list[list[str]]) -> np.ndarray:
    out = np.zeros((len(rows), len(GENRES)), dtype=bool)
    for i, names in enumerate(rows):
        out[i, [GENRES.index(g) for g in names]] = True
    return out


def _desc(**kw: object) -> ParsedDescription:
    return replace(ParsedDescription(None, None, (), (), (), (), INFORMATIVE), **kw)  # type: ignore[arg-type]


MOVIES = ["h1", "h2", "c1", "c2", "d1"]
GENRE_ROWS = [["Horror"], ["Horror", "Thriller"], ["Comedy"], ["Comedy", "Romance"], ["Drama"]]
POP = np.array([50.0, 40.0, 30.0, 20.0, 10.0])
FLAT = np.full(5, 30.0)  # no popularity prior: the description's terms alone rank
COST = np.array([1.0, 1.0, 1.0, 1.0, 1.0])


def _policy(
    lam: float = 0.0, cost: np.ndarray = COST, vectors: np.ndarray | None = None, pop: np.ndarray = FLAT
) -> ColdStartPolicy:
    model = "m" if vectors is not None else None
    return ColdStartPolicy(MOVIES, vectors, model, _genres(GENRE_ROWS), pop, cost, lam)


def test_empty_and_vague_fall_back_to_popularity() -> None:
    policy = _policy(pop=POP)
    for kind in (EMPTY, VAGUE):
        # Whatever a vague description happens to hold, only the popularity prior ranks.
        d = _desc(kind=kind, liked_genres=("Drama",), disliked_genres=("Horror",))
        assert policy.recommend(d, 5) == ["h1", "h2", "c1", "c2", "d1"]


def test_disliked_genres_pushed_down_liked_up() -> None:
    policy = _policy()
    ranked = policy.recommend(_desc(disliked_genres=("Horror",)), 5)
    assert set(ranked[-2:]) == {"h1", "h2"}
    assert _policy(pop=POP).recommend(_desc(disliked_genres=("Horror",)), 1) == ["c1"]
    assert policy.recommend(_desc(liked_genres=("Drama",)), 1) == ["d1"]


def test_named_titles_and_neighbours() -> None:
    vectors = np.eye(5, dtype=np.float32)
    vectors[3] = vectors[4] = np.array([0, 0, 0, 0.6, 0.8], dtype=np.float32)  # c2 and d1 are neighbours
    policy = _policy(vectors=vectors)
    ranked = policy.recommend(_desc(liked=("d1",)), 5)
    assert ranked[:2] == ["d1", "c2"]
    assert policy.recommend(_desc(liked=("d1",)), 5, seen={"d1"})[0] == "c2"
    assert policy.recommend(_desc(disliked=("h1",)), 5)[-1] == "h1"


def test_vector_of_another_model_is_ignored() -> None:
    vectors = np.eye(5, dtype=np.float32)
    policy = _policy(vectors=vectors)
    toward_d1 = np.eye(5, dtype=np.float32)[4]
    assert policy.recommend(_desc(vector=toward_d1, model_id="m"), 1) == ["d1"]
    assert policy.recommend(_desc(vector=toward_d1, model_id="other"), 1) == ["h1"]


def test_cost_penalty_moves_expensive_movies_down() -> None:
    cost = np.array([5.0, 1.0, 1.0, 1.0, 1.0])
    assert _policy(0.0, cost, pop=POP).recommend(_desc(kind=EMPTY), 1) == ["h1"]
    assert _policy(2.0, cost, pop=POP).recommend(_desc(kind=EMPTY), 5)[-1] == "h1"
    # Unknown cost is charged a high price, never a free slot.
    unknown = np.array([np.nan, 1.0, 1.0, 1.0, 2.0])
    assert (
        _policy(2.0, unknown).scores(_desc(kind=EMPTY))[0]
        < _policy(0.0, unknown).scores(_desc(kind=EMPTY))[0]
    )


def test_deterministic() -> None:
    d = _desc(liked_genres=("Comedy",), disliked_genres=("Horror",))
    a, b = _policy().scores(d), _policy().scores(d)
    np.testing.assert_array_equal(a, b)
    assert _policy().recommend(d) == _policy().recommend(d)


def test_handover_rule() -> None:
    weights = [handover_weight(n) for n in range(0, 3 * HANDOVER_PLAYS)]
    assert weights[0] == 0.0 and handover_weight(-1) == 0.0
    assert all(b >= a for a, b in itertools.pairwise(weights))
    assert weights[HANDOVER_PLAYS] == 1.0 and handover_weight(10_000) == 1.0
    assert 0.0 < handover_weight(1) < handover_weight(HANDOVER_PLAYS // 2) < 1.0


def test_blend_moves_from_cold_to_ranker() -> None:
    cold = np.array([3.0, 2.0, 1.0])
    ranker = np.array([-5.0, 0.0, 100.0])  # any scale: blended by ranks
    assert np.argmax(blend(cold, ranker, 0)) == 0
    assert np.argmax(blend(cold, ranker, HANDOVER_PLAYS)) == 2
    mid = blend(cold, ranker, 2)
    assert mid.shape == (3,) and np.all((mid >= 0) & (mid <= 1))
    with pytest.raises(ValueError):
        blend(cold, ranker[:2], 1)


def test_partial_selection_matches_a_full_sort() -> None:
    rng = np.random.default_rng(3)
    n = 400
    genres = rng.random((n, len(GENRES))) < 0.2
    pop = rng.integers(0, 5, n).astype(np.float64)  # many ties
    policy = ColdStartPolicy([f"m{i:03d}" for i in range(n)], None, None, genres, pop, np.ones(n), 0.0)
    d = _desc(liked_genres=("Horror",), disliked_genres=("Drama",))
    s = policy.scores(d)
    expected = [policy.movie_ids[i] for i in np.argsort(-s, kind="stable")[:20]]
    assert policy.recommend(d, 20) == expected
    assert policy.recommend(d, 0) == [] and len(policy.recommend(d, n + 5)) == n


def test_vector_terms_equal_the_explicit_z_scores() -> None:
    rng = np.random.default_rng(5)
    n = 300
    v = rng.normal(size=(n, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    genres = rng.random((n, len(GENRES))) < 0.2
    ids = [f"m{i}" for i in range(n)]
    policy = ColdStartPolicy(ids, v, "m", genres, rng.random(n) * 50, np.ones(n), 0.0)
    plain = policy.scores(_desc(liked_genres=("Horror",)))
    full = policy.scores(
        _desc(vector=v[0], model_id="m", liked=("m5",), disliked=("m9",), liked_genres=("Horror",))
    )

    def z(x: np.ndarray) -> np.ndarray:  # the explicit z-score the closed form must reproduce
        return cs._z(x.astype(np.float64))

    expected = (
        plain + cs.W_TEXT * z(v @ v[0]) + cs.W_NEIGHBOUR * z(v @ v[5]) - cs.W_DISLIKED_NEIGHBOUR * z(v @ v[9])
    )
    expected[5] += cs.TITLE_BOOST
    expected[9] -= cs.TITLE_BOOST
    np.testing.assert_allclose(full, expected, atol=1e-5)
