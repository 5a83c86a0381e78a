"""Cold requests over HTTP: new users answered from their stored self-description vectors at a fixed rate.

On a world of the serving benchmark's kind (`benchmarks/serving.py --setup-only` makes or checks it,
cached: by default 100,000 users, 20,000 movies, 1,000,000 sessions, the champion, every feature
view in Redis; the user count only sizes Redis, as a cold request ranks nothing, while the
20,000-movie catalogue is what the policy scores per request):

1. `--cold-users` of the world's users who never watched anything (true cold users: in the online
   store only with a profile) get their self-descriptions written as ingestion writes them at account
   creation: the world's likes/dislikes answers read by `textmodel.describe.parse_description`
   (titles matched against the catalogue's metadata titles, likes encoded by the sentence encoder),
   as `user_description` rows through Feast into Redis.
2. `recsys serve --workers 2` with an experiment file that gives everyone `cold_start:
   self_description`. Each worker builds its policy after start-up (the 20,000 movie vectors are
   embedded once and cached under the var dir: the first run pays ~2 x 140 s); the benchmark waits
   until answers come from the policy, then sends `--warmup` s of traffic, then `GET /recommend/<id>`
   for those users, open loop at `--rate` for `--duration` s (latency from the scheduled send).

`cold_request_p50_ms` / `cold_request_p99_ms`: latency of the answers; an answer counts only as a
200 with 1-20 ids whose `X-Cold-Start` says the stored vector was used (the outcome counts are kept).
Target: p99 <= 20 ms at 200 requests/s. Called by `benchmarks/cold_start.py`; alone:

    flock /tmp/recsys-bench.lock .venv/bin/python benchmarks/cold_serving.py [--users N --movies M --sessions S]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

_HERE = Path(__file__).resolve().parent
REPO = _HERE.parent
sys.path.insert(0, str(REPO))
TARGET_P99_MS = 20.0
EXPERIMENT = """experiments:
  - name: cold-bench
    salt: cold-bench
    enabled: true
    arms:
      - {name: described, weight: 1, model: champion, cold_start: self_description}
"""
STORED = ("self_description:stored_vector", "self_description:degraded_encoder")
"""X-Cold-Start values of an answer made from a stored description."""


def _sibling(name: str) -> Any:
    """benchmarks/<name>.py as a module (the folder is not a package)."""
    module_name = f"_bench_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, _HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def describe_cold_users(var: Path, redis_url: str, known: np.ndarray, n: int, seed: int) -> dict[str, Any]:
    """Write `n` never-active world users' descriptions as ingestion would; their ids and what it took."""
    import pandas as pd
    import pyarrow.parquet as pq

    from ingestion.descriptions import DESCRIPTION_VIEW, _Pending, description_table
    from ingestion.feast_bridge import open_feature_store
    from textmodel.describe import parse_description
    from textmodel.settings import TextSettings
    from textmodel.tfidf import load_encoder
    from textmodel.titles import TitleIndex

    users = pq.read_table(var / "sim" / "users.parquet", columns=["user_id", "likes", "dislikes"]).to_pandas()
    cold = users[~users["user_id"].isin(known) & users["likes"].notna()]
    picked = cold.sample(min(n, len(cold)), random_state=seed)
    movies = pq.read_table(var / "sim" / "movies.parquet", columns=["id", "title"]).to_pandas()
    t0 = time.perf_counter()
    titles = TitleIndex.build(movies["id"].tolist(), movies["title"].tolist())
    encoder = load_encoder(TextSettings(var_dir=var))
    now_ns = time.time_ns()
    done = [
        (int(u), _Pending(now_ns), parse_description(likes, dislikes, encoder, titles))
        for u, likes, dislikes in picked[["user_id", "likes", "dislikes"]].itertuples(index=False)
    ]
    frame = description_table(done, now_ns).to_pandas()
    store = open_feature_store(var, redis_url)
    for start in range(0, len(frame), 5_000):
        store.write_to_online_store(DESCRIPTION_VIEW, frame.iloc[start : start + 5_000])
    kinds = pd.Series([p.kind for _, _, p in done]).value_counts().to_dict()
    return {"ids": [u for u, _, _ in done], "seconds": time.perf_counter() - t0, "kinds": kinds,
            "encoder": encoder.model_id}  # fmt: skip


def _cold_start_of(reply: Any) -> tuple[str | None, str]:
    """The API contract as serving.inspect_recommendation checks it; the label is the X-Cold-Start outcome."""
    error, _path = _sibling("serving").inspect_recommendation(reply)
    return error, reply.headers.get(b"x-cold-start", b"none").decode()


def _wait_for_policy(url: str, ids: list[int], timeout_s: float) -> float:
    """Seconds until 20 answers in a row (both workers) came from the self-description policy."""
    import httpx

    t0, streak = time.perf_counter(), 0
    with httpx.Client(timeout=5) as client:
        while streak < 20:
            if time.perf_counter() - t0 > timeout_s:
                raise SystemExit(f"the self-description policy was not built within {timeout_s:.0f} s")
            answer = client.get(f"{url}/recommend/{ids[streak % len(ids)]}")
            # Any answer of the policy (an empty description answers `no_vector`): built in that worker.
            if answer.headers.get("x-cold-start", "").startswith("self_description:"):
                streak += 1
            else:
                streak = 0
                time.sleep(1.0)
    return time.perf_counter() - t0


WORLD = {"users": 100_000, "movies": 20_000, "sessions": 1_000_000, "train_users": 300}
"""The default world (`benchmarks/serving.py` options)."""


def work_dir(users: int, movies: int, sessions: int, days: float = 14.0, seed: int = 42) -> Path:
    """The serving benchmark's cache folder for these parameters (its own naming)."""
    return REPO / "var" / "bench-serving" / f"u{users}-m{movies}-s{sessions}-d{days:g}-seed{seed}"


