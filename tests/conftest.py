"""Test-wide settings: keep thread pools at one thread and whylogs quiet, as the services do."""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "1")
# No movie-table reader process per test app at start (seconds of CPU each); a re-read still spawns it.
os.environ.setdefault("RECSYS_SERVING_READER_PRESTART", "0")


def pytest_sessionstart(session: object) -> None:
    """Fail fast when the mypyc-compiled codec was built from other sources (tests would run stale code)."""
    import hashlib
    from pathlib import Path

    import events.codec

    if not (events.codec.__file__ or "").endswith(".so"):
        return
    root = Path(__file__).resolve().parents[1]
    stamp = root / "events" / ".compiled-sources"
    built = (
        dict(reversed(line.split(maxsplit=1)) for line in stamp.read_text().splitlines())
        if stamp.exists()
        else {}
    )
    for name, digest in built.items() if built else [("events/codec.py", "")]:
        if hashlib.sha256((root / name).read_bytes()).hexdigest() != digest:
            raise RuntimeError(
                f"the compiled codec was built from another {name}: run `make install` to rebuild it"
            )
