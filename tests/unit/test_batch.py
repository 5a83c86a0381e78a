"""The columnar batch parser gives the same verdict as `parse_line` on every line."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from events import ParseError, RateEvent, WatchEvent, parse_line
from events.batch import ParsedBatch, parse_batch
from tests.unit.test_codec import NASTY, REAL_LINES


def _rows(batch: ParsedBatch) -> dict[int, object]:
    rows: dict[int, object] = {}
    w, r = batch.watch, batch.rate
    for k, i in enumerate(w.index):
        rows[i] = ("watch", w.ts_ns[k], w.user_id[k], w.movie_id[k], w.minute[k])
    for k, i in enumerate(r.index):
        rows[i] = ("rate", r.ts_ns[k], r.user_id[k], r.movie_id[k], r.rating[k])
    for i, e in batch.accounts + batch.recommendations:
        rows[i] = e
    for i, err in batch.errors:
        rows[i] = ("error", err.reason)
    return rows


def _expected(line: str | bytes) -> object:
    e = parse_line(line)
    if isinstance(e, WatchEvent):
        return ("watch", e.ts_ns, e.user_id, e.movie_id, e.minute)
    if isinstance(e, RateEvent):
        return ("rate", e.ts_ns, e.user_id, e.movie_id, e.rating)
    if isinstance(e, ParseError):
        return ("error", e.reason)
    return e


def _check(lines: list[str | bytes]) -> None:
    # Twice: the first pass warms the caches (fast path), the second must agree too.
    for _ in range(2):
        batch = parse_batch(lines)
        assert len(batch) == len(lines)
        rows = _rows(batch)
        assert sorted(rows) == list(range(len(lines)))
        assert [rows[i] for i in range(len(lines))] == [_expected(x) for x in lines]


def test_known_lines_agree() -> None:
    lines: list[str | bytes] = [*REAL_LINES, *(line for line, _ in NASTY)]
    _check(lines + [x.encode() for x in lines if isinstance(x, str)])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(REAL_LINES), min_size=1, max_size=20), st.data())
def test_mutated_lines_agree(base: list[str], data: st.DataObject) -> None:
    lines: list[str | bytes] = []
    for line in base:
        pos = data.draw(st.integers(0, len(line) - 1))
        ch = data.draw(st.sampled_from([",", " ", "/", "=", "\x00", "é", "9", "", "\n"]))
        mutated = line[:pos] + ch + line[pos + 1 :]
        lines.append(mutated.encode("utf-8") if data.draw(st.booleans()) else mutated)
    _check(lines)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=80), st.binary(max_size=80)), max_size=10))
def test_arbitrary_input_agrees(lines: list[str | bytes]) -> None:
    _check(lines)
