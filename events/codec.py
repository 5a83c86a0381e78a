"""The MLiP line codec: `parse_line` turns a log line into an event or a `ParseError`, never raising;
`format_line` turns an event back into the exact line.

Accepted variants (from real course streams): 0 to 9 fractional digits in timestamps,
punctuation inside movie slugs, result lists joined by `", "` or `","`, response times as
`45 ms` or `45ms`, and failure lines whose error text holds colons, commas and `ms`.

Speed matters (one core should parse >= 300k lines/s), so well-formed watch and rate lines
take a fast path of string splits and cache look-ups (seconds and slugs already validated
once); everything else takes the general path, which also works out the precise reason a
line is rejected. Leading zeros in numbers are accepted and normalised away by `format_line`.
"""

from __future__ import annotations

import calendar
import re
import time as _time
from typing import Final

from events.types import (
    AccountEvent,
    Event,
    ParseError,
    ParseReason,
    RateEvent,
    RecommendationEvent,
    WatchEvent,
)

MAX_LINE_BYTES: Final = 16_384
"""Longer lines are rejected before any parsing work (a 20-item answer is < 1 KiB)."""
MAX_USER_ID: Final = 2**63 - 1
"""User ids are non-negative int64 (Feast's `user_id` join key is Int64)."""
MAX_MINUTE: Final = 100_000
"""A minute index beyond this is not a movie minute."""
MIN_RATING: Final = 1
MAX_RATING: Final = 10
"""The simulator rates 1 to 5; newer course streams use up to 10."""

_SLUG: Final = r"[^\s,/=\x00-\x1f\x7f]{1,256}"
_MOVIE_RE: Final = re.compile(_SLUG)
_TS_RE: Final = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})")
_WATCH_RE: Final = re.compile(rf"GET /data/m/({_SLUG})/(\d{{1,6}})\.mpg")
_RATE_RE: Final = re.compile(rf"GET /rate/({_SLUG})=(\d{{1,3}})")
_SERVER_RE: Final = re.compile(r"[^\s,\x00-\x1f\x7f]{1,256}")
_CONTROL_RE: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

_WATCH_PREFIX: Final = "GET /data/m/"
_RATE_PREFIX: Final = "GET /rate/"
_ACCOUNT: Final = "GET /create_account"
_REC_PREFIX: Final = "recommendation request "
_SEPARATORS: Final = (", ", ",")

# Streams are time ordered, so the same second repeats for many lines: cache its parse.
_SECONDS_CACHE: dict[str, int] = {}
_SECONDS_CACHE_MAX: Final = 65_536
_POW10: Final = tuple(10 ** (9 - d) for d in range(10))
# Slugs that passed the full check; a catalogue has ~20K, so the set stays small.
_SLUGS_OK: set[str] = set()
_SLUGS_OK_MAX: Final = 200_000
_RATINGS: Final = {str(r): r for r in range(MIN_RATING, MAX_RATING + 1)}


def _parse_seconds(text: str) -> int | None:
    """Seconds since the epoch for `YYYY-MM-DDTHH:MM:SS`, or None when invalid."""
    cached = _SECONDS_CACHE.get(text)
    if cached is not None:
        return cached
    m = _TS_RE.fullmatch(text)
    if m is None or not text.isascii():
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups())
    if year < 1970 or not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    value = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if len(_SECONDS_CACHE) >= _SECONDS_CACHE_MAX:
        _SECONDS_CACHE.clear()
    _SECONDS_CACHE[text] = value
    return value


def _parse_time(text: str) -> tuple[int, int] | None:
    """(nanoseconds since the epoch, fractional digits) or None."""
    n = len(text)
    if n == 19:
        secs = _parse_seconds(text)
        return None if secs is None else (secs * 1_000_000_000, 0)
    if n < 21 or n > 29 or text[19] != ".":
        return None
    frac = text[20:]
    if not (frac.isdigit() and frac.isascii()):
        return None
    secs = _parse_seconds(text[:19])
    if secs is None:
        return None
    return secs * 1_000_000_000 + int(frac) * _POW10[len(frac)], len(frac)


def _parse_user(text: str) -> int | None:
    if not text or len(text) > 19 or not (text.isdigit() and text.isascii()):
        return None
    value = int(text)
    return value if value <= MAX_USER_ID else None


