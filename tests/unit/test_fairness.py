"""monitoring.fairness: groups, clustered rates, Gini, popularity deciles, exposure and concentration."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from monitoring import fairness as F  # noqa: N812


def test_age_bands_and_occupation_groups_cover_every_value() -> None:
    assert [F.age_group(a) for a in (0, 17, 18, 24, 25, 34, 35, 49, 50, 64, 65, 99)] == [
        "<18", "<18", "18-24", "18-24", "25-34", "25-34", "35-49", "35-49", "50-64", "50-64", "65+", "65+",
    ]  # fmt: skip
    assert F.age_group(-1) == "unknown"
    from simulator.vocab import OCCUPATIONS

    assert set(OCCUPATIONS) == set(F.OCCUPATION_GROUPS)  # every MovieLens occupation has a group
    assert F.occupation_group("astronaut") == "other"


def test_user_groups_is_indexed_by_user() -> None:
    users = pd.DataFrame({"user_id": [3, 1], "age": [70, 20], "gender": ["F", "M"],
                          "occupation": ["retired", "programmer"]})  # fmt: skip
    g = F.user_groups(users)
    assert g.loc[3].tolist() == ["65+", "F", "not employed"]
    assert g.loc[1].tolist() == ["18-24", "M", "professional"]
    assert F.group_order("age_group", ["65+", "<18", "25-34"]) == ["<18", "25-34", "65+"]


def test_gini_of_equal_and_concentrated_counts() -> None:
    assert F.gini([5, 5, 5, 5]) == pytest.approx(0.0)
    assert F.gini([0, 0, 0, 10]) == pytest.approx(0.75)  # (n - 1) / n
    assert F.gini([1, 2, 3, 4]) == pytest.approx(0.25)
    assert math.isnan(F.gini([0, 0]))
    with pytest.raises(ValueError):
        F.gini([-1, 2])


def test_clustered_rate_is_the_pooled_ratio_and_wider_when_users_differ() -> None:
    rate, low, high = F.clustered_rate([5, 5, 5, 5], [10, 10, 10, 10])
    assert rate == pytest.approx(0.5) and low == pytest.approx(0.5) and high == pytest.approx(0.5)
    rate, low, high = F.clustered_rate([10, 0, 10, 0], [10, 10, 10, 10])
    assert rate == pytest.approx(0.5) and low < 0.1 and high > 0.9
    assert all(math.isnan(v) for v in F.clustered_rate([], []))


def test_group_rates_pool_lists_per_group_and_drop_users_without_one() -> None:
    rows = pd.DataFrame({"user_id": [1, 1, 2, 2, 3, 9], "hit": [1, 0, 1, 1, 0, 1]})
    groups = pd.Series({1: "a", 2: "a", 3: "b"})
    out = {r.group: r for r in F.group_rates(rows, groups)}
    assert set(out) == {"a", "b"}
    assert (out["a"].users, out["a"].trials, out["a"].successes) == (2, 4, 3)
    assert out["a"].rate == pytest.approx(0.75)
    assert out["a"].ci_low <= 0.75 <= out["a"].ci_high
    assert out["b"].rate == 0.0


def test_popularity_deciles_rank_the_whole_catalogue_most_popular_first() -> None:
    counts = pd.Series({f"m{i:02d}": i for i in range(20)})
    d = F.popularity_deciles(counts)
    assert d["m19"] == 1 and d["m18"] == 1 and d["m17"] == 2 and d["m00"] == 10
    assert d.value_counts().to_dict() == {k: 2 for k in range(1, 11)}
    ties = F.popularity_deciles(pd.Series({"b": 0, "a": 0}))  # ties break by id
    assert ties["a"] < ties["b"]


def test_decile_exposure_shares_sum_to_one() -> None:
    deciles = F.popularity_deciles(pd.Series({f"m{i}": 10 - i for i in range(10)}))
    out = F.decile_exposure(pd.Series(["m0", "m0", "m1", "zz"]), pd.Series(["m9", "m0"]), deciles)
    assert out["slot_share"].sum() == pytest.approx(1.0) and out["watch_share"].sum() == pytest.approx(1.0)
    assert out.loc[out["decile"] == 1, "slot_share"].item() == pytest.approx(2 / 3)
    assert out.loc[out["decile"] == 10, "watch_share"].item() == pytest.approx(0.5)
    assert out["movies"].tolist() == [1] * 10


def test_concentration_counts_never_recommended_movies() -> None:
    catalogue = [f"m{i}" for i in range(20)]
    c = F.concentration(pd.Series(["m0"] * 8 + ["m1", "m2"]), catalogue)
    assert (c.slots, c.movies_recommended, c.catalogue) == (10, 3, 20)
    assert c.coverage == pytest.approx(0.15)
    assert c.top_decile_share == pytest.approx(0.9)  # the top 2 movies: 8 + 1 slots
    assert 0.8 < c.gini < 1.0
    even = F.concentration(pd.Series(catalogue), catalogue)
    assert even.coverage == 1.0 and even.gini == pytest.approx(0.0)


def test_mean_interval() -> None:
    mean, low, high = F.mean_interval(np.array([1.0, 2.0, 3.0]))
    assert mean == pytest.approx(2.0) and low < 2.0 < high
    assert all(math.isnan(v) for v in F.mean_interval([]))
