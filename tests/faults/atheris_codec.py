"""Atheris (libFuzzer) harness over the line codec: the compiled codec, its pure-Python source and the batch parser agree.

Run it for N inputs: `python -m tests.faults.atheris_codec -runs=N [-artifact_prefix=DIR/] [CORPUS_DIR]`.
The shipped codec is mypyc-compiled, which Atheris cannot instrument, so coverage guidance comes
from `events/codec.py` loaded from source (instrumented) under another name; every input goes to
both, and they must agree (differential fuzzing). Properties, for any bytes:
- `parse_line` never raises, compiled or not, and both give the same verdict;
- `parse_batch` gives the same verdict as `parse_line` (ingestion uses the former);
- an accepted line is written back by `format_line` to a line that parses to the same event;
- valid UTF-8 gives the same verdict as bytes or as text.
A violation raises, libFuzzer writes the input to `<artifact_prefix>crash-<sha1>` and exits non-zero.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import atheris

import events.batch as batch
import events.codec as compiled
from events.types import ParseError

SEEDS: tuple[bytes, ...] = (
    b"2026-11-25T17:04:05,42,GET /data/m/the+green+mile+1999/12.mpg",
    b"2026-11-25T17:04:05.123,42,GET /rate/spider-man+3+2007=4",
    b"2026-11-25T17:04:05.122692921,7,GET /create_account",
    b"2026-11-25T17:04:05,7,recommendation request host:8082, status 200, result: a+1999,b+2000,c+2001,45ms",
    b"2026-11-25T17:04:05,7,recommendation request host:8082, status 200, result: a+1999, 3 ms",
    b"2026-11-25T17:04:05,7,recommendation request host:8082, status 0, result: Connection refused: h/1:2, 13 ms",
    b"2026-11-25T17:04:05,7,recommendation request host:8082, status 503, result: upstream error, 12ms",
)
"""Course lines of every kind, written as the initial corpus when the caller gives a corpus directory."""


def _pure_codec() -> ModuleType:
    """`events/codec.py` from source, its bytecode instrumented, as its own module (the compiled one stays real).

    Compiled and patched by hand: Atheris' import hook did not instrument a module loaded from a
    file location under another name (coverage stayed flat), `patch_code` does.
    """
    path = Path(__file__).resolve().parents[2] / "events" / "codec.py"
    module = ModuleType("_codec_source")
    module.__file__ = str(path)
    sys.modules[module.__name__] = module
    code = compile(path.read_text(), str(path), "exec")
    # patch_code(code, trace_dataflow): public in atheris 3.0 but missing from types-atheris.
    exec(atheris.patch_code(code, True), module.__dict__)  # type: ignore[attr-defined]
    return module


PURE = _pure_codec()


def check(data: bytes) -> None:
    """One input: every property of the module docstring, or an AssertionError naming the one broken."""
    verdict = compiled.parse_line(data)
    assert verdict == PURE.parse_line(data), f"compiled and source codecs disagree on {data!r}"
    parsed = batch.parse_batch([data])
    if isinstance(verdict, ParseError):
        assert parsed.errors == [(0, verdict)], f"parse_batch disagrees on {data!r}: {parsed.errors}"
    else:
        assert not parsed.errors and len(parsed) == 1, f"parse_batch refused {data!r}: {parsed.errors}"
        again = compiled.parse_line(compiled.format_line(verdict))
        assert again == verdict, f"{data!r} does not round-trip: {again}"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    assert compiled.parse_line(text) == verdict, f"text and bytes verdicts differ on {data!r}"


def main(argv: list[str]) -> None:
    """Seed the corpus directory (the first non-flag argument, if any), then fuzz until libFuzzer's -runs."""
    corpus = next((Path(a) for a in argv[1:] if not a.startswith("-")), None)
    if corpus is not None:
        corpus.mkdir(parents=True, exist_ok=True)
        for i, seed in enumerate(SEEDS):
            (corpus / f"seed-{i}").write_bytes(seed)
    atheris.Setup(argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
