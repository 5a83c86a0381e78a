"""Feature views keyed by `movie`: popularity in the stream, ratings, and catalogue metadata."""

from __future__ import annotations

from datetime import timedelta

from feast import FeatureView, Field
from feast.types import Array, Bool, Float32, Int64, String

from feature_repo.data_sources import (
    movie_metadata_push_source,
    movie_popularity_push_source,
    movie_rating_stats_push_source,
)
from feature_repo.entities import MOVIE_ID, movie

movie_popularity = FeatureView(
    name="movie_popularity",
    entities=[movie],
    ttl=timedelta(days=30),
    schema=[
        Field(name=MOVIE_ID, dtype=String),
        Field(
            name="plays_1h",
            dtype=Int64,
            description="Plays (watch sessions started) in the hour up to the row's time; "
            "not distinct viewers: a viewer playing twice counts twice.",
        ),
        Field(
            name="plays_24h", dtype=Int64, description="Plays (watch sessions started) in the last 24 hours."
        ),
        Field(name="plays_7d", dtype=Int64, description="Plays (watch sessions started) in the last 7 days."),
        Field(
            name="completion_rate",
            dtype=Float32,
            description="Mean share of the runtime watched (each session capped at 1) over the sessions "
            "that ended in the last 7 days, 0..1; null without a known runtime or an ended session.",
        ),
        Field(
            name="first_play_ts",
            dtype=Int64,
            description="Unix seconds of the movie's first play in the stream (how new it is on the service).",
        ),
    ],
    source=movie_popularity_push_source,
    online=True,
    description="How much a movie is watched right now; refreshed by the stream aggregator.",
    owner="data-eng@recsys",
    tags={"team": "data-eng", "freshness": "stream"},
)

movie_rating_stats = FeatureView(
    name="movie_rating_stats",
    entities=[movie],
    ttl=timedelta(days=365),
    schema=[
        Field(name=MOVIE_ID, dtype=String),
        Field(name="rating_count", dtype=Int64, description="Ratings the movie has received."),
        Field(name="rating_mean", dtype=Float32, description="Mean rating, in stars."),
    ],
    source=movie_rating_stats_push_source,
    online=True,
    description="How the platform's users rate a movie.",
    owner="data-eng@recsys",
    tags={"team": "data-eng", "freshness": "stream"},
)

movie_metadata = FeatureView(
    name="movie_metadata",
    entities=[movie],
    ttl=timedelta(days=3650),
    schema=[
        Field(name=MOVIE_ID, dtype=String),
        Field(name="cost", dtype=Float32, description="License cost in USD paid per play."),
        Field(
            name="genres", dtype=Array(String), description="Genre names, a subset of events.metadata.GENRES."
        ),
        Field(name="year", dtype=Int64, description="Release year."),
        Field(name="runtime", dtype=Int64, description="Runtime in minutes."),
        Field(name="vote_average", dtype=Float32, description="TMDB vote average, 0..10."),
        Field(name="tmdb_popularity", dtype=Float32, description="TMDB popularity score."),
        Field(
            name="adult",
            dtype=Bool,
            description="Adult-only title (metadata API `adult`); null when unknown. Serving keeps "
            "adult titles from users under 18 or of unknown age (docs/constraints.md); not a ranker input.",
        ),
    ],
    source=movie_metadata_push_source,
    online=True,
    description="Catalogue facts from the metadata API, including the license cost.",
    owner="data-eng@recsys",
    tags={"team": "data-eng", "freshness": "enrichment"},
)
