"""Self-descriptions in the MLiP style: answers to "What movies do you like" / "...do you not like".

Written from the true tastes so a text model can recover part of them, but not all: an answer
names one to three of the user's strongest (or weakest) genres by one of several everyday names
("scary movies"), sometimes a famous title the user truly likes or dislikes, sometimes a
genre picked at random (noise), and some answers are vague or empty. Every random choice is
drawn for all users at once; the per-user work is one string format (1M users in seconds).
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

from simulator.vocab import GENRES

LIKE_GENRE: Final = (
    "I love {g}.",
    "Mostly {g}.",
    "{g}",
    "big fan of {g}",
    "I'm really into {g}.",
    "{g}!!",
    "I usually watch {g}.",
    "anything {g}, honestly",
    "Give me {g} any day.",
    "{g}, I guess",
    "I enjoy {g} the most.",
    "Definitely {g}.",
    "{g} mostly, when I have time",
    "I'd say {g}.",
)
LIKE_TITLE: Final = (
    "{g}, especially {t}.",
    "{g} - something like {t}",
    "I love {g}. {t} is my all-time favourite.",
    "{t} and anything similar. Also {g}.",
    "{g}. Loved {t}!",
    "Stuff like {t}, and {g} in general.",
)
LIKE_ONLY_TITLE: Final = ("{t}", "Movies like {t}.", "{t} is my favourite movie.", "anything like {t}")
LIKE_VAGUE: Final = (
    "anything really",
    "whatever is popular",
    "not sure",
    "good movies",
    "depends on my mood",
    "I like most things",
    "idk",
    "stuff my friends recommend",
    "movies with a good story",
    "classics",
    "new releases",
    "something to relax with",
)
DISLIKE_GENRE: Final = (
    "I don't like {g}.",
    "not a fan of {g}",
    "{g}",
    "I can't stand {g}.",
    "No {g} please.",
    "{g} bore me.",
    "I hate {g}!",
    "{g}, usually",
    "I avoid {g}.",
    "Never really liked {g}.",
)
DISLIKE_TITLE: Final = (
    "{g}, and I really didn't enjoy {t}.",
    "{t} was awful. Also {g}.",
    "{g}. {t} put me to sleep.",
)
DISLIKE_ONLY_TITLE: Final = ("I didn't like {t}.", "{t}", "stuff like {t}")
DISLIKE_VAGUE: Final = (
    "nothing in particular",
    "boring ones",
    "bad acting",
    "long movies",
    "n/a",
    "not sure",
    "movies that are too slow",
    "sequels",
    "I'll watch anything",
    "cheesy stuff",
)

# Answer kinds, with their shares for likes and for dislikes.
EMPTY, VAGUE, GENRE, GENRE_TITLE, TITLE = range(5)
LIKE_MODES: Final = (0.08, 0.10, 0.50, 0.25, 0.07)
DISLIKE_MODES: Final = (0.25, 0.12, 0.48, 0.10, 0.05)
NOISE_RATE: Final = 0.12
"""Share of genre mentions replaced by a random genre."""
LOWER_RATE: Final = 0.2
"""Share of answers typed all in lower case."""

_SYNONYMS: Final = [s for g in GENRES for s in g.synonyms]
_SYN_START: Final = np.cumsum([0] + [len(g.synonyms) for g in GENRES])[:-1]
_SYN_COUNT: Final = np.array([len(g.synonyms) for g in GENRES])


def _genre_phrases(
    rng: np.random.Generator, chosen: NDArray[np.int64], n_named: NDArray[np.int64]
) -> list[str]:
    """'X', 'X and Y' or 'X, Y and Z' for each row of `chosen` (genre indices), naming n_named[i] genres."""
    n, k = chosen.shape
    noisy = rng.random((n, k)) < NOISE_RATE
    chosen = np.where(noisy, rng.integers(0, len(GENRES), (n, k)), chosen)
    syn = _SYN_START[chosen] + np.floor(rng.random((n, k)) * _SYN_COUNT[chosen]).astype(np.int64)
    comma = np.asarray(rng.random(n) < 0.5)
    words = [[_SYNONYMS[i] for i in row] for row in syn.tolist()]
    out: list[str] = []
    for w, m, c in zip(words, n_named.tolist(), comma.tolist(), strict=True):
        if m == 1:
            out.append(w[0])
        elif m == 2:
            out.append(f"{w[0]} and {w[1]}" if c else f"{w[0]}, {w[1]}")
        else:
            out.append(f"{w[0]}, {w[1]} and {w[2]}" if c else f"{w[0]}, {w[1]}, {w[2]}")
    return out


def _answers(
    rng: np.random.Generator,
    genres: NDArray[np.int64],
    titles: list[str],
    title_idx: NDArray[np.int64],
    *,
    shares: tuple[float, ...],
    templates: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]],
) -> list[str]:
    """One answer per user; `genres` are the genres worth naming, strongest first."""
    n = len(genres)
    mode = rng.choice(5, size=n, p=shares)
    n_named = rng.choice([1, 2, 3], size=n, p=[0.4, 0.4, 0.2])
    n_named = np.minimum(n_named, genres.shape[1])
    phrases = _genre_phrases(rng, genres, n_named)
    vague, by_genre, by_both, by_title = templates
    pick = rng.random(n)
    lower = (rng.random(n) < LOWER_RATE).tolist()
    out: list[str] = []
    for m, p, g, t, low in zip(mode.tolist(), pick.tolist(), phrases, title_idx.tolist(), lower, strict=True):
        if m == EMPTY:
            text = ""
        elif m == VAGUE:
            text = vague[int(p * len(vague))]
        elif m == GENRE or t < 0:
            text = by_genre[int(p * len(by_genre))].format(g=g)
        elif m == GENRE_TITLE:
            text = by_both[int(p * len(by_both))].format(g=g, t=titles[t])
        else:
            text = by_title[int(p * len(by_title))].format(t=titles[t])
        out.append(text.lower() if low else text)
    return out


def describe(
    rng: np.random.Generator,
    genre_w: NDArray[np.float32],
    titles: list[str],
    liked_title: NDArray[np.int64],
    disliked_title: NDArray[np.int64],
) -> tuple[list[str], list[str]]:
    """(likes, dislikes) answers for users with genre weights `genre_w` (rows) and favourite/worst titles."""
    order = np.argsort(-genre_w, axis=1)
    liked = order[:, :3]
    disliked = order[:, ::-1][:, :2]
    likes = _answers(
        rng, liked, titles, liked_title,
        shares=LIKE_MODES, templates=(LIKE_VAGUE, LIKE_GENRE, LIKE_TITLE, LIKE_ONLY_TITLE),
    )  # fmt: skip
    dislikes = _answers(
        rng, disliked, titles, disliked_title,
        shares=DISLIKE_MODES, templates=(DISLIKE_VAGUE, DISLIKE_GENRE, DISLIKE_TITLE, DISLIKE_ONLY_TITLE),
    )  # fmt: skip
    return likes, dislikes
