"""Known, measured differences between training's rows and the served rows, per feature: the skew rows' notes.

They explain a distribution (PSI) difference: time (cut-offs before serving time), fits of the
candidate generators, the index's age. The value-by-value replay (`monitoring.skew_replay`) is
unaffected by the first kind, since it rebuilds a row at serving's own feature time.
"""

from __future__ import annotations

from typing import Final

_ALS = (
    "ALS fits differ: per training cut-off on a 200,000-user sample, serving's index on everyone at the data end; "
    "measured PSI 0.03-0.07, the sample alone 0.06 (docs/skew.md, suspect a)"
)
_FROZEN = (
    "frozen at the index build (training's data end) while popularity features are live: the gap grows with "
    "the index's age (docs/skew.md, suspect b)"
)
_LIVE_POP = (
    "live, while popularity candidates come from the index frozen at training: an index older than ~6 h moves "
    "it among the candidates (PSI 0.7-1 at 24 h; docs/skew.md, suspect b)"
)
_CLOCK = (
    "time since an event: serving's clock is later than every training cut-off (by three label horizons or more), "
    "so it shifts with the model's age: drift, not a computation skew"
)
_ITEM = "item-item fit on more history in serving's index than in the cut-off indexes: similarities grow with data"
_CUMULATIVE = "cumulative count: grows between the training cut-offs and serving time"
NOTES: Final[dict[str, str]] = {
    "score_als": _ALS,
    "sim_als_last": _ALS,
    "rank_als": _ALS,
    "rank_pop": _FROZEN
    + "; its own shares cannot move (ranks 1..k), the staleness shows in the live features",
    "score_pop": _FROZEN,
    "movie_popularity__plays_1h": _LIVE_POP,
    "movie_popularity__plays_24h": _LIVE_POP,
    "movie_popularity__plays_7d": _LIVE_POP,
    "plays_trend_24h_7d": _LIVE_POP,
    "plays_trend_1h_24h": _LIVE_POP,
    "user_days_since_active": _CLOCK,
    "user_account_age_days": _CLOCK,
    "movie_days_in_stream": _CLOCK,
    "movie_age_years": _CLOCK,
    "score_item": _ITEM,
    "sim_item_last": _ITEM,
    "user_watch_stats__watch_count_total": _CUMULATIVE,
    "user_rating_stats__rating_count": _CUMULATIVE,
    "movie_rating_stats__rating_count": _CUMULATIVE,
}
"""Known, explained differences between training and serving, per feature (the rows' `note`; measured in docs/skew.md).

A note explains why a row may be flagged; it does not silence it: a PSI far beyond what the
note's figures describe is still worth a look.
"""
