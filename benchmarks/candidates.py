"""Candidate generation as training and serving run it: fit, save/load, per-user latency and recall.

Nothing here is configured by the benchmark: the generators, how many candidates each
proposes and the ALS settings are the product's own. The index is fit by the call training
makes per cut-off (`CandidateIndex.build` with `ranking.dataset.TRAINING_ALS`, the default
`IndexConfig` and ALS/item-item on `ranking.dataset.fit_users`, capped at `ALS_USERS`); when
that cap does not bite (up to ALS_USERS users) it is also the fit serving ships beside a model.
Each user's candidates come from `CandidateIndex.candidates(user, recent)`, the call the service
makes per request, with `recent` = the user's distinct movies most recent first (what Feast's
`recent_movie_ids` holds). The sources measured are `ranking.candidate_index.GENERATORS` (per
source: its `rank_<source>` column) and their union; the baseline lists are the index's
`POLICIES`, each judged on the top 20.

The plays have latent taste: movies belong to one of 50 clusters with Zipf popularity inside
each, every user likes one or two clusters (plus a little global noise), and play counts per
user are geometric. Each user's last 3 plays are held out. BLAS and implicit are pinned to one
thread (the ALS fit uses TRAINING_ALS's threads, as training does).

    OPENBLAS_NUM_THREADS=1 python benchmarks/candidates.py [--users N] [--movies M] [--plays P] [--out F]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ranking import columns as C  # noqa: N812
from ranking.candidate_index import GENERATORS, POLICIES, CandidateIndex, IndexConfig
from ranking.candidates import recall_at_k
from ranking.candidates.merge import MISSING_RANK
from ranking.dataset import ALS_USERS, TRAINING_ALS, fit_users
from ranking.interactions import history
from ranking.metrics import catalog_coverage, ranking_metrics

RESULTS = Path(__file__).parent / "results" / "candidates.json"
NOW = pd.Timestamp("2026-03-01", tz="UTC")
RECENT_MAX = 50
"""Length of Feast's `recent_movie_ids` (ingestion's `recent_movies` default)."""
TOP = 20
"""List length the baseline policies are judged on (the service answers 20)."""


def make_plays(n_users: int, n_movies: int, n_plays: int, seed: int = 11) -> pd.DataFrame:
    """Synthetic watch sessions (the offline store's columns) with cluster taste and Zipf popularity."""
    rng = np.random.default_rng(seed)
    n_clusters = 50
    movie_cluster = rng.integers(0, n_clusters, n_movies)
    by_cluster = [np.flatnonzero(movie_cluster == c) for c in range(n_clusters)]
    weights = [1.0 / np.arange(1, len(m) + 1) ** 0.8 for m in by_cluster]
    cdfs = [np.cumsum(w) / w.sum() for w in weights]
    per_user = rng.geometric(n_users / n_plays, n_users)
    users = np.repeat(np.arange(n_users, dtype=np.int64), per_user)
    likes = rng.integers(0, n_clusters, (n_users, 2))
    second = rng.random(len(users)) < 0.3
    cluster = np.where(second, likes[users, 1], likes[users, 0])
    noise = rng.random(len(users)) < 0.1
    cluster[noise] = rng.integers(0, n_clusters, int(noise.sum()))
    u01 = rng.random(len(users))
    movie = np.empty(len(users), dtype=np.int64)
    for c in range(n_clusters):
        sel = cluster == c
        movie[sel] = by_cluster[c][np.searchsorted(cdfs[c], u01[sel])]
    minutes = rng.integers(1, 120, len(users)).astype(np.int32)
    start = NOW - pd.to_timedelta(rng.uniform(0, 30, len(users)), unit="D")
    return pd.DataFrame(
        {
            C.USER: users,
            C.ITEM: np.char.add("movie+", movie.astype(str)).astype(object),
            C.MINUTES: minutes,
            C.START_TS: start,
            C.END_TS: start + pd.to_timedelta(minutes.astype(np.int64) - 1, unit="min"),
        }
    )


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(result, seconds)."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def recent_watches(hist: pd.DataFrame, users: np.ndarray) -> dict[int, list[str]]:
    """Each user's distinct movies, most recent first, at most RECENT_MAX (Feast's `recent_movie_ids`)."""
    h = hist[hist[C.USER].isin(users)].sort_values([C.USER, C.TIMESTAMP], ascending=[True, False])
    h = h.drop_duplicates([C.USER, C.ITEM])
    h = h[h.groupby(C.USER).cumcount() < RECENT_MAX]
    return {int(u): list(g) for u, g in h.groupby(C.USER)[C.ITEM]}


def main() -> None:
    """Run the benchmark, print a summary and write the figures (benchmarks/results/candidates.json by default)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000, help="Users with plays.")
    parser.add_argument("--movies", type=int, default=5_000, help="Movies in the catalogue.")
    parser.add_argument("--plays", type=int, default=400_000, help="Plays (watch sessions), roughly.")
    parser.add_argument("--eval-users", type=int, default=2_000, help="Users scored for recall and timing.")
    parser.add_argument("--out", type=Path, default=RESULTS, help="Where to write the JSON figures.")
    args = parser.parse_args()

    sessions, t_gen = timed(lambda: make_plays(args.users, args.movies, args.plays))
    sessions = sessions.sort_values([C.USER, C.END_TS])
    held = sessions.groupby(C.USER).cumcount(ascending=False).to_numpy() < 3
    train, test = sessions[~held].reset_index(drop=True), sessions[held].reset_index(drop=True)
    as_of = pd.Timestamp(train[C.END_TS].max()) + pd.Timedelta(seconds=1)  # history() keeps ends before it
    hist = history(train, as_of)
    print(
        f"{len(train):,} training sessions, {train[C.USER].nunique():,} users, {args.movies:,} movies ({t_gen:.1f} s)"
    )

    rng = np.random.default_rng(3)
    with_history = hist[C.USER].unique()
    users = np.sort(rng.choice(with_history, min(args.eval_users, len(with_history)), replace=False))
    test_eval = test[test[C.USER].isin(users)]
    config = IndexConfig()
    fit_on = fit_users(hist, users, ALS_USERS, 7)
    figures: dict[str, Any] = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "training_sessions": len(train),
        "users": int(train[C.USER].nunique()),
        "movies": int(train[C.ITEM].nunique()),
        "eval_users": len(users),
        "generators": list(GENERATORS),
        "index_config": config.model_dump(),
        "als_config": TRAINING_ALS.model_dump()
        if hasattr(TRAINING_ALS, "model_dump")
        else repr(TRAINING_ALS),
        "als_item_item_fit_users": len(with_history) if fit_on is None else len(fit_on),
    }

    index, figures["index_fit_s"] = timed(
        lambda: CandidateIndex.build(train, as_of, als=TRAINING_ALS, config=config, fit_users=fit_on)
    )
    with tempfile.TemporaryDirectory() as tmp:
        _, figures["index_save_s"] = timed(lambda: index.save(Path(tmp)))
        figures["index_saved_mb"] = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file()) / 1e6
        _, figures["index_load_s"] = timed(lambda: CandidateIndex.load(Path(tmp)))

    recent = recent_watches(hist, users)
    rows: list[pd.DataFrame] = []
    per_user_ms = []
    for u in users:
        positions = index.positions(recent.get(int(u), []))
        cands, t = timed(lambda u=u, positions=positions: index.candidates(int(u), positions))
        per_user_ms.append(t * 1000)
        frame = pd.DataFrame({C.USER: int(u), C.ITEM: index.items[cands.items]})
        for gen in GENERATORS:
            frame[f"rank_{gen}"] = cands.features[f"rank_{gen}"]
        rows.append(frame)
    figures["candidates_one_user_ms_p50"] = statistics.median(per_user_ms)
    figures["candidates_one_user_ms_p95"] = float(np.percentile(per_user_ms, 95))
    cands_all = pd.concat(rows, ignore_index=True)
    figures["candidates_per_user"] = float(cands_all.groupby(C.USER).size().mean())
    for gen in GENERATORS:
        mine = cands_all[cands_all[f"rank_{gen}"] != MISSING_RANK]
        figures[f"recall_{gen}"] = recall_at_k(mine.assign(**{C.RANK: mine[f"rank_{gen}"]}), test_eval)
        figures[f"candidates_per_user_{gen}"] = len(mine) / len(users)
    figures["recall_union"] = recall_at_k(cands_all.assign(**{C.RANK: 1}), test_eval)

    for policy in POLICIES:
        lists = []
        for u in users:
            top = index.generator_list(policy, int(u), index.positions(recent.get(int(u), [])), TOP)
            lists.append(
                pd.DataFrame({C.USER: int(u), C.ITEM: index.items[top], C.RANK: np.arange(1, len(top) + 1)})
            )
        recs = pd.concat(lists, ignore_index=True)
        figures[f"{policy}_top{TOP}"] = ranking_metrics(recs, test_eval, k=TOP)
        figures[f"{policy}_top{TOP}_coverage"] = catalog_coverage(recs, args.movies, k=TOP)

    for key, value in figures.items():
        print(f"{key:40s} {value:.4g}" if isinstance(value, float) else f"{key:40s} {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    tmp_out.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
