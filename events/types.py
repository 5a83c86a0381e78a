"""Typed events for the four MLiP log lines and the parse error that replaces an exception.

Timestamps are kept as integer nanoseconds since the Unix epoch (UTC) plus the number of
fractional digits the line carried, so that formatting gives back the exact line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum


class ParseReason(StrEnum):
    """Machine-readable reason a line was rejected; the DLQ header `reason` carries it."""

    EMPTY = "empty"
    TOO_LONG = "too_long"
    NOT_UTF8 = "not_utf8"
    CONTROL_CHARS = "control_chars"
    MISSING_FIELDS = "missing_fields"
    BAD_TIMESTAMP = "bad_timestamp"
    BAD_USER_ID = "bad_user_id"
    BAD_MOVIE_ID = "bad_movie_id"
    BAD_MINUTE = "bad_minute"
    BAD_RATING = "bad_rating"
    BAD_STATUS = "bad_status"
    BAD_RESULT = "bad_result"
    BAD_RESPONSE_TIME = "bad_response_time"
    UNKNOWN_REQUEST = "unknown_request"
    FUTURE_TIMESTAMP = "future_timestamp"
    """Set by ingestion, not the codec: the line is dated further ahead of its Kafka message time than allowed."""


@dataclass(frozen=True, slots=True)
class ParseError:
    """Why a line is not an event; `detail` is a short human-readable hint."""

    reason: ParseReason
    detail: str = ""


def _to_datetime(ts_ns: int) -> datetime:
    return datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=UTC).replace(
        microsecond=(ts_ns % 1_000_000_000) // 1000
    )


# Events are plain slotted dataclasses, not frozen ones: a frozen __init__ costs 3x more and
# the codec builds hundreds of thousands per second. Treat them as values all the same.
@dataclass(slots=True)
class _Base:
    ts_ns: int
    """Event time, nanoseconds since the epoch, UTC."""
    user_id: int

    @property
    def time(self) -> datetime:
        """Event time as an aware UTC datetime, floored to microseconds."""
        return _to_datetime(self.ts_ns)


@dataclass(slots=True)
class WatchEvent(_Base):
    """`<time>,<userid>,GET /data/m/<movieid>/<minute>.mpg`: one minute of a movie streamed."""

    movie_id: str
    minute: int
    ts_digits: int = 0
    """Fractional-second digits the line carried (0 to 9)."""


@dataclass(slots=True)
class RateEvent(_Base):
    """`<time>,<userid>,GET /rate/<movieid>=<rating>`: a user's star rating."""

    movie_id: str
    rating: int
    ts_digits: int = 0


@dataclass(slots=True)
class AccountEvent(_Base):
    """`<time>,<userid>,GET /create_account`: a new account."""

    ts_digits: int = 0


@dataclass(slots=True)
class RecommendationEvent(_Base):
    """`<time>,<userid>,recommendation request <server>, status <code>, result: ..., <ms> ms`.

    A successful answer (status 200) carries `results`; any other status carries the
    error text in `error` (which may hold commas, colons and the word `ms`).
    """

    server: str
    status: int
    results: tuple[str, ...]
    response_ms: int
    error: str | None = None
    ts_digits: int = 0
    list_sep: str = ", "
    """How the result list was joined: `", "` or `","`."""
    time_sep: str = ", "
    """Between the result (or error) and the response time: `", "` or `","`."""
    ms_sep: str = " "
    """Between the response time and `ms`: `" "` or `""`."""

    @property
    def ok(self) -> bool:
        """True when the service answered with a list."""
        return self.error is None


Event = WatchEvent | RateEvent | AccountEvent | RecommendationEvent
"""Any event of the course stream."""
