"""The ranker's contract: learns a planted signal, cost penalty moves expensive movies down, text-format round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ranking.ranker import META_FILE, Ranker, RankerParams
from ranking.transforms import FEATURE_COLUMNS, model_matrix


def _data(n_groups: int = 60, per: int = 20, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_groups * per, len(FEATURE_COLUMNS))).astype(np.float32)
    signal = FEATURE_COLUMNS.index("genre_match")
    y = np.clip(np.round(x[:, signal] * 1.5 + 1), 0, 4).astype(np.int64)
    return x, y, np.full(n_groups, per, dtype=np.int64)


def test_learns_the_planted_signal_and_round_trips(tmp_path: Path) -> None:
    x, y, groups = _data()
    ranker = Ranker.train(x, y, groups, cost_scale=2.0, params=RankerParams(n_estimators=30, num_threads=1))
    scores = ranker.score(x)
    assert np.corrcoef(scores, y)[0, 1] > 0.8
    ranker.save(tmp_path / "m")
    again = Ranker.load(tmp_path / "m")
    assert np.array_equal(again.score(x), scores)
    assert (tmp_path / "m" / "model.txt").read_text().startswith("tree")  # LightGBM text format, not a pickle


def test_cost_penalty_pushes_expensive_movies_down() -> None:
    x, y, groups = _data()
    ranker = Ranker.train(x, y, groups, cost_scale=2.0, params=RankerParams(n_estimators=10, num_threads=1))
    scores = np.array([1.0, 0.9, 0.8])
    cost = np.array([10.0, 0.1, np.nan])
    assert list(np.argsort(-ranker.penalised(scores, cost, 0.0))) == [0, 1, 2]
    assert list(np.argsort(-ranker.penalised(scores, cost, 0.1))) == [1, 2, 0]
    # Unknown cost is charged the median (cost_scale): missing data earns no bonus.
    assert ranker.penalised(scores, cost, 1.0)[2] == pytest.approx(0.8 - 1.0)


def test_load_refuses_a_model_trained_on_other_features(tmp_path: Path) -> None:
    x, y, groups = _data(n_groups=10)
    Ranker.train(x, y, groups, 1.0, RankerParams(n_estimators=3, num_threads=1)).save(tmp_path)
    meta = json.loads((tmp_path / META_FILE).read_text())
    meta["features"] = meta["features"][:-1]
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="features"):
        Ranker.load(tmp_path)


def test_transforms_are_row_local_so_training_and_serving_agree() -> None:
    # Serving scores one user's candidates; training scores thousands of rows at once. Same rows,
    # same features, whatever else is in the frame.
    frame = pd.DataFrame({
        "user_watch_stats__genre_affinity": [[1.0] + [0.0] * 18, [0.5, 0.5] + [0.0] * 17, None],
        "movie_metadata__genres": [["Action"], ["Comedy", "Drama"], ["Action"]],
        "movie_metadata__cost": [1.0, 5.0, np.nan],
        "movie_popularity__plays_24h": [7, 1, 0],
        "movie_popularity__plays_7d": [7, 7, 0],
        "user_watch_stats__last_active_ts": [1_800_000_000, 1_800_000_000, np.nan],
        "rank_pop": [1, 2, 10_000],
    })  # fmt: skip
    whole = model_matrix(frame, 1_800_086_400.0)
    parts = np.vstack([model_matrix(frame.iloc[[i]], 1_800_086_400.0) for i in range(len(frame))])
    assert np.array_equal(np.nan_to_num(whole, nan=-1), np.nan_to_num(parts, nan=-1))
    assert whole.shape == (3, len(FEATURE_COLUMNS))
    gm = FEATURE_COLUMNS.index("genre_match")
    assert whole[0, gm] == pytest.approx(1.0) and np.isnan(whole[2, gm])
    assert whole[0, FEATURE_COLUMNS.index("user_days_since_active")] == pytest.approx(1.0)


def test_verdict_needs_the_whole_bootstrap_interval_above_zero() -> None:
    import pandas as pd

    from ranking.verdict import decide

    rng = np.random.default_rng(0)
    users = np.arange(2000)
    base = pd.Series(rng.random(2000) * 0.1, index=users)
    noise = pd.Series(base.to_numpy() + rng.normal(0, 0.05, 2000), index=users)
    better = pd.Series(base.to_numpy() + 0.01 + rng.normal(0, 0.05, 2000), index=users)
    lose = decide(
        "lambdarank", {"lambdarank": noise, "popularity": base, "als": base * 0.5}, ["popularity", "als"]
    )
    assert lose.baseline == "popularity" and lose.ci_low < 0 < lose.ci_high and not lose.wins
    assert lose.winner == "popularity"
    win = decide(
        "lambdarank", {"lambdarank": better, "popularity": base, "als": base * 0.5}, ["popularity", "als"]
    )
    assert win.wins and win.ci_low > 0 and win.winner == "lambdarank"
    assert "95% CI" in win.reason()
