"""Feature views keyed by `user`: watch behaviour, rating behaviour, the declared profile and self-description."""

from __future__ import annotations

from datetime import timedelta

from feast import FeatureView, Field
from feast.types import Array, Float32, Int64, String

from feature_repo.data_sources import (
    user_description_push_source,
    user_profile_push_source,
    user_rating_stats_push_source,
    user_watch_stats_push_source,
)
from feature_repo.entities import USER_ID, user

user_watch_stats = FeatureView(
    name="user_watch_stats",
    entities=[user],
    ttl=timedelta(days=30),
    schema=[
        Field(name=USER_ID, dtype=Int64),
        Field(
            name="watch_minutes_1d",
            dtype=Float32,
            description="Minutes watched in the 24 hourly buckets up to the user's latest event.",
        ),
        Field(
            name="watch_minutes_7d",
            dtype=Float32,
            description="Minutes watched in the 7 daily (UTC) buckets up to the user's latest event.",
        ),
        Field(
            name="watch_count_7d",
            dtype=Int64,
            description="Watch sessions started in the 7 daily (UTC) buckets up to the user's latest event "
            "(sessions, not distinct movies: a movie watched twice counts twice).",
        ),
        Field(
            name="watch_count_total",
            dtype=Int64,
            description="Watch sessions started, all time (sessions, not distinct movies).",
        ),
        Field(
            name="last_active_ts",
            dtype=Int64,
            description="Unix seconds of the user's latest event: a watched minute, a rating or the account creation.",
        ),
        Field(
            name="recent_movie_ids",
            dtype=Array(String),
            description="Up to 50 distinct movie ids, the most recently started session's first.",
        ),
        Field(
            name="genre_affinity",
            dtype=Array(Float32),
            description="Share of watched minutes per genre, in events.metadata.GENRES order.",
        ),
    ],
    source=user_watch_stats_push_source,
    online=True,
    description="What and how much a user watches; refreshed by the stream aggregator.",
    owner="data-eng@recsys",
    tags={"team": "data-eng", "freshness": "stream"},
)

user_rating_stats = FeatureView(
    name="user_rating_stats",
    entities=[user],
    ttl=timedelta(days=365),
    schema=[
        Field(name=USER_ID, dtype=Int64),
        Field(name="rating_count", dtype=Int64, description="Ratings the user has given."),
        Field(name="rating_mean", dtype=Float32, description="Mean of the user's ratings, in stars."),
    ],
    source=user_rating_stats_push_source,
    online=True,
    description="How often and how generously a user rates.",
    owner="data-eng@recsys",
    tags={"team": "data-eng", "freshness": "stream"},
)

user_profile = FeatureView(
    name="user_profile",
    entities=[user],
    ttl=timedelta(days=3650),
    schema=[
        Field(name=USER_ID, dtype=Int64),
        Field(name="age", dtype=Int64, description="Age in years, from the metadata API."),
        Field(name="gender", dtype=String, description="Gender code (M/F/...), from the metadata API."),
        Field(name="occupation", dtype=String, description="Occupation, from the metadata API."),
        Field(name="account_created_ts", dtype=Int64, description="Unix seconds of the create_account line."),
    ],
    source=user_profile_push_source,
    online=True,
    description="What the user told us about themselves; changes rarely.",
    owner="data-eng@recsys",
    tags={"team": "data-eng", "freshness": "enrichment"},
)

user_description = FeatureView(
    name="user_description",
    entities=[user],
    ttl=timedelta(days=3650),
    schema=[
        Field(name=USER_ID, dtype=Int64),
        Field(
            name="text_vector",
            dtype=Array(Float32),
            description="L2-normalised sentence vector of the likes answer (empty when there was nothing to encode).",
        ),
        Field(
            name="text_model_id",
            dtype=String,
            description="Encoder that made text_vector (textmodel model id); vectors of other ids are not comparable.",
        ),
        Field(
            name="liked_movie_ids",
            dtype=Array(String),
            description="Catalogue movies the likes answer names (fuzzy title matches).",
        ),
        Field(
            name="disliked_movie_ids",
            dtype=Array(String),
            description="Catalogue movies the dislikes answer names (fuzzy title matches).",
        ),
        Field(name="liked_genres", dtype=Array(String), description="Genres the likes answer names."),
        Field(name="disliked_genres", dtype=Array(String), description="Genres the dislikes answer names."),
        Field(
            name="description_kind",
            dtype=String,
            description="empty, vague or informative: how much the self-description says.",
        ),
    ],
    source=user_description_push_source,
    online=True,
    description="The user's self-description (metadata API likes/dislikes), parsed and encoded at account creation.",
    owner="ml@recsys",
    tags={"team": "ml", "freshness": "enrichment"},
)
