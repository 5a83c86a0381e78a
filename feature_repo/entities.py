"""The two entities every feature hangs off: `user` (Int64 join key) and `movie` (String slug join key)."""

from __future__ import annotations

from feast import Entity, ValueType

USER_ID = "user_id"
"""Join key of the `user` entity: the stream's non-negative integer user id."""
MOVIE_ID = "movie_id"
"""Join key of the `movie` entity: the stream's movie slug (`the+green+mile+1999`)."""

user = Entity(
    name="user",
    join_keys=[USER_ID],
    # Explicit value types: inference would read the offline data at `feast apply` time.
    value_type=ValueType.INT64,
    description="A viewer of the streaming service, keyed by the log stream's user id.",
    owner="data-eng@recsys",
)

movie = Entity(
    name="movie",
    join_keys=[MOVIE_ID],
    value_type=ValueType.STRING,
    description="A movie of the catalogue, keyed by its slug (title words joined by '+', then the year).",
    owner="data-eng@recsys",
)
