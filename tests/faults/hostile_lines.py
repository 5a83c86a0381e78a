"""Hostile log lines for the ingestion fuzzers: real course lines, mutated (truncated, swapped, retyped, poisoned).

`hostile_line()` is a Hypothesis strategy of (line bytes, must_fail): `must_fail` marks mutations
that no valid line survives (a NUL or other control byte inside, invalid UTF-8, empty, longer
than the codec's limit, a date before 1970 or far in the future), so a test can demand a DLQ
verdict for them without asking the codec. Other mutations may or may not leave a valid line;
the codec's own verdict decides where those must go.
"""

from __future__ import annotations

from hypothesis import strategies as st

from events.codec import MAX_LINE_BYTES
from tests.integration.test_ingest_exactly_once import make_lines
from tests.unit.test_codec import REAL_LINES

SEEDS: tuple[bytes, ...] = tuple(
    line.encode() for line in [*REAL_LINES, *(x for x in make_lines(60, seed=4)[0] if x and "," in x)]
)
"""Real course lines (every variant the codec accepts) plus generated watch, rate, account and request lines."""

_CONTROL = [bytes([c]) for c in [*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F]]
"""Control bytes (tab excepted: the free-form error text of a failed request may hold one)."""
_INVALID_UTF8 = [
    b"\xff",
    b"\xfe",
    b"\xc3\x28",
    b"\xe2\x82",
    b"\xed\xa0\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\x80",
]
_WRONG_TYPES = [
    b"", b"-1", b"-0", b"1.5", b"1e9", b"0x1F", b"NaN", b"null", b"true", b"abc", b" 42", b"42 ",
    b"\xef\xbc\x94\xef\xbc\x92",  # "42" in full-width digits: isdigit() but not ASCII
    b"\xc2\xb2",  # superscript two
    str(2**63).encode(), str(2**63 - 1).encode(), str(2**64).encode(), b"9" * 40, b"0" * 30 + b"7",
]  # fmt: skip
_HUGE = [str(n).encode() for n in (2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**19, 10**40)]

seeds = st.sampled_from(SEEDS)


def _insert(line: bytes, pos: int, what: bytes) -> bytes:
    return line[:pos] + what + line[pos:]


@st.composite
def _truncated(draw: st.DrawFn) -> tuple[bytes, bool]:
    line = draw(seeds)
    return line[: draw(st.integers(0, len(line) - 1))], False


@st.composite
def _fields_swapped(draw: st.DrawFn) -> tuple[bytes, bool]:
    parts = draw(seeds).split(b",")
    i, j = draw(st.integers(0, len(parts) - 1)), draw(st.integers(0, len(parts) - 1))
    parts[i], parts[j] = parts[j], parts[i]
    return b",".join(parts), False


@st.composite
def _field_retyped(draw: st.DrawFn) -> tuple[bytes, bool]:
    parts = draw(seeds).split(b",", 2)
    i = draw(st.integers(0, len(parts) - 1))
    parts[i] = draw(st.sampled_from(_WRONG_TYPES) | st.text(max_size=12).map(str.encode))
    return b",".join(parts), False


@st.composite
def _number_inflated(draw: st.DrawFn) -> tuple[bytes, bool]:
    """One run of digits (user id, minute, rating, status, ms, a date part) replaced by a huge integer."""
    line = draw(seeds)
    runs, start = [], None
    for k, c in enumerate(line + b" "):
        if chr(c).isdigit() and start is None:
            start = k
        elif not chr(c).isdigit() and start is not None:
            runs.append((start, k))
            start = None
    a, b = draw(st.sampled_from(runs))
    return line[:a] + draw(st.sampled_from(_HUGE)) + line[b:], False


@st.composite
def _unicode_inserted(draw: st.DrawFn) -> tuple[bytes, bool]:
    line = draw(seeds)
    text = draw(
        st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), min_size=1, max_size=8)
    )
    return _insert(line, draw(st.integers(0, len(line))), text.encode()), False


@st.composite
def _control_inserted(draw: st.DrawFn) -> tuple[bytes, bool]:
    # Never at the very end: one trailing newline (or CR LF) is a line ending, not content.
    line = draw(seeds)
    poison = b"".join(draw(st.lists(st.sampled_from(_CONTROL), min_size=1, max_size=3)))
    return _insert(line, draw(st.integers(0, len(line) - 1)), poison), True


@st.composite
def _nul_bytes(draw: st.DrawFn) -> tuple[bytes, bool]:
    line = draw(seeds)
    return _insert(line, draw(st.integers(0, len(line) - 1)), b"\x00" * draw(st.integers(1, 4))), True


@st.composite
def _invalid_utf8(draw: st.DrawFn) -> tuple[bytes, bool]:
    line = draw(seeds)
    return _insert(line, draw(st.integers(0, len(line))), draw(st.sampled_from(_INVALID_UTF8))), True


@st.composite
def _overlong(draw: st.DrawFn) -> tuple[bytes, bool]:
    line = draw(seeds)
    pad = draw(st.integers(MAX_LINE_BYTES - len(line) + 1, MAX_LINE_BYTES + 5_000))
    return line[:-4] + b"a" * pad + line[-4:], True


@st.composite
def _year_moved(draw: st.DrawFn) -> tuple[bytes, bool]:
    """The year before the epoch, or decades ahead (past 2262 too, where nanoseconds overflow int64)."""
    line = draw(seeds)
    year = draw(st.sampled_from([b"1969", b"0001", b"2099", b"2263", b"9999"]))
    return year + line[4:], True


_empty = st.sampled_from([b"", b"\n", b"\r\n"]).map(lambda x: (x, True))
_random_bytes = st.binary(max_size=120).map(lambda x: (x, False))
_doubled_commas = seeds.map(lambda x: (x.replace(b",", b",,", 1), False))


def hostile_line() -> st.SearchStrategy[tuple[bytes, bool]]:
    """One mutated line and whether every valid reading of it is impossible (must go to the DLQ)."""
    return st.one_of(
        _truncated(), _fields_swapped(), _field_retyped(), _number_inflated(), _unicode_inserted(),
        _control_inserted(), _nul_bytes(), _invalid_utf8(), _overlong(), _year_moved(), _empty,
        _random_bytes, _doubled_commas,
    )  # fmt: skip


def good_line() -> st.SearchStrategy[tuple[bytes, bool]]:
    """A real line as it is, with a CR LF or LF ending now and then (both are line endings)."""
    return st.tuples(seeds, st.sampled_from([b"", b"", b"\n", b"\r\n"])).map(lambda x: (x[0] + x[1], False))
