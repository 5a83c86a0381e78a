"""Third-party output that says nothing to a user of the platform, silenced in one place by its entry points.

Each entry here is one known, benign message, named as precisely as the library allows, with
the versions that print it, so an upgrade can retire it; everything else (real warnings, errors)
still shows. The entry points call `quiet_third_party()` first thing: the `recsys` CLI, the
serving app factory (every uvicorn worker runs it) and the benchmark scripts.

- DuckDB 2 deprecated `fetch_arrow_table()`, which ibis 12 (under Feast's DuckDB offline store)
  calls for every query.
- SQLAlchemy 2.1 deprecated the `noload` loader strategy, which MLflow 3.17's tracking models use;
  it is printed once per process that opens the registry.
- Feast logs `Registry cache expired, so refreshing` at INFO on every registry refresh.
- httpx logs every request at INFO (`HTTP Request: GET ...`): the metadata client makes thousands.

Warnings are dropped by filters and, because Feast's modules run
`warnings.simplefilter("once", DeprecationWarning)` when imported (which puts a catch-all filter
in front of ours), also by a `showwarning` wrapper that drops only these messages. librdkafka's
own benign notice is filtered in `events.kafka`.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable
from typing import Final, TextIO

BENIGN_WARNINGS: Final[tuple[tuple[type[Warning], str], ...]] = (
    (DeprecationWarning, r"fetch_arrow_table\(\) is deprecated"),
    (DeprecationWarning, r"The ``noload`` loader strategy is deprecated"),
)
"""(category, message regex) of warnings that are dropped: see the module docstring for each."""
QUIET_LOGGERS: Final[dict[str, int]] = {
    "feast.infra.registry.registry": logging.WARNING,
    "feast.infra.registry.caching_registry": logging.WARNING,
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
}
"""Logger name -> least level shown: their INFO lines are per-request or per-refresh chatter."""

_PATTERNS: Final = tuple((category, re.compile(pattern)) for category, pattern in BENIGN_WARNINGS)


def is_benign(message: Warning | str, category: type[Warning]) -> bool:
    """Whether a warning is one of BENIGN_WARNINGS."""
    text = str(message)
    return any(issubclass(category, cat) and pattern.match(text) for cat, pattern in _PATTERNS)


class _DropBenign:
    """A `warnings.showwarning` that drops BENIGN_WARNINGS and hands every other warning on."""

    def __init__(self, shown: Callable[..., None]) -> None:
        self.shown = shown

    def __call__(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if not is_benign(message, category):
            self.shown(message, category, filename, lineno, file, line)


def quiet_third_party() -> None:
    """Silence the known benign third-party warnings and log lines; idempotent, cheap, imports nothing heavy."""
    for category, pattern in BENIGN_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern, category=category)
    if not isinstance(warnings.showwarning, _DropBenign):
        warnings.showwarning = _DropBenign(warnings.showwarning)
    for name, level in QUIET_LOGGERS.items():
        logger = logging.getLogger(name)
        if logger.level < level:
            logger.setLevel(level)
