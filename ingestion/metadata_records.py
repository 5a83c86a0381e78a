"""Metadata API records: ids, answer shapes, the response schema, and what a record may change.

The client (`ingestion.enrichment`) moves bytes; this module decides what they mean:

- `movie_key` / `user_key`: ids as the API accepts them (others are never sent);
- `records`: (id, record) pairs from a list, a dict keyed by id or a single record;
- `MovieRecord` / `UserRecord`: the API's response schema. Every contract field must be present;
  `cost`, `genres` and `age` (the fields features and the cost penalty need) must also be
  non-null. A record is checked against it, and each violated field is reported by name, so a
  renamed field (`cost` -> `price`) is a counted `missing` violation rather than a silent null.
  `adult` (the course API's and TMDB's flag, read by serving's adult-title rule) is the one
  optional field: an API that does not send it leaves it unknown (None), not a violation;
- `parse_record`: the lenient `events.metadata` model with only the valid fields, the violations
  and the unexpected fields (where a renamed field shows up);
- `keep_last_good`: a null or missing value never replaces a value known from an earlier answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from events.metadata import MovieMeta, UserMeta

Kind = Literal["movie", "user"]
"""The two resources of the metadata API."""
K = TypeVar("K", int, str)
M = TypeVar("M", MovieMeta, UserMeta)

MOVIE_ID: Final = re.compile(r"[^\s,/=\x00-\x1f\x7f]{1,256}")
"""What the API accepts as a movie id: no white space, ',', '/', '=' or control characters."""
MAX_USER_ID: Final = 2**63 - 1
"""Largest user id (a signed 64-bit integer, as the API and Feast store it)."""
ID_FIELDS: Final[dict[Kind, tuple[str, ...]]] = {"movie": ("id", "movie_id"), "user": ("user_id", "id")}
"""Where a record's id may be, first choice first (the API keeps ids under their own names)."""


class _Record(BaseModel):
    """Schema base: unknown fields are allowed (and reported), so a renamed field is visible."""

    model_config = ConfigDict(extra="allow")


class MovieRecord(_Record):
    """A movie as the API must send it: every field present but `adult`; `cost` and `genres` not null."""

    id: str
    tmdb_id: int | None
    imdb_id: str | None
    title: str | None
    genres: list[dict[str, Any] | str]
    overview: str | None
    popularity: float | None
    vote_average: float | None
    vote_count: int | None
    release_date: str | None
    runtime: int | None
    original_language: str | None
    cost: float = Field(ge=0)
    adult: bool | None = None
    """Optional: absent or null means unknown (serving's rule for unknown flags: docs/constraints.md)."""


class UserRecord(_Record):
    """A user as the API must send it: every field present; `age` not null."""

    user_id: int
    age: int = Field(ge=0, le=150)
    occupation: str | None
    gender: str | None
    likes: str | None
    dislikes: str | None


SCHEMAS: Final[dict[Kind, type[_Record]]] = {"movie": MovieRecord, "user": UserRecord}
"""The response schema of each resource."""
MODELS: Final[dict[Kind, type[MovieMeta] | type[UserMeta]]] = {"movie": MovieMeta, "user": UserMeta}
"""The lenient model each resource is parsed into."""


@dataclass
class Parsed:
    """One record checked against the schema: the usable part, and what was wrong with it."""

    meta: MovieMeta | UserMeta | None
    """None when even the id was unusable (the record is skipped)."""
    violations: dict[str, str] = field(default_factory=dict)
    """Schema field -> `missing`, `null` or `invalid`."""
    unexpected: list[str] = field(default_factory=list)
    """Fields outside the schema (a renamed field appears here under its new name)."""
    repaired: bool = False
    """Some present value failed validation and was dropped (the rest of the record kept)."""


def movie_key(raw: Any) -> str | None:
    """A movie id as the API accepts it, or None."""
    if isinstance(raw, str) and MOVIE_ID.fullmatch(raw):
        return raw
    return None


