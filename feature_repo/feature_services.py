"""Versioned feature services: the feature sets models and the serving path ask for by name."""

from __future__ import annotations

from feast import FeatureService

from feature_repo.movie_features import movie_metadata, movie_popularity, movie_rating_stats
from feature_repo.user_features import user_description, user_profile, user_rating_stats, user_watch_stats

ranker_v1 = FeatureService(
    name="ranker_v1",
    features=[
        user_watch_stats,
        user_rating_stats,
        user_profile,
        movie_popularity,
        movie_rating_stats,
        # `adult` is a serving rule (serving.constraints), not a ranker input: v1 stays as trained.
        movie_metadata[[f.name for f in movie_metadata.features if f.name != "adult"]],
    ],
    description="Every user and movie feature, as the v1 LambdaRank ranker trains and scores on.",
    owner="ml@recsys",
    tags={"model": "ranker", "version": "1"},
)

user_online_v1 = FeatureService(
    name="user_online_v1",
    # user_description feeds the cold-start policy only; the ranker's ranker_v1 stays as trained.
    features=[user_watch_stats, user_rating_stats, user_profile, user_description],
    description="The user views only: one online call per request fetches the user's side "
    "(the ranker's views plus the self-description the cold-start policy reads).",
    owner="ml@recsys",
    tags={"model": "ranker", "version": "1", "use": "serving"},
)
