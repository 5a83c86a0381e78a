"""Scheduled drifts: a genre's popularity surging, a taste shift in a user segment, a metadata schema change.

Drifts are declared in settings (`RECSYS_SIM_DRIFTS`, a JSON list) or a JSON file, and take
effect at a simulated time, so a replayed history and a live run see the same world change.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from simulator.catalog import Catalog
from simulator.users import GENDERS, Population
from simulator.vocab import GENRE_NAMES, OCCUPATIONS


def _known_genre(name: str) -> str:
    if name not in GENRE_NAMES:
        raise ValueError(f"unknown genre {name!r}; known: {', '.join(GENRE_NAMES)}")
    return name


GenreName = Annotated[str, AfterValidator(_known_genre)]
"""A genre name of the catalogue ('Horror', 'Science Fiction', ...)."""


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Drift(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    start: datetime = Field(description="Simulated time the drift takes effect (naive times are UTC).")
    end: datetime | None = Field(None, description="Simulated time it stops; None: it lasts.")

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _as_utc(value)

    def active(self, ts_ns: int) -> bool:
        """True when the drift applies at `ts_ns` (nanoseconds since the epoch)."""
        start = int(self.start.timestamp() * 1e9)
        end = None if self.end is None else int(self.end.timestamp() * 1e9)
        return ts_ns >= start and (end is None or ts_ns < end)


class GenreSurge(_Drift):
    """Movies of `genre` draw `factor` times more of the users' own choices (a trend, not a taste change)."""

    kind: Literal["genre_surge"] = "genre_surge"
    genre: GenreName = Field(description="Genre name as in the catalogue, e.g. 'Horror'.")
    factor: float = Field(3.0, gt=0, description="Multiplier on the genre's share of choices.")


class TasteShift(_Drift):
    """Users of a segment like `genre` more (delta > 0) or less: the ground truth itself changes."""

    kind: Literal["taste_shift"] = "taste_shift"
    genre: GenreName = Field(description="Genre whose weight shifts.")
    delta: float = Field(1.5, description="Added to the segment's genre weight (weights are ~N(0,1)).")
    min_age: int = Field(0, ge=0, description="Youngest age in the segment.")
    max_age: int = Field(200, ge=0, description="Oldest age in the segment.")
    gender: str | None = Field(None, description="'M' or 'F'; None: both.")
    occupation: str | None = Field(None, description="One occupation; None: all.")

    def segment(
        self, age: NDArray[np.integer], gender: NDArray[np.str_], occupation: NDArray[np.str_]
    ) -> NDArray[np.bool_]:
        """Boolean mask of the users in the segment."""
        mask = (age >= self.min_age) & (age <= self.max_age)
        if self.gender is not None:
            mask &= gender == self.gender
        if self.occupation is not None:
            mask &= occupation == self.occupation
        return np.asarray(mask, dtype=bool)


class SchemaChange(_Drift):
    """The metadata API renames or drops fields of a resource from `start` on."""

    kind: Literal["schema_change"] = "schema_change"
    resource: Literal["movie", "user"] = Field("movie", description="Which endpoint changes.")
    rename: dict[str, str] = Field(default_factory=dict, description="Old field name -> new name.")
    drop: list[str] = Field(default_factory=list, description="Fields no longer sent.")


Drift = Annotated[GenreSurge | TasteShift | SchemaChange, Field(discriminator="kind")]
"""Any scheduled drift."""

_DRIFTS = TypeAdapter(list[Drift])


def load_drifts(path: Path) -> list[GenreSurge | TasteShift | SchemaChange]:
    """Drifts from a JSON file holding a list of drift objects (see docs/simulator.md)."""
    return _DRIFTS.validate_python(json.loads(path.read_text()))


def example_drifts(start: datetime) -> list[GenreSurge | TasteShift | SchemaChange]:
    """A demonstration schedule relative to `start`: a horror surge on day 3, a taste shift and a schema change."""
    from datetime import timedelta

    s = _as_utc(start)
    return [
        GenreSurge(start=s + timedelta(days=3), end=s + timedelta(days=6), genre="Horror", factor=4.0),
        TasteShift(start=s + timedelta(days=5), genre="Animation", delta=1.5, min_age=18, max_age=29),
        SchemaChange(start=s + timedelta(days=7), rename={"vote_average": "rating_average"}),
    ]


class DriftSchedule:
    """The drifts of a run bound to the world: what they change at a given simulated time."""

    def __init__(
        self,
        drifts: list[GenreSurge | TasteShift | SchemaChange],
        movie_genres: NDArray[np.bool_],
        demographics: tuple[NDArray[np.integer], NDArray[np.str_], NDArray[np.str_]] | None = None,
    ) -> None:
        self._genre_index = {name: i for i, name in enumerate(GENRE_NAMES)}
        self.drifts = drifts
        self._movie_genres = movie_genres
        self._demographics = demographics
        """(age, gender, occupation) per user, for taste-shift segments."""
        self._segments: dict[int, NDArray[np.bool_]] = {}

    @classmethod
    def for_world(
        cls, drifts: list[GenreSurge | TasteShift | SchemaChange], catalog: Catalog, population: Population
    ) -> DriftSchedule:
        """The schedule of `drifts` over a world's catalogue and users."""
        gender = np.asarray(GENDERS)[population.gender]
        occupation = np.asarray(OCCUPATIONS)[population.occupation]
        return cls(drifts, catalog.genres, (population.age, gender, occupation))

    def choice_boost(self, ts_ns: int) -> NDArray[np.float32] | None:
        """Per movie, the log-factor added to choice scores by active genre surges (None: no surge)."""
        active = [d for d in self.drifts if isinstance(d, GenreSurge) and d.active(ts_ns)]
        if not active:
            return None
        boost = np.zeros(self._movie_genres.shape[0], dtype=np.float32)
        for d in active:
            boost += np.float32(np.log(d.factor)) * self._movie_genres[:, self._genre_index[d.genre]]
        return boost

    def genre_shift(self, users: NDArray[np.int64], ts_ns: int) -> NDArray[np.float32] | None:
        """(len(users), genres) change of genre weights from active taste shifts (None: no shift)."""
        active = [(i, d) for i, d in enumerate(self.drifts) if isinstance(d, TasteShift) and d.active(ts_ns)]
        if not active:
            return None
        if self._demographics is None:
            raise ValueError("taste shifts need the users' demographics")
        shift = np.zeros((len(users), len(self._genre_index)), dtype=np.float32)
        for i, d in active:
            if i not in self._segments:
                self._segments[i] = d.segment(*self._demographics)
            shift[:, self._genre_index[d.genre]] += np.float32(d.delta) * self._segments[i][users]
        return shift

    def schema_changes(self, resource: str, ts_ns: int) -> list[SchemaChange]:
        """Schema changes of `resource` in force at `ts_ns`, oldest first."""
        return [
            d
            for d in self.drifts
            if isinstance(d, SchemaChange) and d.resource == resource and d.active(ts_ns)
        ]