def parse_line(line: str | bytes) -> Event | ParseError:
    """Parse one log line (with or without its trailing newline) into an event or a ParseError."""
    if not isinstance(line, str):
        if len(line) > MAX_LINE_BYTES:
            return ParseError(ParseReason.TOO_LONG, f"{len(line)} bytes > {MAX_LINE_BYTES}")
        try:
            line = bytes(line).decode("utf-8")
        except UnicodeDecodeError as exc:
            return ParseError(ParseReason.NOT_UTF8, f"invalid byte at {exc.start}")
    elif len(line) > MAX_LINE_BYTES:
        return ParseError(ParseReason.TOO_LONG, f"{len(line)} chars > {MAX_LINE_BYTES}")
    if line[-1:] == "\n":
        line = line[:-2] if line[-2:] == "\r\n" else line[:-1]
    # Fast path for well-formed watch and rate lines (over 90% of the stream): split, then
    # look the second and the slug up in caches of values already validated.
    parts = line.split(",", 2)
    if len(parts) == 3:
        ts_text, user, request = parts
        secs = _SECONDS_CACHE.get(ts_text)
        if secs is not None and user.isdigit() and len(user) < 19 and user.isascii():
            if request[:12] == _WATCH_PREFIX and request[-4:] == ".mpg":
                movie, _, minute = request[12:-4].rpartition("/")
                if movie in _SLUGS_OK and minute.isdigit() and minute.isascii() and len(minute) < 6:
                    return WatchEvent(secs * 1_000_000_000, int(user), movie, int(minute), 0)
            elif request[:10] == _RATE_PREFIX:
                movie, _, rating = request[10:].rpartition("=")
                if movie in _SLUGS_OK and rating in _RATINGS:
                    return RateEvent(secs * 1_000_000_000, int(user), movie, _RATINGS[rating], 0)
    return _parse_slow(line)


def _remember_slug(movie: str) -> None:
    if len(_SLUGS_OK) >= _SLUGS_OK_MAX:
        _SLUGS_OK.clear()
    _SLUGS_OK.add(movie)


def _parse_slow(line: str) -> Event | ParseError:
    """The general path: every kind of line, with a precise reason for each failure."""
    if not line:
        return ParseError(ParseReason.EMPTY, "empty line")
    parts = line.split(",", 2)
    if len(parts) != 3:
        return ParseError(ParseReason.MISSING_FIELDS, "expected <time>,<userid>,<request>")
    ts_text, user_text, request = parts
    ts = _parse_time(ts_text)
    if ts is None:
        return ParseError(ParseReason.BAD_TIMESTAMP, f"not an ISO 8601 time: {ts_text[:40]!r}")
    user_id = _parse_user(user_text)
    if user_id is None:
        return ParseError(ParseReason.BAD_USER_ID, f"not a non-negative int64: {user_text[:40]!r}")
    ts_ns, digits = ts
    if request.startswith(_WATCH_PREFIX):
        return _parse_watch(request, ts_ns, user_id, digits)
    if request.startswith(_RATE_PREFIX):
        return _parse_rate(request, ts_ns, user_id, digits)
    if request == _ACCOUNT:
        return AccountEvent(ts_ns, user_id, digits)
    if request.startswith(_REC_PREFIX):
        return _parse_recommendation(request, ts_ns, user_id, digits)
    if _CONTROL_RE.search(request):
        return ParseError(ParseReason.CONTROL_CHARS, "control character inside the line")
    return ParseError(ParseReason.UNKNOWN_REQUEST, f"unknown request: {request[:40]!r}")


def _parse_watch(request: str, ts_ns: int, user_id: int, digits: int) -> Event | ParseError:
    m = _WATCH_RE.fullmatch(request)
    if m is None:
        movie = request[len(_WATCH_PREFIX) :].rpartition("/")[0]
        if not _MOVIE_RE.fullmatch(movie):
            return ParseError(ParseReason.BAD_MOVIE_ID, f"bad movie id: {movie[:40]!r}")
        return ParseError(ParseReason.BAD_MINUTE, "expected /data/m/<movieid>/<minute>.mpg")
    minute = int(m.group(2))
    if minute > MAX_MINUTE:
        return ParseError(ParseReason.BAD_MINUTE, f"minute {minute} > {MAX_MINUTE}")
    _remember_slug(m.group(1))
    return WatchEvent(ts_ns, user_id, m.group(1), minute, digits)


def _parse_rate(request: str, ts_ns: int, user_id: int, digits: int) -> Event | ParseError:
    m = _RATE_RE.fullmatch(request)
    if m is None:
        movie, sep, _ = request[len(_RATE_PREFIX) :].rpartition("=")
        if not sep or not _MOVIE_RE.fullmatch(movie):
            return ParseError(ParseReason.BAD_MOVIE_ID, f"bad movie id: {movie[:40]!r}")
        return ParseError(ParseReason.BAD_RATING, "rating is not a small integer")
    rating = int(m.group(2))
    if not MIN_RATING <= rating <= MAX_RATING:
        return ParseError(ParseReason.BAD_RATING, f"rating {rating} outside {MIN_RATING}..{MAX_RATING}")
    _remember_slug(m.group(1))
    return RateEvent(ts_ns, user_id, m.group(1), rating, digits)


