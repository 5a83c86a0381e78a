"""The request path's sparse top-k kernels equal the dense passes they replaced, ties and all."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from ranking.candidate_index import GENERATORS, LAST_N, POLICIES, RECENT_DECAY, CandidateIndex, IndexConfig
from ranking.candidates import ALSConfig
from ranking.candidates.merge import MISSING_RANK
from ranking.sparse_topk import rows_max_at, rows_weighted_sum, top, top_outside
from tests.unit.test_candidate_index import _sessions


def _csr(rng: np.random.Generator, n: int = 300, density: float = 0.05) -> sp.csr_matrix:
    m = sp.random(
        n, n, density=density, random_state=np.random.RandomState(int(rng.integers(1 << 30))), format="csr"
    )
    m.data = np.round(m.data, 1).astype(np.float32)  # coarse values: many ties
    return m


@pytest.mark.parametrize("seed", range(5))
def test_top_outside_equals_a_dense_top_with_the_excluded_set_to_minus_inf(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = np.round(rng.random(500), 1)  # ties everywhere
    scores[rng.integers(0, 500, 40)] = -np.inf
    excluded = rng.integers(0, 500, 30)
    dense = scores.copy()
    dense[excluded] = -np.inf
    pos = np.arange(len(dense))
    reference = [
        int(i) for i in np.lexsort((pos, -dense)) if np.isfinite(dense[i])
    ]  # a full sort: ties to the smaller position
    for k in (0, 1, 20, 470, 600):
        assert top(dense, k).tolist() == reference[:k]
        mask = np.zeros(len(scores), dtype=bool)
        mask[excluded] = True
        assert top_outside(top(scores, len(scores)), mask, k).tolist() == reference[:k]


@pytest.mark.parametrize("seed", range(5))
def test_sparse_row_sums_and_maxima_equal_the_dense_matrix_products(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = _csr(rng)
    m.sort_indices()
    rows = rng.integers(0, 300, int(rng.integers(0, 12)))
    weights = RECENT_DECAY ** np.arange(len(rows), dtype=np.float64)
    cols, sums = rows_weighted_sum(m.indptr, m.indices, m.data, rows, weights)
    dense = np.asarray(m[rows].T @ weights, dtype=np.float64).ravel()
    assert cols.tolist() == sorted(set(m[rows].indices.tolist()))
    np.testing.assert_allclose(sums, dense[cols], rtol=1e-12)
    assert not dense[np.setdiff1d(np.arange(300), cols)].any()
    at = np.unique(rng.integers(0, 300, 50))
    want = np.asarray(m[rows][:, at].todense()).max(axis=0) if len(rows) else np.zeros(len(at))
    assert rows_max_at(m.indptr, m.indices, m.data, rows, at, 300).tolist() == np.ravel(want).tolist()


def _dense_candidates(
    index: CandidateIndex, user: int, recent: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The dense version `candidates` had before the sparse kernels: every score over the whole vocabulary."""
    n = len(index.items)
    seen = np.concatenate([index.watched(user), recent]).astype(np.int64)
    scores = {"pop": index._pop_score.copy(), "als": np.full(n, -np.inf), "item": np.full(n, -np.inf)}
    row = index._row(user)
    if row >= 0:
        scores["als"][index._als_at] = index._als_factors @ index._user_factors[row]
    if len(recent):
        summed = np.asarray(
            index._similar[recent].T @ RECENT_DECAY ** np.arange(len(recent)), dtype=np.float64
        ).ravel()
        scores["item"] = np.where(summed > 0, summed, -np.inf)
    tops = {}
    for gen, k in (("pop", index.config.k_pop), ("als", index.config.k_als), ("item", index.config.k_item)):
        scores[gen][seen] = -np.inf
        tops[gen] = top(scores[gen], k)
    proposed = np.unique(np.concatenate(list(tops.values())))
    features = {}
    for gen, best in tops.items():
        rank = np.full(len(proposed), float(MISSING_RANK))
        rank[np.searchsorted(proposed, best)] = np.arange(1, len(best) + 1)
        features[f"rank_{gen}"] = rank
        own = scores[gen][proposed]
        features[f"score_{gen}"] = np.where(np.isfinite(own), own, np.nan)
    features["score_pop"] = np.log1p(np.maximum(features["score_pop"], 0.0))
    last = recent[:LAST_N]
    if len(last):
        features["sim_item_last"] = (
            np.asarray(index._similar[last][:, proposed].todense()).max(axis=0).astype(float)
        )
    return proposed, features


def test_candidates_equal_the_dense_computation_for_every_user() -> None:
    sessions = _sessions(n_users=80, n_movies=120, n=3000)
    index = CandidateIndex.build(
        sessions, pd.Timestamp("2026-10-09", tz="UTC"), ALSConfig(factors=8, iterations=5),
        IndexConfig(k_pop=10, k_als=15, k_item=15),
    )  # fmt: skip
    rng = np.random.default_rng(0)
    checked = 0
    for user in [*range(80), 99_999]:
        recent = rng.permutation(len(index.items))[: int(rng.integers(0, 12))].astype(np.int64)
        got = index.candidates(user, recent)
        proposed, want = _dense_candidates(index, user, recent)
        assert got.items.tolist() == proposed.tolist(), user
        for name, column in want.items():
            np.testing.assert_allclose(got.features[name], column, rtol=1e-6, equal_nan=True, err_msg=name)
        lists = index.generator_lists(list(POLICIES), user, recent, 20)
        assert all(len(v) == 20 for v in lists.values())
        checked += sum(got.sources()[g] for g in GENERATORS)
    assert checked > 1000
