"""Unit-test fixtures shared by several modules: a small trained ranker with its candidate index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ranking import columns as C  # noqa: N812
from ranking.candidate_index import CandidateIndex
from ranking.candidates import ALSConfig
from ranking.ranker import Ranker, RankerParams
from ranking.transforms import FEATURE_COLUMNS
from serving.models import ModelBundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> ModelBundle:
    rng = np.random.default_rng(0)
    n = 1500
    start = pd.Timestamp("2026-10-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 9 * 86_400, n), unit="s")
    minutes = rng.integers(1, 100, n)
    sessions = pd.DataFrame(
        {
            C.USER: rng.integers(0, 50, n),
            C.ITEM: [f"movie+{m}+2001" for m in np.minimum(rng.zipf(1.3, n), 90)],
            C.MINUTES: minutes,
            C.START_TS: start,
            C.END_TS: start + pd.to_timedelta(minutes, unit="m"),
        }
    )
    index = CandidateIndex.build(
        sessions, pd.Timestamp("2026-10-11", tz="UTC"), ALSConfig(factors=4, iterations=3)
    )
    x = rng.normal(size=(600, len(FEATURE_COLUMNS))).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64) + (x[:, 1] > 1).astype(np.int64)
    ranker = Ranker.train(
        x, y, np.full(30, 20), 1.0, RankerParams(n_estimators=5, num_threads=1), default_lambda=0.1
    )
    path = tmp_path_factory.mktemp("model")
    return ModelBundle("recsys-ranker", 1, ranker, index, Path(path))
