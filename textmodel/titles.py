"""Fuzzy matching of movie titles named in free text (self-descriptions) to catalogue movie ids.

Both the titles and the text are folded the same way: accents stripped, lower case, apostrophes
dropped (`Ivy's` -> `ivys`), every other punctuation mark a word break. Each title is known under
several keys: as written, with a leading article dropped or moved from the end (`Matrix, The` and
`The Matrix` are both `the matrix` and `matrix`), and by its head before a subtitle (`Fist: Star
Fury` -> `fist`) when no other movie shares that head (the shortest unambiguous name). The text is
scanned left to right taking the longest key at each word, so `The Matrix Reloaded` is not read
as `The Matrix`; a year right after the title (`(1999)`, `1999`) picks among remakes and lets
an otherwise weak key count.

No false hits on common words: a key made only of common English words (`Up`, `Her`, `The
Party`), or of a single short word, counts only when the text capitalises it where a sentence
does not start, or gives the year. Without a year a title shared by several movies names all of
them (the user named that title; which version is unknown).
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from textmodel.movies import title_from_slug

ARTICLES: Final = frozenset({"the", "a", "an"})
"""Leading articles a title may be written with or without (and that catalogues move to the end)."""
MAX_KEY_WORDS: Final = 12
"""Longest key considered (words); longer titles are matched by their first words only if unique."""
MIN_STRONG_LEN: Final = 4
"""A single-word key shorter than this is weak (needs capitals or a year)."""

# Function words and everyday words that are also titles somewhere ("Up", "Her", "Love", "Drive").
# Kept as a plain list (no corpus needed at serving time); genre words are added so that "I love
# drama" never names a movie called "Drama".
_COMMON_WORDS_TEXT: Final = """
a about after again against all also always am an and any anything are as at away back bad be
because been before being best better big both but by can cant could day did didnt do does dont
down during each ever every everything few first for from fun funny get go going good great had
has have having he her here hers him his home how i if im in into is isnt it its ive just kind
last let life like little lot love loved made make man many me more most much must my never new
night nice no none nor not nothing now of off old on once one only or other our out over own
part people really right same see she should so some something still stuff such take than that
the their them then there these they thing things think this those through time to too under
until up us very want was watch watched way we well were what when where which while who why
will with without world would year yes yet you young your party game games house road night day
days home town city school job work car dog cat blast trouble mess fun hit boss date run break
chance change end start deal call movie movies film films flick flicks show shows series story
stories classic classics favorite favourite favourites favorites genre genres watching kids
family friends fan fans action adventure adventures animation animated cartoon cartoons comedy
comedies crime documentary documentaries doc docs drama dramas fantasy history historical horror
music musical musicals mystery mysteries romance romantic science fiction scifi sci fi thriller
thrillers war western westerns tv
"""
COMMON_WORDS: Final = frozenset(_COMMON_WORDS_TEXT.split())
"""Words that alone never name a movie unless capitalised mid-sentence or followed by the year."""

_APOSTROPHE = re.compile(r"['\u2019`]")
_WORD = re.compile(r"[a-z0-9]+")
_YEAR = re.compile(r"^(?:18|19|20)\d\d$")
_SUBTITLE = re.compile(r"\s*(?::|\s-\s|\s\u2013\s|\s\u2014\s)\s*")
_TRAILING_ARTICLE = re.compile(r"^(.*),\s*(the|a|an)$", re.IGNORECASE)


def fold(text: str) -> str:
    """Accents stripped, lower case, apostrophes dropped: the form both titles and texts are matched in."""
    return fold_map(text)[0]


def fold_map(text: str) -> tuple[str, list[int]]:
    """`fold(text)` and, for each of its characters, the offset of the original character it came from."""
    chars: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        if _APOSTROPHE.match(ch):
            continue
        plain = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode("ascii").lower()
        chars.extend(plain)
        origin.extend([i] * len(plain))
    return "".join(chars), origin


def words(text: str) -> tuple[str, ...]:
    """The folded words of `text`."""
    return tuple(_WORD.findall(fold(text)))


def _year_of(movie_id: str) -> int | None:
    last = movie_id.replace("_", "+").split("+")[-1]
    return int(last) if _YEAR.match(last) else None


def title_forms(title: str) -> list[tuple[str, ...]]:
    """Word keys of a title: as written, with its article moved to the front, and without the article."""
    text = title.strip()
    if m := _TRAILING_ARTICLE.match(text):  # "Matrix, The" -> "The Matrix"
        text = f"{m.group(2)} {m.group(1)}"
    full = words(text)
    forms = [full] if full else []
    if len(full) > 1 and full[0] in ARTICLES:
        forms.append(full[1:])
    return forms


def is_weak(key: Sequence[str]) -> bool:
    """A key that alone could be an ordinary phrase: only common words, or one short word."""
    content = [w for w in key if w not in ARTICLES]
    if not content or all(w in COMMON_WORDS or w.isdigit() for w in content):
        return True
    return len(content) == 1 and len(content[0]) < MIN_STRONG_LEN


@dataclass(frozen=True)
class _Entry:
    """The movies one key names, and how much evidence the key needs."""

    ids: tuple[str, ...]
    years: tuple[int | None, ...]
    weak: bool
    """Only common words or one short word: needs title capitals or the year."""
    single: bool
    """One content word, not a one-word title (`The Matrix`, `Matrix`): needs capitals or an all-lower-case text."""


class TitleIndex:
    """Catalogue titles by their folded word keys; `match` finds the movies a free text names."""

    def __init__(self, entries: dict[tuple[str, ...], _Entry]) -> None:
        self._entries = entries
        self._longest = max((len(k) for k in entries), default=0)

    @classmethod
    def build(cls, movie_ids: Sequence[str], titles: Sequence[str | None]) -> TitleIndex:
        """Index the catalogue: `titles[i]` is movie_ids[i]'s metadata title, or None (then read from the slug)."""
        if len(movie_ids) != len(titles):
            raise ValueError(f"{len(movie_ids)} ids but {len(titles)} titles")
        named: dict[tuple[str, ...], set[str]] = defaultdict(set)
        bare: set[tuple[str, ...]] = set()  # keys that are some title exactly as written without an article
        heads: dict[tuple[str, ...], set[str]] = defaultdict(set)
        for movie, title in zip(movie_ids, titles, strict=True):
            text = title.strip() if isinstance(title, str) and title.strip() else title_from_slug(movie)
            forms = title_forms(text)
            for form in forms:
                named[form[:MAX_KEY_WORDS]].add(movie)
            if forms and forms[0][0] not in ARTICLES:
                bare.add(forms[0])
            parts = _SUBTITLE.split(text, maxsplit=1)
            if len(parts) == 2 and parts[0].strip():
                for form in title_forms(parts[0]):
                    heads[form].add(movie)
        for head, movies in heads.items():
            # A head is a name only when unambiguous: one movie, and not another movie's full title.
            if len(movies) == 1 and head not in named:
                named[head] = set(movies)
        years = {m: _year_of(m) for m in movie_ids}
        entries = {
            key: _Entry(
                tuple(sorted(ids)),
                tuple(years[i] for i in sorted(ids)),
                is_weak(key),
                sum(w not in ARTICLES for w in key) == 1 and key not in bare,
            )
            for key, ids in named.items()
            if key
        }
        return cls(entries)

    def __len__(self) -> int:
        """Number of keys."""
        return len(self._entries)

    def match(self, text: str) -> list[str]:
        """Catalogue movie ids named in `text`, in order of mention, each once."""
        found: list[str] = []
        for ids, _, _ in self.spans(text):
            found.extend(i for i in ids if i not in found)
        return found

    def spans(self, text: str) -> list[tuple[tuple[str, ...], int, int]]:
        """(movie ids, start, end) of every title named in `text`; character offsets into `text`."""
        if not text or not self._entries:
            return []
        folded, origin = fold_map(text)
        words = [(m.group(), origin[m.start()], origin[m.end() - 1] + 1) for m in _WORD.finditer(folded)]
        out: list[tuple[tuple[str, ...], int, int]] = []
        i = 0
        while i < len(words):
            hit = self._longest_at(text, words, i)
            if hit is None:
                i += 1
                continue
            ids, n = hit
            out.append((ids, words[i][1], words[i + n - 1][2]))
            i += n
        return out

    def _longest_at(
        self, text: str, words: list[tuple[str, int, int]], i: int
    ) -> tuple[tuple[str, ...], int] | None:
        """The movies of the longest acceptable key starting at word i, and its length in words."""
        for n in range(min(self._longest, len(words) - i), 0, -1):
            key = tuple(w for w, _, _ in words[i : i + n])
            entry = self._entries.get(key)
            if entry is None:
                continue
            year = _year_after(words, i + n)
            ids = entry.ids
            if year is not None and year in entry.years:
                ids = tuple(m for m, y in zip(entry.ids, entry.years, strict=True) if y == year)
            elif (entry.weak and not _capitalised(text, words[i : i + n])) or (
                entry.single and not entry.weak and not _single_ok(text, words[i : i + n])
            ):
                continue
            return ids, n
        return None


def _year_after(words: list[tuple[str, int, int]], j: int) -> int | None:
    """The year written right after a title (`1999`, `(1999)`), if any."""
    if j < len(words) and _YEAR.match(words[j][0]):
        return int(words[j][0])
    return None


def _single_ok(text: str, span: list[tuple[str, int, int]]) -> bool:
    """A title of one content word: capitalised, or written with its article in a text typed all in lower case."""
    content = [s for w, s, _ in span if w not in ARTICLES]
    if content and text[content[0]].isupper() and not text.isupper():
        return True
    return len(span) > 1 and text == text.lower()


def _capitalised(text: str, span: list[tuple[str, int, int]]) -> bool:
    """Whether the original writes the span as a title: its content words capitalised, not merely at a sentence start."""
    if text.isupper():
        return False  # shouting says nothing about titles
    content = [(w, s) for w, s, _ in span if w not in ARTICLES] or [(w, s) for w, s, _ in span]
    if not all(text[s].isupper() for _, s in content):
        return False
    before = text[: span[0][1]].rstrip()
    if before and before[-1] not in ".!?":
        return True  # a capital mid-sentence marks a name
    # At a sentence start one capital is grammar; several capitalised words are title case.
    return len(content) > 1