def _parse_recommendation(request: str, ts_ns: int, user_id: int, digits: int) -> Event | ParseError:
    # Parsed from both ends with partition/rstrip rather than one regex: the error text is
    # free-form, and a lazy regex over it backtracks badly on long lines.
    server, sep, rest = request[len(_REC_PREFIX) :].partition(", status ")
    if not sep:
        return ParseError(ParseReason.BAD_STATUS, "missing ', status <code>'")
    if not _SERVER_RE.fullmatch(server):
        return ParseError(ParseReason.BAD_STATUS, f"bad server name: {server[:40]!r}")
    status_text, sep, rest = rest.partition(", result: ")
    if not sep:
        return ParseError(ParseReason.BAD_RESULT, "missing ', result: '")
    if not (status_text.isdigit() and status_text.isascii() and len(status_text) <= 3):
        return ParseError(ParseReason.BAD_STATUS, f"status is not a number: {status_text[:40]!r}")
    status = int(status_text)
    if status != 0 and not 100 <= status <= 599:
        return ParseError(ParseReason.BAD_STATUS, f"status {status} is not 0 or an HTTP code")
    if rest[-2:] != "ms":
        return ParseError(ParseReason.BAD_RESPONSE_TIME, "missing '<ms> ms' at the end")
    rest = rest[:-2]
    ms_sep = " " if rest[-1:] == " " else ""
    rest = rest[: len(rest) - len(ms_sep)]
    body_and_sep = rest.rstrip("0123456789")
    ms_text = rest[len(body_and_sep) :]
    if not 1 <= len(ms_text) <= 9:
        return ParseError(ParseReason.BAD_RESPONSE_TIME, "response time is not a number of ms")
    if body_and_sep[-2:] == ", ":
        time_sep = ", "
    elif body_and_sep[-1:] == ",":
        time_sep = ","
    else:
        return ParseError(ParseReason.BAD_RESPONSE_TIME, "response time must follow ', ' or ','")
    body = body_and_sep[: -len(time_sep)]
    if _CONTROL_RE.search(body):
        return ParseError(ParseReason.CONTROL_CHARS, "control character inside the result")
    response_ms = int(ms_text)
    if status != 200:
        return RecommendationEvent(
            ts_ns, user_id, server, status, (), response_ms, body, digits, time_sep, time_sep, ms_sep
        )
    if body == "":
        return RecommendationEvent(
            ts_ns, user_id, server, status, (), response_ms, None, digits, time_sep, time_sep, ms_sep
        )
    # With one item the list separator is unobservable: take the time separator (canonical form).
    list_sep = ", " if ", " in body else ("," if "," in body else time_sep)
    items = body.split(list_sep)
    for item in items:
        if item not in _SLUGS_OK:
            if not _MOVIE_RE.fullmatch(item):
                return ParseError(ParseReason.BAD_RESULT, f"bad movie id in result: {item[:40]!r}")
            _remember_slug(item)
    return RecommendationEvent(
        ts_ns, user_id, server, status, tuple(items), response_ms, None, digits, list_sep, time_sep, ms_sep
    )


# Formatting the same second over and over dominates `format_line`: remember the last one.
_LAST_SECOND: list[object] = [-1, ""]


def format_time(ts_ns: int, digits: int = 0) -> str:
    """`YYYY-MM-DDTHH:MM:SS[.f...]` for nanoseconds since the epoch, with `digits` fraction digits."""
    secs, nanos = divmod(ts_ns, 1_000_000_000)
    if _LAST_SECOND[0] == secs:
        base = str(_LAST_SECOND[1])
    else:
        t = _time.gmtime(secs)
        base = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        _LAST_SECOND[0], _LAST_SECOND[1] = secs, base
    if digits <= 0:
        return base
    return f"{base}.{nanos // _POW10[digits]:0{digits}d}"


def format_line(event: Event) -> str:
    """The exact course-format line for an event, without a trailing newline."""
    ts = format_time(event.ts_ns, event.ts_digits)
    if isinstance(event, WatchEvent):
        return f"{ts},{event.user_id},GET /data/m/{event.movie_id}/{event.minute}.mpg"
    if isinstance(event, RateEvent):
        return f"{ts},{event.user_id},GET /rate/{event.movie_id}={event.rating}"
    if isinstance(event, AccountEvent):
        return f"{ts},{event.user_id},GET /create_account"
    body = event.error if event.error is not None else event.list_sep.join(event.results)
    return (
        f"{ts},{event.user_id},recommendation request {event.server}, status {event.status}, "
        f"result: {body}{event.time_sep}{event.response_ms}{event.ms_sep}ms"
    )