def user_key(raw: Any) -> int | None:
    """A user id as a non-negative int (from an int or a digit string), or None."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if 0 <= raw <= MAX_USER_ID else None
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 19:
        value = int(raw)
        return value if value <= MAX_USER_ID else None
    return None


def record_id(rec: dict[str, Any], kind: Kind) -> Any:
    """The raw id a record carries, or None."""
    for name in ID_FIELDS[kind]:
        if rec.get(name) is not None:
            return rec[name]
    return None


def is_not_found(rec: dict[str, Any], kind: Kind) -> bool:
    """A per-id error entry (`{"id": ..., "error": "not found"}`) rather than a record."""
    if "error" not in rec:
        return False
    payload = set(rec) - {"error", "detail", "message", "status", *ID_FIELDS[kind]}
    return not payload


def records(
    kind: Kind, batch: list[K], body: Any, key: Callable[[Any], K | None]
) -> list[tuple[K, dict[str, Any]]] | None:
    """(id, record) pairs from whichever shape the answer has; None for garbage."""
    items: list[Any]
    if isinstance(body, list):
        items = body
    elif isinstance(body, dict) and record_id(body, kind) is None and _all_dicts(body.values()):
        # Keyed by id, {"<id>": {...}, ...}: the key names the record when the record does not.
        items = [
            v if record_id(v, kind) is not None else {**v, ID_FIELDS[kind][0]: k} for k, v in body.items()
        ]
    elif isinstance(body, dict):
        items = [body]  # one record
    else:
        items = []
    pairs: list[tuple[K, dict[str, Any]]] = []
    in_order = len(items) == len(batch)
    for i, rec in enumerate(items):
        if not isinstance(rec, dict):
            continue
        raw = record_id(rec, kind)
        # No id at all: the API answers in request order, so the position names the record.
        k = key(raw) if raw is not None else (batch[i] if in_order else None)
        if k is not None:
            pairs.append((k, rec))
    if not pairs and body != []:
        return None
    return pairs


def parse_record(kind: Kind, k: int | str, rec: dict[str, Any]) -> Parsed:
    """Check `rec` against the schema and parse it leniently: invalid fields are dropped, not the record."""
    data = {**rec, ID_FIELDS[kind][0]: k}
    out = Parsed(meta=None)
    schema = SCHEMAS[kind]
    try:
        checked = schema.model_validate(data)
        out.unexpected = sorted(checked.model_extra or {})
    except ValidationError as e:
        for err in e.errors():
            if not err["loc"]:
                continue
            name = str(err["loc"][0])
            if err["type"] == "missing":
                out.violations[name] = "missing"
            elif data.get(name) is None:
                out.violations[name] = "null"
            else:
                out.violations.setdefault(name, "invalid")
        out.unexpected = sorted(f for f in data if f not in schema.model_fields and f not in ID_FIELDS[kind])
    bad = {f for f, why in out.violations.items() if why == "invalid"}
    model = MODELS[kind]
    try:
        out.meta = model.model_validate(data)
    except ValidationError as e:
        # A value the schema allows may still fail the lenient model (and the other way round).
        bad |= {str(err["loc"][0]) for err in e.errors() if err["loc"]}
        try:
            out.meta = model.model_validate({f: v for f, v in data.items() if f not in bad})
        except ValidationError:
            return out
        out.repaired = True
    else:
        if bad:  # the lenient model took a value the schema calls invalid: drop it
            out.meta = model.model_validate({f: v for f, v in data.items() if f not in bad})
            out.repaired = True
    return out


def _is_blank(value: Any) -> bool:
    return value is None or value == []


def keep_last_good(new: M, last: M | None) -> tuple[M, list[str]]:
    """`new` with every blank (None or empty) field filled from `last`; also the names of the fields kept."""
    if last is None:
        return new, []
    kept = {
        name: getattr(last, name)
        for name in type(new).model_fields
        if _is_blank(getattr(new, name)) and not _is_blank(getattr(last, name))
    }
    return (new.model_copy(update=kept) if kept else new), sorted(kept)


def _all_dicts(values: Iterable[Any]) -> bool:
    vals = list(values)
    return bool(vals) and all(isinstance(v, dict) for v in vals)
