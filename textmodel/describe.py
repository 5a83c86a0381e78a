"""Parsing a self-description (answers to "What movies do you like / not like") for the cold-start policy.

What is read, and why this way:

- Titles: `TitleIndex.match` on each answer (named titles are the strongest evidence a text gives).
- Genres: an everyday-language lexicon (`GENRE_WORDS`: "scary", "sci-fi", "whodunits", "rom-coms",
  "westerns", ...), matched on word boundaries after the title spans are blanked out (so "Star
  Wars" is not the war genre). Negation is read per clause: in the likes answer, a mention with
  a negative cue ("not", "don't", "hate", "can't stand", "no ...") before it in its clause is a
  dislike ("comedies, but not horror"); everything the dislikes answer names is disliked,
  whatever its wording ("not a fan of X").
- Vector: the encoder's vector of the likes answer as written (what the user would search with);
  the dislikes answer is not embedded: a sentence encoder places "no horror" next to horror.
- Kind: `empty` when both answers are blank; `informative` when a title or genre is named or the
  likes answer holds a content word (not in `VAGUE_WORDS`: "anything really", "good movies",
  "depends on my mood"); otherwise `vague`. Only informative descriptions leave popularity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from events.metadata import GENRES
from textmodel.encoder import TextEncoder
from textmodel.titles import COMMON_WORDS, TitleIndex, fold

EMPTY: Final = "empty"
"""Both answers blank."""
VAGUE: Final = "vague"
"""Something written, but nothing that says which movies."""
INFORMATIVE: Final = "informative"
"""A title, a genre or a content word the encoder can use."""
KINDS: Final = (EMPTY, VAGUE, INFORMATIVE)
"""Description kinds, emptiest first."""

# Everyday names of each genre (regular expressions over folded text, word-bounded). Plurals and
# common spellings are covered by the patterns; kept to words whose genre is unambiguous.
GENRE_WORDS: Final[dict[str, str]] = {
    "Action": r"action|shoot[ -]?em[ -]?ups?|explosions?|car chases?|martial arts|kung fu|gunfights?",
    "Adventure": r"adventures?|adventurous|treasure hunts?|epic journeys?|quests?|swashbucklers?|expeditions?",
    "Animation": r"animated|animations?|cartoons?|anime|pixar(?:[ -]style)?|stop[ -]motion",
    "Comedy": r"comed(?:y|ies)|comedic|funny|laugh(?:s|ing)?|hilarious|goofy|humou?r|slapstick|parod(?:y|ies)|"
    r"spoofs?|sitcoms?|rom[ -]?coms?",
    "Crime": r"crime|criminals?|heists?|gangsters?|mob|mafia|mobsters?|noir|cop movies|cops and robbers",
    "Documentary": r"documentar(?:y|ies)|docs?|docu\w*|true stor(?:y|ies)|nature films?",
    "Drama": r"dramas?|dramatic|serious (?:movies|films)|emotional|character stud(?:y|ies)|tear[ -]?jerkers?",
    "Family": r"family|families|kids|children|childrens|feel[ -]good|for the whole family",
    "Fantasy": r"fantas(?:y|ies)|fantastical|magic(?:al)?|wizards?|dragons?|elves|fairy[ -]?tales?|sword and sorcery",
    "History": r"history|historical|period pieces?|period dramas?|biopics?|biographical|costume dramas?",
    "Horror": r"horror|scary|scare|slashers?|zombies?|ghosts?|haunted|spooky|gore|gory|vampires?|creepy",
    "Music": r"music|musicals?|concerts?|bands?|rock ?n ?roll|singers?|singing|dance movies",
    "Mystery": r"myster(?:y|ies)|mysterious|whodunn?its?|detectives?|puzzles?|murder myster(?:y|ies)",
    "Romance": r"romance|romances|romantic|rom[ -]?coms?|love stor(?:y|ies)|chick flicks?",
    "Science Fiction": r"sci[ -]?fi|science[ -]fiction|sf|space|aliens?|robots?|futuristic|future|cyberpunk|"
    r"time travel|dystopian?|dystopias?",
    "TV Movie": r"tv movies?|tv films?|made[ -]for[ -]tv|television (?:movies|films)|hallmark(?:[ -]type)?",
    "Thriller": r"thrillers?|thrilling|suspense(?:ful)?|edge[ -]of[ -](?:my|your|the)[ -]seat|psychological|"
    r"tense|nail[ -]?biters?",
    "War": r"war|wars|wartime|military|battles?|soldiers?|ww ?(?:1|2|i|ii)|world war (?:1|2|i|ii|one|two)",
    "Western": r"westerns?|cowboys?|wild west|gunslingers?",
}
"""Genre name (events.metadata.GENRES) -> pattern of the words people use for it."""

_GENRE_RE: Final = {g: re.compile(rf"\b(?:{p})\b") for g, p in GENRE_WORDS.items()}
_NEGATION: Final = re.compile(
    r"\b(?:not(?!\s+sure)|no|never|dont|doesnt|didnt|cant|cannot|wont|hate|hated|hates|dislike|dislikes|disliked|avoid|"
    r"except|but not|nothing|neither|nor|without|boring|bore|bores|awful|terrible|worst)\b"
)
_CLAUSE: Final = re.compile(r"[.;!?\n]+|\bbut\b|\bhowever\b|\bexcept\b", re.IGNORECASE)
_WORD: Final = re.compile(r"[a-z0-9]+")

_VAGUE_WORDS_TEXT: Final = """
anything everything whatever popular sure idk dunno mood depends depending most mostly really
honestly good great nice cool ok okay recommend recommended recommendations recommends story
stories plot plots new releases release relax relaxing chill entertaining interesting whatevers
na n/a none nope probably maybe usually generally variety various all sorts kinds type types
quality acting actors well made fine mainstream hits blockbuster blockbusters trending
"""
VAGUE_WORDS: Final = COMMON_WORDS | frozenset(_VAGUE_WORDS_TEXT.split())
"""Words that do not say which movies (with `COMMON_WORDS`): a likes answer of only these is vague."""


@dataclass(frozen=True)
class ParsedDescription:
    """What a self-description says: its vector, the titles and genres named, and how informative it is."""

    vector: npt.NDArray[np.float32] | None
    """The encoder's vector of the likes answer (None when it is empty or no encoder was given)."""
    model_id: str | None
    """The encoder that made `vector` (vectors of other models are never compared with it)."""
    liked: tuple[str, ...]
    """Catalogue movie ids named as liked."""
    disliked: tuple[str, ...]
    """Catalogue movie ids named as disliked."""
    liked_genres: tuple[str, ...]
    """Genres (events.metadata.GENRES names) named as liked."""
    disliked_genres: tuple[str, ...]
    """Genres named as disliked."""
    kind: str
    """`empty`, `vague` or `informative`."""


