"""A shown list and its attribution, and its row once final ("impression"): the data the experiment analysis reads.

The online join (`monitoring.online`) builds these when a list is final, next to its window sums.
Rows are plain tuples in `IMPRESSION_COLUMNS` order rather than dicts: they wait in memory until the
next flush, and a tuple of 18 fields is a fraction of an 18-key dict.

Conventions (the same as the window rows, per list):
- `list_cost` sums the licence cost of the listed movies whose cost is known; NaN when none is
  known (or the answer listed nothing: a non-200).
- `hit_cost` is the cost of the hit play, 0 with no hit or an unknown cost; `hit_completion` is
  minutes / runtime capped at 1, NaN with no hit or an unknown runtime.
- `watched_listed` counts the distinct listed movies watched within the hit window (the hit and
  any later ones); `credit_a` / `credit_b` split that same set by the team that placed each movie
  (`monitoring.interleave_credit.credit`), 0 when the answer was not interleaved.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Final, NamedTuple

from monitoring.interleave_credit import credit, teams_by_movie

UNKNOWN: Final = "unknown"


class Attribution(NamedTuple):
    """Who answered a list: experiment arm, model label (`v<N>`/`none`) and path."""

    arm: str
    model: str
    path: str


UNATTRIBUTED: Final = Attribution(UNKNOWN, UNKNOWN, UNKNOWN)
ERROR: Final = Attribution(UNKNOWN, UNKNOWN, "error")
"""A failed request (non-200): no list, so no provenance to match."""


def attribution(record: dict[str, Any]) -> Attribution:
    """Arm, model and path from a provenance record (`serving.provenance_record.ProvenanceRecord` JSON)."""
    version = record.get("model_version")
    if record.get("cold_start"):
        path = "cold_start"
    elif record.get("fallback") == "no_user_features":
        path = "model_no_features"
    elif record.get("fallback"):
        path = "fallback"
    else:
        path = "model"
    return Attribution(str(record.get("arm") or UNKNOWN), f"v{version}" if version else "none", path)


@dataclass(slots=True, eq=False)
class Shown:
    """One recommendation line and what followed it (compared by identity: two equal lines are two requests)."""

    ts_ns: int
    user: int
    movies: tuple[str, ...]
    status: int
    ms: int
    who: Attribution = UNATTRIBUTED
    hit_rank: int = 0
    """1-based rank of the first listed movie watched within the hit window (0: none)."""
    hit_movie: str = ""
    hit_minutes: int = 0
    ratings: list[tuple[int, int]] = field(default_factory=list)
    """(ts_ns, stars) of ratings of the hit movie seen before the list was final."""
    experiment: str = ""
    """Experiment of the provenance record ("" when none or not matched)."""
    teams: str = ""
    """Interleaving teams of the provenance record, one `A`/`B` per position ("" when not interleaved)."""
    watched: set[str] | None = None
    """Distinct listed movies watched within the hit window (None until the first)."""

    def attribute(self, found: Origin) -> None:
        """Take the attribution, experiment and teams of the matching provenance record."""
        self.who, self.experiment, self.teams = found


class Origin(NamedTuple):
    """What a provenance record says about its list: attribution, experiment and interleaving teams."""

    who: Attribution
    experiment: str
    teams: str


def fill_defaults(shown: Shown) -> Shown:
    """Set the fields a `Shown` pickled by an older version lacks (slots have no class defaults)."""
    for f in fields(Shown):
        if not hasattr(shown, f.name):
            value = f.default_factory() if f.default_factory is not MISSING else f.default
            setattr(shown, f.name, value)
    return shown


Catalog = Callable[[str], tuple[float | None, float | None]]
Impression = tuple[Any, ...]
"""One impression row, fields in `monitoring.layout.IMPRESSION_COLUMNS` order."""


def origin(record: dict[str, Any]) -> tuple[str, str]:
    """(experiment name, interleave teams string) of a provenance record; "" for none or malformed."""
    experiment = record.get("experiment")
    # Interned: every record of an experiment carries the same name, and up to the provenance
    # buffer's size of them wait in memory.
    name = sys.intern(experiment) if isinstance(experiment, str) else ""
    interleave = record.get("interleave")
    teams = interleave.get("teams") if isinstance(interleave, dict) else None
    return name, teams if isinstance(teams, str) else ""


def interleave_credit(movies: tuple[str, ...], teams: str, watched: set[str] | None) -> tuple[int, int]:
    """(credit A, credit B) of one list; (0, 0) when not interleaved or the teams do not fit the list."""
    if not teams or not watched:
        return 0, 0
    try:
        by_movie = teams_by_movie(movies, teams)
    except ValueError:  # a record that does not fit its list credits nobody rather than stop the job
        return 0, 0
    return credit(by_movie, watched)


def impression(shown: Shown, catalog: Catalog) -> Impression:
    """The impression row of a final list."""
    ok = shown.status == 200
    costs = [c for c in (catalog(m)[0] for m in shown.movies) if c is not None] if ok else []
    list_cost = float(sum(costs)) if costs else math.nan
    hit_cost, completion = 0.0, math.nan
    if shown.hit_rank:
        cost, runtime = catalog(shown.hit_movie)
        hit_cost = float(cost or 0.0)
        if runtime:
            completion = min(1.0, shown.hit_minutes / runtime)
    watched = shown.watched
    credit_a, credit_b = interleave_credit(shown.movies, shown.teams, watched)
    who = shown.who
    return (
        shown.ts_ns // 1000, shown.user, shown.experiment, who.arm, who.model, who.path, shown.status,
        shown.ms, int(shown.hit_rank > 0), shown.hit_rank, shown.hit_minutes, completion, list_cost,
        hit_cost, len(watched) if watched else 0, shown.teams, credit_a, credit_b,
    )  # fmt: skip