def measure(world: dict[str, int], cold_users: int, rate: float, duration: float, warmup: float, workers: int,
            seed: int = 5) -> dict[str, Any]:  # fmt: skip
    """Set up (or reuse) the world, describe the cold users, serve, drive; the figures."""
    serving = _sibling("serving")
    load = serving.load
    work = work_dir(world["users"], world["movies"], world["sessions"])
    subprocess.run([sys.executable, str(_HERE / "serving.py"), "--setup-only", "--users", str(world["users"]),
                    "--movies", str(world["movies"]), "--sessions", str(world["sessions"]), "--train-users",
                    str(world["train_users"])], cwd=REPO, check=True)  # fmt: skip
    var = work / "var"
    known = np.load(work / serving.KNOWN_USERS)
    described = describe_cold_users(var, serving.REDIS_URL, known, cold_users, seed)
    ids: list[int] = described["ids"]
    serving._log(f"{len(ids):,} cold users described in {described['seconds']:.1f} s ({described['encoder']}): "
                 f"{described['kinds']}")  # fmt: skip
    experiments = work / "cold_experiments.yaml"
    experiments.write_text(EXPERIMENT)
    port = serving._free_port()
    host = f"127.0.0.1:{port}"
    env = {**os.environ, "RECSYS_VAR_DIR": str(var), "RECSYS_REDIS_URL": serving.REDIS_URL,
           "RECSYS_SERVING_EXPERIMENTS_FILE": str(experiments)}  # fmt: skip
    rng = np.random.default_rng(seed)
    n_warm, n = round(rate * warmup), round(rate * duration)
    draw = np.asarray(ids)[rng.integers(0, len(ids), n_warm + n)]
    requests = [serving._recommend_request(int(u), host) for u in draw]
    service = serving.Proc("recsys serve", [str(serving.VENV_BIN / "recsys"), "serve", "--host", "127.0.0.1",
                                            "--port", str(port), "--workers", str(workers)],
                           env, REPO, work / "logs" / f"serve-cold-{time.strftime('%Y%m%d-%H%M%S')}.log")  # fmt: skip
    try:
        ready_s, _ = serving._wait_http(service, f"http://{host}/readyz", 900)
        policy_s = _wait_for_policy(f"http://{host}", ids, 1800)
        serving._log(f"ready in {ready_s:.0f} s, policy answering {policy_s:.0f} s later; "
                     f"{n:,} cold requests at {rate:g}/s")  # fmt: skip

        async def drive() -> Any:
            pool = load.Pool("127.0.0.1", port)
            try:
                await load.open_loop(pool, requests[:n_warm], rate, 2.0, _cold_start_of)
                return await load.open_loop(pool, requests[n_warm:], rate, 2.0, _cold_start_of)
            finally:
                pool.close()

        shots = asyncio.run(drive())
    finally:
        service.stop()
    lat = np.asarray(shots.latency_ms)
    ok = np.array([e is None for e in shots.errors])
    outcomes: dict[str, int] = {}
    for label, good in zip(shots.labels, ok, strict=True):
        if good:
            outcomes[label] = outcomes.get(label, 0) + 1
    stored = sum(outcomes.get(s, 0) for s in STORED)
    p50, p99 = (float(np.percentile(lat, q)) for q in (50, 99))
    return {
        "cold_request_p50_ms": round(p50, 2),
        "cold_request_p99_ms": round(p99, 2),
        "cold_request_max_ms": round(float(lat.max()), 1),
        "cold_requests": n,
        "cold_request_errors": int((~ok).sum()),
        "cold_request_rate_rps": rate,
        "cold_request_outcomes": outcomes,
        "cold_request_stored_share": round(stored / max(1, int(ok.sum())), 4),
        "cold_request_policy_share": round(
            sum(v for k, v in outcomes.items() if k.startswith("self_description:")) / max(1, int(ok.sum())),
            4,
        ),
        "cold_users_described": len(ids),
        "cold_description_kinds": described["kinds"],
        "cold_latency_from": "scheduled send time (open loop, benchmarks/http_load.py)",
        "cold_policy_ready_s": round(policy_s, 1),
        "cold_world": world
        | {"redis_keys": json.loads((work / serving.SETUP_FILE).read_text())["redis"].get("keys")},
    }


def main() -> None:
    serving = _sibling("serving")
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    for key, value in WORLD.items():
        parser.add_argument(
            f"--{key.replace('_', '-')}", type=int, default=value, help=f"World: {key} (serving.py)."
        )
    parser.add_argument(
        "--cold-users", type=int, default=2_000, help="Never-active users given a description."
    )
    parser.add_argument("--rate", type=float, default=200.0, help="Requests per second (open loop).")
    parser.add_argument("--duration", type=float, default=30.0, help="Seconds of measured traffic.")
    parser.add_argument("--warmup", type=float, default=5.0, help="Seconds of traffic before, not counted.")
    parser.add_argument("--workers", type=int, default=2, help="Worker processes of the service.")
    args = parser.parse_args()
    serving.quiet_third_party()
    world = {k: getattr(args, k) for k in WORLD}
    result = measure(world, args.cold_users, args.rate, args.duration, args.warmup, args.workers)
    print(f"cold requests: {result['cold_requests']:,} at {args.rate:g}/s, {result['cold_request_errors']} errors, "
          f"p50 {result['cold_request_p50_ms']:.2f} ms, p99 {result['cold_request_p99_ms']:.2f} ms "
          f"(target <= {TARGET_P99_MS:g}); stored-vector answers {result['cold_request_stored_share']:.1%}")  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
