"""The metadata API's contract (TMDB-like movies, MLiP users) as lenient pydantic models, and the genre vocabulary.

Parsing is lenient on purpose: fields may be missing or renamed by a schema change, and a
partial record must still be usable (missing values stay None) rather than fail a batch.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict, field_validator

GENRES: Final[tuple[str, ...]] = (
    "Action", "Adventure", "Animation", "Comedy", "Crime", "Documentary", "Drama", "Family", "Fantasy",
    "History", "Horror", "Music", "Mystery", "Romance", "Science Fiction", "TV Movie", "Thriller", "War",
    "Western",
)  # fmt: skip
"""TMDB's movie genres: the fixed order of every per-genre feature vector."""
GENRE_INDEX: Final[dict[str, int]] = {g.lower(): i for i, g in enumerate(GENRES)}


def genre_names(value: Any) -> list[str]:
    """Known genre names from TMDB's `[{"id", "name"}]`, a list of names, or `"A|B"` text; unknown ones dropped."""
    if value is None:
        return []
    items: list[Any] = (
        value.split("|") if isinstance(value, str) else list(value) if isinstance(value, list) else []
    )
    out: list[str] = []
    for item in items:
        name = item.get("name") if isinstance(item, dict) else item
        if isinstance(name, str) and name.strip().lower() in GENRE_INDEX:
            canonical = GENRES[GENRE_INDEX[name.strip().lower()]]
            if canonical not in out:
                out.append(canonical)
    return out


class MovieMeta(BaseModel):
    """A movie as the metadata API describes it; `cost` is the license cost in USD per play."""

    model_config = ConfigDict(extra="ignore")

    id: str
    tmdb_id: int | None = None
    imdb_id: str | None = None
    title: str | None = None
    genres: list[str] = []
    overview: str | None = None
    popularity: float | None = None
    vote_average: float | None = None
    vote_count: int | None = None
    release_date: str | None = None
    runtime: int | None = None
    original_language: str | None = None
    cost: float | None = None
    adult: bool | None = None
    """Adult-only title (TMDB's flag); None when the API did not say."""

    @field_validator("genres", mode="before")
    @classmethod
    def _genres(cls, value: Any) -> list[str]:
        return genre_names(value)

    @property
    def year(self) -> int | None:
        """Release year from `release_date` (YYYY-MM-DD), if present."""
        if self.release_date and self.release_date[:4].isdigit():
            return int(self.release_date[:4])
        return None


class UserMeta(BaseModel):
    """A user as the metadata API describes them, with the self-description answers when present."""

    model_config = ConfigDict(extra="ignore")

    user_id: int
    age: int | None = None
    occupation: str | None = None
    gender: str | None = None
    likes: str | None = None
    """Answer to "What movies do you like"."""
    dislikes: str | None = None
    """Answer to "What movies do you not like"."""
