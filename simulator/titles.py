"""Movie titles, course-style slugs and overviews, written from genre-specific vocabularies.

A slug is the lower-cased title with `,` turned into `_`, characters a URL or the codec cannot
carry dropped, words joined by `+`, and the year appended: `Monsters, Inc.` (2001) becomes
`monsters_+inc.+2001`, like the course's real ids.
"""

from __future__ import annotations

import random
import re
from typing import Final

from simulator.vocab import COMMON_TITLE_WORDS, GENRES, NAMES

_DROP: Final = re.compile(r"[:?#%/=\\\"<>\[\]{}|^`;]")
_SPACES: Final = re.compile(r"\s+")
_MOODS: Final = (
    "gripping",
    "heartfelt",
    "darkly funny",
    "sweeping",
    "tense",
    "whimsical",
    "haunting",
    "bittersweet",
    "rousing",
    "quietly devastating",
    "breathless",
    "offbeat",
)


def slugify(title: str, year: int) -> str:
    """The course-style movie id of a title: `spider-man+3+2007`; never holds white space, `,`, `/` or `=`."""
    text = _DROP.sub("", title.lower()).replace(",", "_")
    words = _SPACES.split(text.strip())
    return "+".join([w for w in words if w] + [str(year)])


_SMALL: Final = frozenset({"a", "an", "and", "of", "the", "&", "-"})


def _cap(text: str) -> str:
    words = text.split(" ")
    return " ".join(w if i and w in _SMALL else w[:1].upper() + w[1:] for i, w in enumerate(words))


def make_title(rnd: random.Random, genre: int) -> str:
    """A title in one of a dozen real-looking shapes, flavoured by the movie's main genre."""
    gw = rnd.choice(GENRES[genre].title_words)
    gw2 = rnd.choice(GENRES[genre].title_words)
    cw = rnd.choice(COMMON_TITLE_WORDS)
    name = rnd.choice(NAMES)
    n = rnd.randint(2, 5)
    shape = rnd.randrange(14)
    if shape == 0:
        title = f"the {gw}"
    elif shape == 1:
        title = f"{cw} {gw}"
    elif shape == 2:
        title = f"the {cw} {gw}"
    elif shape == 3:
        title = f"{gw} of the {cw}"
    elif shape == 4:
        title = f"{name}'s {gw}"
    elif shape == 5:
        title = f"{gw}: {cw} {gw2}"
    elif shape == 6:
        title = f"{cw}-{gw} {n}"
    elif shape == 7:
        title = f"{cw} {gw}, inc."
    elif shape == 8:
        title = f"the {cw} {gw}: part {n}"
    elif shape == 9:
        title = f"mr. {name} and the {gw}"
    elif shape == 10:
        title = f"{cw} & {gw}"
    elif shape == 11:
        title = f"{gw}!"
    elif shape == 12:
        title = f"{cw} {gw} - chapter {n}"
    else:
        title = f"{name} {cw}"
    return _cap(title)


def unique_titles(rnd: random.Random, genres: list[int], years: list[int]) -> tuple[list[str], list[str]]:
    """Titles and slugs for a catalogue, retrying until every slug is unique."""
    seen: set[str] = set()
    titles: list[str] = []
    slugs: list[str] = []
    for genre, year in zip(genres, years, strict=True):
        for attempt in range(50):
            title = make_title(rnd, genre)
            if attempt >= 10:  # a crowded name space: sequels and remakes set titles apart
                title = f"{title} {rnd.choice(('II', 'III', 'IV', 'Returns', 'Reloaded', 'Redux'))} {attempt}"
            slug = slugify(title, year)
            if slug not in seen:
                break
        seen.add(slug)
        titles.append(title)
        slugs.append(slug)
    return titles, slugs


def _a(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def make_overview(rnd: random.Random, genres: list[int]) -> str:
    """Two or three sentences from the vocabulary of the movie's genres (the main one first)."""
    main = GENRES[genres[0]]
    other = GENRES[genres[1]] if len(genres) > 1 else main
    first = f"{_a(rnd.choice(main.heroes))} {rnd.choice(main.plots)} in {rnd.choice(main.places)}."
    second = f"Along the way, {_a(rnd.choice(other.heroes))} {rnd.choice(other.plots)}."
    text = first[0].upper() + first[1:] + " " + second
    if rnd.random() < 0.6:
        third = GENRES[genres[-1]]
        text += f" {_a(rnd.choice(_MOODS)).capitalize()} tale of {rnd.choice(third.title_words)}"
        text += f" and {rnd.choice(third.title_words)}."
    return text
