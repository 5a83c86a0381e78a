"""The MLiP line codec: real course variants, nasty input, and round-trip properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events import (
    AccountEvent,
    ParseError,
    ParseReason,
    RateEvent,
    RecommendationEvent,
    WatchEvent,
    format_line,
    parse_line,
)

REAL_LINES = [
    "2026-11-25T17:04:05,42,GET /data/m/the+green+mile+1999/12.mpg",
    "2026-11-25T17:04:05.1,42,GET /data/m/the+green+mile+1999/0.mpg",
    "2026-11-25T17:04:05.123,42,GET /rate/spider-man+3+2007=4",
    "2026-11-25T17:04:05.123456,42,GET /rate/monsters_+inc.+2001=10",
    "2026-11-25T17:04:05.122692921,7,GET /create_account",
    "2026-11-25T17:04:05,0,GET /data/m/the+hunger+games+mockingjay+-+part+1+2014/95.mpg",
    "2026-11-25T17:04:05,7,recommendation request 17645-team11.isri.cmu.edu:8082, status 200, "
    "result: the+green+mile+1999, monsters_+inc.+2001, spider-man+3+2007, 45 ms",
    "2026-11-25T17:04:05,7,recommendation request host:8082, status 200, result: a+1999,b+2000,c+2001,45ms",
    "2026-11-25T17:04:05,7,recommendation request host:8082, status 200, result: a+1999,b+2000, 226 ms",
    "2026-11-25T17:04:05,7,recommendation request host:8082, status 200, result: a+1999, 3 ms",
    "2026-11-25T17:04:05,7,recommendation request host:8082, status 200, result: , 3 ms",
    "2026-11-25T17:04:05,7,recommendation request fall2026-comp585-3.isri.cmu.edu:8082, status 0, result: "
    "java.util.concurrent.TimeoutException: Request timeout to fall2026-comp585-3.isri.cmu.edu/128.2.220.241:8082"
    " after 800 ms, 815 ms",
    "2026-11-25T17:04:05,7,recommendation request host:8082, status 0, result: Connection refused: "
    "host/10.0.0.1:8082, 1369 ms",
    "2026-11-25T17:04:05,7,recommendation request host:8082, status 503, result: upstream error, 12ms",
]


@pytest.mark.parametrize("line", REAL_LINES)
def test_real_course_lines_parse_and_round_trip(line: str) -> None:
    event = parse_line(line)
    assert not isinstance(event, ParseError), event
    assert format_line(event) == line
    assert parse_line(line.encode()) == event
    assert parse_line(line + "\n") == event
    assert parse_line(line + "\r\n") == event


def test_fields_of_each_kind() -> None:
    watch = parse_line("2026-11-25T17:04:05.5,42,GET /data/m/the+green+mile+1999/12.mpg")
    assert watch == WatchEvent(1795626245_500_000_000, 42, "the+green+mile+1999", 12, 1)
    assert watch.time.isoformat() == "2026-11-25T17:04:05.500000+00:00"
    assert parse_line("2026-11-25T17:04:05,1,GET /rate/x+2000=3") == RateEvent(
        1795626245_000_000_000, 1, "x+2000", 3, 0
    )
    assert parse_line("2026-11-25T17:04:05,1,GET /create_account") == AccountEvent(
        1795626245_000_000_000, 1, 0
    )
    ok = parse_line(REAL_LINES[6])
    assert isinstance(ok, RecommendationEvent) and ok.ok
    assert ok.results == ("the+green+mile+1999", "monsters_+inc.+2001", "spider-man+3+2007")
    assert (ok.status, ok.response_ms, ok.server) == (200, 45, "17645-team11.isri.cmu.edu:8082")
    failed = parse_line(REAL_LINES[11])
    assert isinstance(failed, RecommendationEvent) and not failed.ok
    assert failed.status == 0 and failed.response_ms == 815 and failed.results == ()
    assert failed.error is not None and failed.error.endswith("after 800 ms")


NASTY = [
    ("", ParseReason.EMPTY),
    ("\n", ParseReason.EMPTY),
    ("2026-11-25T17:04:05", ParseReason.MISSING_FIELDS),
    ("2026-11-25T17:04:05,42", ParseReason.MISSING_FIELDS),
    ("2026-11-25T17:04:05,42,GET /data/m/the+green+mile+1999/", ParseReason.BAD_MINUTE),
    ("2026-11-25T17:04:05,42,GET /data/m/the+green+mile+1999/12", ParseReason.BAD_MINUTE),
    ("2026-11-25T17:04:05,42,GET /data/m/the+green+mile+1999/-1.mpg", ParseReason.BAD_MINUTE),
    ("2026-11-25T17:04:05,42,GET /data/m/the+green+mile+1999/9999999.mpg", ParseReason.BAD_MINUTE),
    ("2026-11-25T17:04:05,42,GET /data/m//12.mpg", ParseReason.BAD_MOVIE_ID),
    ("2026-11-25T17:04:05,,GET /create_account", ParseReason.BAD_USER_ID),
    ("2026-11-25T17:04:05,abc,GET /create_account", ParseReason.BAD_USER_ID),
    ("2026-11-25T17:04:05,-3,GET /create_account", ParseReason.BAD_USER_ID),
    ("2026-11-25T17:04:05,4.2,GET /create_account", ParseReason.BAD_USER_ID),
    ("2026-11-25T17:04:05,99999999999999999999,GET /create_account", ParseReason.BAD_USER_ID),
    ("2026-11-25T17:04:05,٤٢,GET /create_account", ParseReason.BAD_USER_ID),
    ("2026-11-25T17:04:05,42,GET /rate/x+2000=0", ParseReason.BAD_RATING),
    ("2026-11-25T17:04:05,42,GET /rate/x+2000=11", ParseReason.BAD_RATING),
    ("2026-11-25T17:04:05,42,GET /rate/x+2000=4.5", ParseReason.BAD_RATING),
    ("2026-11-25T17:04:05,42,GET /rate/x+2000=-1", ParseReason.BAD_RATING),
    ("2026-11-25T17:04:05,42,GET /rate/x+2000=", ParseReason.BAD_RATING),
    ("2026-11-25T17:04:05,42,GET /rate/x 2000=3", ParseReason.BAD_MOVIE_ID),
    ("2026-11-25T17:04:05,42,GET /rate/=3", ParseReason.BAD_MOVIE_ID),
    ("2026-13-25T17:04:05,42,GET /create_account", ParseReason.BAD_TIMESTAMP),
    ("2026-02-30T17:04:05,42,GET /create_account", ParseReason.BAD_TIMESTAMP),
    ("2026-11-25T24:04:05,42,GET /create_account", ParseReason.BAD_TIMESTAMP),
    ("2026-11-25 17:04:05,42,GET /create_account", ParseReason.BAD_TIMESTAMP),
    ("2026-11-25T17:04:05Z,42,GET /create_account", ParseReason.BAD_TIMESTAMP),
    ("2026-11-25T17:04:05.,42,GET /create_account", ParseReason.BAD_TIMESTAMP),
    ("2026-11-25T17:04:05.1234567890,42,GET /create_account", ParseReason.BAD_TIMESTAMP),
    ("yesterday,42,GET /create_account", ParseReason.BAD_TIMESTAMP),
    ("2026-11-25T17:04:05,42,POST /create_account", ParseReason.UNKNOWN_REQUEST),
    ("2026-11-25T17:04:05,42,GET /create_account,extra", ParseReason.UNKNOWN_REQUEST),
    ("2026-11-25T17:04:05,42,recommendation request h:1, status 200", ParseReason.BAD_RESULT),
    ("2026-11-25T17:04:05,42,recommendation request h:1, result: a, 3 ms", ParseReason.BAD_STATUS),
    (
        "2026-11-25T17:04:05,42,recommendation request h:1, status 99, result: a+1, 3 ms",
        ParseReason.BAD_STATUS,
    ),
    (
        "2026-11-25T17:04:05,42,recommendation request h:1, status ok, result: a+1, 3 ms",
        ParseReason.BAD_STATUS,
    ),
    (
        "2026-11-25T17:04:05,42,recommendation request h:1, status 200, result: a+1, ms",
        ParseReason.BAD_RESPONSE_TIME,
    ),
    (
        "2026-11-25T17:04:05,42,recommendation request h:1, status 200, result: a+1, 3",
        ParseReason.BAD_RESPONSE_TIME,
    ),
    (
        "2026-11-25T17:04:05,42,recommendation request h:1, status 200, result: a b, 3 ms",
        ParseReason.BAD_RESULT,
    ),
    (
        "2026-11-25T17:04:05,42,recommendation request h:1, status 200, result: a/b, 3 ms",
        ParseReason.BAD_RESULT,
    ),
    (
        "2026-11-25T17:04:05,42,recommendation request h:1, status 200, result: a=b, 3 ms",
        ParseReason.BAD_RESULT,
    ),
    (
        "2026-11-25T17:04:05,42,recommendation request h:1, status 200, result: a,, b, 3 ms",
        ParseReason.BAD_RESULT,
    ),
    ("2026-11-25T17:04:05,42,GET /data/m/a\x00b/1.mpg", ParseReason.BAD_MOVIE_ID),
    ("2026-11-25T17:04:05,42,GET /create_account\x07", ParseReason.CONTROL_CHARS),
]


@pytest.mark.parametrize(("line", "reason"), NASTY)
def test_nasty_input_gives_a_reason_never_an_exception(line: str, reason: ParseReason) -> None:
    result = parse_line(line)
    assert isinstance(result, ParseError), result
    assert result.reason is reason, result


def test_bytes_that_are_not_utf8() -> None:
    result = parse_line(b"2026-11-25T17:04:05,42,GET /data/m/caf\xe9+2001/1.mpg")
    assert isinstance(result, ParseError) and result.reason is ParseReason.NOT_UTF8


def test_one_megabyte_line_is_rejected_cheaply() -> None:
    huge = "2026-11-25T17:04:05,42,GET /data/m/" + "a" * 1_000_000 + "/1.mpg"
    for value in (huge, huge.encode()):
        result = parse_line(value)
        assert isinstance(result, ParseError) and result.reason is ParseReason.TOO_LONG


def test_the_fast_path_and_the_general_path_agree() -> None:
    # The first sight of a second or a slug takes the general path; later ones the cached fast path.
    line = "2031-01-02T03:04:05,9,GET /data/m/fresh+slug+2031/7.mpg"
    first, second = parse_line(line), parse_line(line)
    assert first == second == WatchEvent(1925089445_000_000_000, 9, "fresh+slug+2031", 7, 0)


# --- properties ---------------------------------------------------------------------------

slugs = st.from_regex(r"[a-z0-9][a-z0-9+\-_.'!&:()]{0,40}\+(19|20)[0-9]{2}", fullmatch=True)
timestamps = st.integers(min_value=0, max_value=4_102_444_799 * 10**9)  # up to 2099
users = st.integers(min_value=0, max_value=2**63 - 1)
digits = st.integers(min_value=0, max_value=9)


def _truncate(ts_ns: int, d: int) -> int:
    step = 10 ** (9 - d)
    return ts_ns - ts_ns % step


watch_events = st.builds(
    lambda t, u, m, minute, d: WatchEvent(_truncate(t, d), u, m, minute, d),
    timestamps,
    users,
    slugs,
    st.integers(0, 100_000),
    digits,
)
rate_events = st.builds(
    lambda t, u, m, r, d: RateEvent(_truncate(t, d), u, m, r, d),
    timestamps,
    users,
    slugs,
    st.integers(1, 10),
    digits,
)
account_events = st.builds(lambda t, u, d: AccountEvent(_truncate(t, d), u, d), timestamps, users, digits)
servers = st.from_regex(r"[a-z0-9][a-z0-9.\-]{0,30}:[0-9]{2,5}", fullmatch=True)
seps = st.sampled_from([", ", ","])
ok_recs = st.builds(
    lambda t, u, srv, items, ms, d, ls, ts, mss: RecommendationEvent(
        _truncate(t, d), u, srv, 200, tuple(items), ms, None, d, ls if len(items) > 1 else ts, ts, mss
    ),
    timestamps,
    users,
    servers,
    st.lists(slugs, max_size=20),
    st.integers(0, 10**9 - 1),
    digits,
    seps,
    seps,
    st.sampled_from([" ", ""]),
)
error_texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\n\r"), max_size=120
)
failed_recs = st.builds(
    lambda t, u, srv, status, err, ms, d, ts, mss: RecommendationEvent(
        _truncate(t, d), u, srv, status, (), ms, err, d, ts, ts, mss
    ),
    timestamps,
    users,
    servers,
    st.sampled_from([0, 500, 502, 503, 504, 404]),
    error_texts,
    st.integers(0, 10**9 - 1),
    digits,
    seps,
    st.sampled_from([" ", ""]),
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(watch_events, rate_events, account_events, ok_recs))
def test_round_trip_of_well_formed_events(event: object) -> None:
    line = format_line(event)  # type: ignore[arg-type]
    assert parse_line(line) == event
    assert format_line(parse_line(line)) == line  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(failed_recs)
def test_failure_lines_keep_their_error_text(event: RecommendationEvent) -> None:
    # Error text is free-form, so the line must round-trip even if the text looks like a list.
    line = format_line(event)
    parsed = parse_line(line)
    assert isinstance(parsed, RecommendationEvent)
    assert format_line(parsed) == line
    assert parsed.status == event.status and parsed.response_ms == event.response_ms


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_arbitrary_input_never_raises(value: str | bytes) -> None:
    result = parse_line(value)
    if not isinstance(result, ParseError):
        assert parse_line(format_line(result)) == result


@settings(max_examples=300, deadline=None)
@given(st.one_of(watch_events, rate_events, account_events, ok_recs), st.data())
def test_one_corrupted_character_never_raises(event: object, data: st.DataObject) -> None:
    line = format_line(event)  # type: ignore[arg-type]
    pos = data.draw(st.integers(0, len(line) - 1))
    ch = data.draw(st.sampled_from([",", " ", "/", "=", "\x00", "é", "9", ""]))
    mutated = line[:pos] + ch + line[pos + 1 :]
    result = parse_line(mutated)
    if not isinstance(result, ParseError):
        # Whatever parses must format back to a line that parses to the same event.
        assert parse_line(format_line(result)) == result