def _clean(text: str | None) -> str:
    return text.strip() if isinstance(text, str) else ""


def _blank_spans(text: str, spans: list[tuple[tuple[str, ...], int, int]]) -> str:
    """`text` with the title spans replaced by spaces (their words are not genre words)."""
    chars = list(text)
    for _, start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def genres_in(text: str) -> list[str]:
    """Genres named in `text` (order of GENRES)."""
    folded = fold(text)
    return [g for g in GENRES if g in _GENRE_RE and _GENRE_RE[g].search(folded)]


def _split_genres(text: str, negate_all: bool) -> tuple[list[str], list[str]]:
    """(liked, disliked) genres of one answer: disliked when a negative cue precedes the mention in its clause.

    In the dislikes answer everything named is disliked. Only a cue before the mention counts, so
    "I love horror, nothing beats it" stays a like while "comedies, not horror" is read right.
    """
    liked: list[str] = []
    disliked: list[str] = []
    for clause in _CLAUSE.split(fold(text)):
        for genre in GENRES:
            pattern = _GENRE_RE.get(genre)
            m = pattern.search(clause) if pattern else None
            if m is None:
                continue
            target = disliked if negate_all or _NEGATION.search(clause[: m.start()]) else liked
            if genre not in target:
                target.append(genre)
    return liked, disliked


def _split_titles(text: str, titles: TitleIndex, negate_all: bool) -> tuple[list[str], list[str]]:
    """(liked, disliked) movie ids of one answer, negation read as for genres (a cue before the title in its clause)."""
    liked: list[str] = []
    disliked: list[str] = []
    spans = titles.spans(text)
    blanked = _blank_spans(text, spans)  # a title's own words ("Never Let Me Go") are no negation
    bounds = [0, *(m.end() for m in _CLAUSE.finditer(blanked)), len(text)]
    for ids, start, _ in spans:
        clause = blanked[max(b for b in bounds if b <= start) : start]
        target = disliked if negate_all or _NEGATION.search(fold(clause)) else liked
        target.extend(i for i in ids if i not in target)
    return liked, disliked


def _has_content(text: str) -> bool:
    return any(w not in VAGUE_WORDS and not w.isdigit() for w in _WORD.findall(fold(text)))


def parse_description(
    likes: str | None, dislikes: str | None, encoder: TextEncoder | None, titles: TitleIndex
) -> ParsedDescription:
    """Read a self-description: titles and genres liked/disliked, the likes vector, and its kind."""
    likes_text, dislikes_text = _clean(likes), _clean(dislikes)
    liked, disliked_in_likes = _split_titles(likes_text, titles, negate_all=False)
    _, disliked_t = _split_titles(dislikes_text, titles, negate_all=True)
    l_genres, d_genres_likes = _split_genres(_blank_spans(likes_text, titles.spans(likes_text)), False)
    _, d_genres = _split_genres(_blank_spans(dislikes_text, titles.spans(dislikes_text)), True)
    disliked = [*disliked_in_likes, *(i for i in disliked_t if i not in disliked_in_likes)]
    liked = [i for i in liked if i not in disliked]
    disliked_genres = [g for g in GENRES if g in d_genres_likes or g in d_genres]
    # A genre named on both sides ("comedies, but not dumb comedies") stays liked: the likes answer is specific.
    disliked_genres = [g for g in disliked_genres if g not in l_genres]
    vector = None
    model_id = None
    if likes_text and encoder is not None:
        vector = encoder.encode([likes_text])[0]
        model_id = encoder.model_id
    if not likes_text and not dislikes_text:
        kind = EMPTY
    elif liked or disliked or l_genres or disliked_genres or _has_content(likes_text):
        kind = INFORMATIVE
    else:
        kind = VAGUE
    return ParsedDescription(
        vector, model_id, tuple(liked), tuple(disliked), tuple(l_genres), tuple(disliked_genres), kind
    )
