"""The read-out of an interleaving experiment from the impressions: per-user credit -> preference -> users needed.

Each user's credit is summed over all their interleaved lists in the window (`credit_a`,
`credit_b` of the impressions), then `interleave_credit.preference` gives one vote per user.
Team A is the interleave record's `a` model, B its `b` model (serving writes the names into the
provenance record; the impressions keep only the teams, so the caller names them).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from monitoring.experiment_data import read_impressions_of, window_of
from monitoring.interleave_credit import Preference, preference, users_needed_interleaving

MIN_CREDITED: int = 30
"""Users with any credit below which no verdict is given."""


@dataclass(frozen=True)
class InterleaveResult:
    """An interleaving experiment's verdict and the users it would need at the observed preference."""

    experiment: str
    started_at: datetime | None
    stopped_at: datetime | None
    users: int
    """Users with any interleaved list in the window."""
    preference: Preference
    users_needed: int | None
    """Users exposed needed for 80% power at the observed preference (None: no preference seen)."""
    decision: str
    """"A wins" / "B wins" / "no significant difference" / "too few users"."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (NaN -> None)."""
        pref = {
            k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in asdict(self.preference).items()
        }
        return {"experiment": self.experiment, **window_of(self.started_at, self.stopped_at), "users": self.users,
                "preference": pref, "users_needed": self.users_needed, "decision": self.decision}  # fmt: skip


def analyze_interleaving(
    var: Path,
    experiment: str,
    started_at: datetime | None,
    stopped_at: datetime | None,
    alpha: float = 0.05,
    min_credited: int = MIN_CREDITED,
) -> InterleaveResult:
    """Aggregate credit per user over the experiment's interleaved lists and test the preference."""
    imp = read_impressions_of(var, experiment, started_at, stopped_at)
    imp = imp[imp["teams"] != ""]
    per_user = imp.groupby("user_id")[["credit_a", "credit_b"]].sum()
    pref = preference(zip(per_user["credit_a"].tolist(), per_user["credit_b"].tolist(), strict=True), alpha)
    needed: int | None = None
    decided = pref.wins_a + pref.wins_b
    if decided and pref.wins_a != pref.wins_b and pref.wins_a and pref.wins_b:
        untied = users_needed_interleaving(pref.wins_b / decided, pref.ties / pref.n, alpha)
        # Users who credit nobody (watched nothing listed) are exposed too: scale up by their share.
        needed = math.ceil(untied * len(per_user) / pref.n)
    if pref.n < min_credited:
        decision = "too few users"
    elif pref.winner is not None:
        decision = f"{pref.winner} wins"
    else:
        decision = "no significant difference"
    return InterleaveResult(experiment, started_at, stopped_at, len(per_user), pref, needed, decision)
