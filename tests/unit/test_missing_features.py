"""Telling a user whose online row is missing from one whose row has values (issue 10, defect 3)."""

from __future__ import annotations

from serving.recommender import features_missing


def test_a_row_of_only_nulls_or_no_row_is_missing() -> None:
    assert features_missing(None)
    assert features_missing({})
    assert features_missing(
        {"user_id": 3, "user_watch_stats__watch_count_total": None, "user_profile__age": None}
    )


def test_any_value_means_the_row_exists() -> None:
    assert not features_missing(
        {"user_id": 3, "user_watch_stats__watch_count_total": None, "user_profile__age": 31}
    )
    assert not features_missing({"user_id": 3, "user_watch_stats__recent_movie_ids": []}), (
        "an empty list is a value"
    )
