"""Test-wide settings: keep thread pools at one thread and whylogs quiet, as the services do."""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "1")


def pytest_sessionstart(session: object) -> None:
    """Fail fast when the mypyc-compiled codec is older than its source (tests would run stale code)."""
    from pathlib import Path

    import events.batch
    import events.codec
    import events.types

    for module in (events.types, events.codec, events.batch):
        compiled = Path(module.__file__ or "")
        if compiled.suffix == ".so":
            source = compiled.with_name(compiled.name.split(".")[0] + ".py")
            if source.stat().st_mtime > compiled.stat().st_mtime:
                raise RuntimeError(f"{compiled.name} is older than {source.name}: run `make install` to rebuild it")
