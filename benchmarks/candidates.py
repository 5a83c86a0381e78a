"""Candidate generation and offline metrics: fit and recommend times on synthetic plays, one thread.

The plays have latent taste: movies belong to one of 50 clusters with Zipf popularity inside
each, every user likes one or two clusters (plus a little global noise), and play counts per
user are geometric. Each user's last 3 plays are held out. Reported: fit times, recommend time
per 1,000 users (`k` candidates, seen movies excluded), one-user latency for ALS (the serving
path), save/load of ALS, merge, candidate recall of each source and of the union, and the
offline metrics over every user x 20 movies. BLAS and implicit are pinned to one thread.

    OPENBLAS_NUM_THREADS=1 python benchmarks/candidates.py [--users N] [--movies M] [--plays P]
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
from ranking.candidates import (
    ALSConfig,
    ALSGenerator,
    ItemItemGenerator,
    PopularityGenerator,
    merge_candidates,
    recall_at_k,
    seen_items,
)
from ranking.metrics import catalog_coverage, ranking_metrics

RESULTS = Path(__file__).parent / "results" / "candidates.json"
NOW = pd.Timestamp("2026-03-01", tz="UTC")


def make_plays(n_users: int, n_movies: int, n_plays: int, seed: int = 11) -> pd.DataFrame:
    """Synthetic plays with cluster taste and Zipf popularity (vectorised)."""
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
    age_days = rng.uniform(0, 30, len(users))
    return pd.DataFrame(
        {
            C.USER: users,
            C.ITEM: np.char.add("movie+", movie.astype(str)).astype(object),
            C.TIMESTAMP: NOW - pd.to_timedelta(age_days, unit="D"),
            C.MINUTES: rng.integers(1, 120, len(users)).astype(np.int32),
        }
    )


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(result, seconds)."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    """Run the benchmark, print a summary and write benchmarks/results/candidates.json."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000, help="Users with plays.")
    parser.add_argument("--movies", type=int, default=5_000, help="Movies in the catalogue.")
    parser.add_argument("--plays", type=int, default=400_000, help="Plays (interaction rows), roughly.")
    parser.add_argument("--k", type=int, default=100, help="Candidates per user and source.")
    parser.add_argument("--factors", type=int, default=64, help="ALS factors.")
    parser.add_argument("--eval-users", type=int, default=2_000, help="Users scored for recall and timing.")
    parser.add_argument("--out", type=Path, default=RESULTS, help="Where to write the JSON figures.")
    args = parser.parse_args()

    plays, t_gen = timed(lambda: make_plays(args.users, args.movies, args.plays))
    plays = plays.sort_values([C.USER, C.TIMESTAMP])
    held = plays.groupby(C.USER).cumcount(ascending=False).to_numpy() < 3
    train, test = plays[~held].reset_index(drop=True), plays[held].reset_index(drop=True)
    cutoff = pd.Timestamp(train[C.TIMESTAMP].max()) + pd.Timedelta(seconds=1)
    print(
        f"{len(train):,} training plays, {train[C.USER].nunique():,} users, {args.movies:,} movies ({t_gen:.1f} s)"
    )

    seen = seen_items(train)
    rng = np.random.default_rng(3)
    users = rng.choice(train[C.USER].unique(), min(args.eval_users, train[C.USER].nunique()), replace=False)
    test_eval = test[test[C.USER].isin(users)]
    per_1000 = 1000 / len(users)
    figures: dict[str, Any] = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "training_plays": len(train),
        "users": int(train[C.USER].nunique()),
        "movies": int(train[C.ITEM].nunique()),
        "k": args.k,
        "eval_users": len(users),
    }

    pop, figures["pop_fit_s"] = timed(lambda: PopularityGenerator().fit(train, now=cutoff, cutoff=cutoff))
    pop_recs, t = timed(lambda: pop.recommend(users, args.k, exclude=seen))
    figures["pop_recommend_s_per_1000_users"] = t * per_1000

    config = ALSConfig(factors=args.factors, iterations=15)
    als, figures["als_fit_s"] = timed(lambda: ALSGenerator(config).fit(train, cutoff=cutoff))
    als_recs, t = timed(lambda: als.recommend(users, args.k, exclude=seen))
    figures["als_recommend_s_per_1000_users"] = t * per_1000
    one = []
    for u in users[:200]:
        _, t = timed(lambda u=u: als.recommend([u], args.k, exclude={int(u): seen.get(int(u), set())}))
        one.append(t * 1000)
    figures["als_one_user_ms_p50"] = statistics.median(one)
    figures["als_one_user_ms_p95"] = float(np.percentile(one, 95))
    with tempfile.TemporaryDirectory() as tmp:
        _, figures["als_save_s"] = timed(lambda: als.save(tmp))
        figures["als_saved_mb"] = sum(f.stat().st_size for f in Path(tmp).iterdir()) / 1e6
        _, figures["als_load_s"] = timed(lambda: ALSGenerator.load(tmp))

    item, figures["item_item_fit_s"] = timed(lambda: ItemItemGenerator().fit(train, cutoff=cutoff))
    item_recs, t = timed(lambda: item.recommend(users, args.k, exclude=seen))
    figures["item_item_recommend_s_per_1000_users"] = t * per_1000

    merged, t = timed(lambda: merge_candidates([als_recs, item_recs, pop_recs], 2 * args.k, exclude=seen))
    figures["merge_s_per_1000_users"] = t * per_1000
    for name, recs in (("pop", pop_recs), ("als", als_recs), ("item_item", item_recs), ("merged", merged)):
        figures[f"recall_{name}"] = recall_at_k(recs, test_eval)
    figures["merged_candidates_per_user"] = float(merged.groupby(C.USER).size().mean())

    top20 = merged[merged[C.RANK] <= 20]
    metrics, figures["metrics_s"] = timed(lambda: ranking_metrics(top20, test_eval, k=20))
    figures["metrics_rows"] = len(top20)
    figures["merged_top20"] = metrics
    figures["merged_top20_coverage"] = catalog_coverage(top20, args.movies)

    for key, value in figures.items():
        print(f"{key:40s} {value:.4g}" if isinstance(value, float) else f"{key:40s} {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    tmp_out.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
