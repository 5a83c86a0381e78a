"""An unknown license cost is priced conservatively (p90 of known costs) by training, evaluation and serving."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from events.metadata import GENRES
from ranking.ranker import Ranker, RankerMeta
from ranking.transforms import UNKNOWN_COST_QUANTILE, fill_unknown_cost, unknown_cost
from serving.movie_table import COST, MovieTable
from serving.recommender import fallback_list

KNOWN = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 5.0])


def test_unknown_cost_is_the_p90_of_known_costs_and_is_counted() -> None:
    assert UNKNOWN_COST_QUANTILE == 0.9
    assumed = unknown_cost([*KNOWN, np.nan])  # unknown ones do not move the quantile
    assert assumed == pytest.approx(np.quantile(KNOWN, 0.9))
    assert assumed > np.median(KNOWN)  # conservative: above the median the penalty is scaled by
    filled, n = fill_unknown_cost([0.2, np.nan, np.inf, 0.4], assumed)
    assert n == 2 and filled.tolist() == [0.2, assumed, assumed, 0.4]
    assert unknown_cost([np.nan]) == 0.0


def test_the_penalty_prices_an_unknown_cost_at_the_models_assumed_cost() -> None:
    booster: Any = None  # penalised() never touches the trees
    ranker = Ranker(booster, RankerMeta(cost_scale=0.5, unknown_cost=1.0, default_lambda=1.0))
    out = ranker.penalised(np.zeros(3), np.array([0.5, np.nan, 1.0]), None)
    assert out.tolist() == [-1.0, -2.0, -2.0]
    old = Ranker(booster, RankerMeta(cost_scale=0.5, default_lambda=1.0))  # meta.json from before the field
    assert old.penalised(np.zeros(1), np.array([np.nan]), None).tolist() == [-1.0]


def test_serving_never_treats_an_unknown_cost_as_cheap() -> None:
    ids = np.asarray(["a", "b", "c", "unknown"], dtype=object)
    table = MovieTable(
        ids, {COST: np.array([0.1, 0.1, 2.0, np.nan])}, np.zeros((4, len(GENRES)), dtype=np.float32)
    )
    assert table.unknown_cost == pytest.approx(unknown_cost([0.1, 0.1, 2.0]))
    # The most popular movie has no known cost: it must rank like an expensive one, not a free one.
    ranked = fallback_list(["unknown", "a", "b", "c"], table)
    assert ranked.index("unknown") > ranked.index("a")


def test_list_cost_prices_and_counts_unknown_costs() -> None:
    from prometheus_client import REGISTRY

    from serving.runtime import Runtime

    table = MovieTable(
        np.asarray(["a", "b"], dtype=object),
        {COST: np.array([1.0, np.nan])},
        np.zeros((2, len(GENRES)), np.float32),
    )

    class Holder:
        pass

    rt: Any = Holder()
    rt.table = table
    before = REGISTRY.get_sample_value("recsys_list_unknown_cost_movies_total") or 0.0
    assert Runtime.list_cost(rt, ["a", "b", "zzz"]) == pytest.approx(1.0 + 2 * table.unknown_cost)
    assert (REGISTRY.get_sample_value("recsys_list_unknown_cost_movies_total") or 0.0) - before == 2
