"""A log of one's own, dated years in the past, end to end: replay -> ingest until drained -> train -> serve -> evaluate.

No simulator, no metadata API, no license costs, no oracle: what a new user brings. Checks the
README's path works as written, that training plans its cut-offs inside the log's own span, that
the report says what was absent, that promotion followed the verdict, and that the lists
`recsys evaluate --lists` computes offline are exactly the ones `/recommend` serves under the
stream clock, for the trained version and for a baseline policy version.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
from fastapi.testclient import TestClient

from events import format_line
from events.kafka import ensure_topics
from events.types import RateEvent, WatchEvent
from ingestion.replay import replay_file
from ingestion.settings import IngestSettings
from ingestion.worker import IngestWorker
from ranking.promotion import write_baseline
from ranking.provenance import Provenance
from ranking.ranker import Ranker
from ranking.registry import ModelRegistry, smoke_test
from ranking.settings import RankSettings
from ranking.transforms import FEATURE_SERVICE
from serving.app import create_app
from serving.settings import ServingSettings
from tests.integration.conftest import StackInfo
from tests.integration.test_feast_repo import db_url

pytestmark = pytest.mark.integration
START = pd.Timestamp("2019-01-07", tz="UTC")
DAYS = 120
MIN_NS = 60 * 10**9


def write_log(path: Path, users: int = 150, movies: int = 90, seed: int = 11) -> None:
    """Course-format lines: taste groups, movies released over the span with rising-and-fading popularity."""
    rng = np.random.default_rng(seed)
    slugs = [f"film+number+{i}+{1990 + i % 30}" for i in range(movies)]
    group = rng.integers(0, 4, movies)
    release = rng.uniform(-60, DAYS, movies)  # days from START; a third arrive during the log
    lines: list[tuple[int, str]] = []
    for user in range(1, users + 1):
        taste = rng.integers(0, 4)
        for _ in range(int(rng.integers(6, 20))):
            day = rng.uniform(0, DAYS)
            age = day - release
            weight = np.where(age >= 0, 1 + 5 * np.exp(-np.maximum(age, 0) / 14), 0) * np.where(
                group == taste, 4, 1
            )
            movie = int(rng.choice(movies, p=weight / weight.sum()))
            t0 = int((START + pd.Timedelta(days=day)).value)
            minutes = int(rng.integers(3, 25))
            for m in range(minutes):
                lines.append(
                    (t0 + m * MIN_NS, format_line(WatchEvent(t0 + m * MIN_NS, user, slugs[movie], m)))
                )
            if rng.random() < 0.3:
                stars = int(rng.integers(3, 6) if group[movie] == taste else rng.integers(1, 4))
                end = t0 + minutes * MIN_NS
                lines.append((end, format_line(RateEvent(end, user, slugs[movie], stars))))
    lines.sort()
    path.write_text("\n".join(line for _, line in lines) + "\n")


def _recommend(client: TestClient, user: int) -> list[str]:
    """The model's answer (a known user: path `model`, never a degraded one passed off as the model's list)."""
    got = client.get(f"/recommend/{user}")
    assert got.status_code == 200
    assert got.headers["X-Recommendation-Path"] == "model", got.headers
    return got.text.split(",")


def test_own_log_years_in_the_past_trains_promotes_by_verdict_and_serves_what_evaluate_says(
    stack: StackInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recsys.training import run_served_lists, run_training, stream_clock

    var, topic = tmp_path / "var", f"own-log-{uuid.uuid4().hex[:8]}"
    url = db_url(stack.redis_url, 7)
    redis.Redis.from_url(url).flushdb()
    monkeypatch.setenv("RECSYS_RANK_TUNE_SECONDS", "5")
    log = tmp_path / "ratings.log"
    write_log(log)

    # 1. replay -> ingest until drained (no metadata API: enrichment off, as for a bare log)
    ensure_topics({topic: 2})
    assert replay_file(log, topic).failed == 0
    settings = IngestSettings(RECSYS_VAR_DIR=var, RECSYS_REDIS_URL=url, topic=topic, group_id=f"g-{topic}",
                              metrics_port=0, enrich=False)  # type: ignore[call-arg]  # fmt: skip
    from ingestion.factory import build_worker

    worker: IngestWorker = build_worker(settings, enrich=False)
    worker.run(until_drained=True, max_seconds=600)
    clock = stream_clock(url)
    assert clock.year == 2019 and clock > START + pd.Timedelta(days=DAYS - 2)

    # A lost online store is rebuilt around the log's own time (not today's TTL window), clock included.
    from ingestion.feast_bridge import open_feature_store
    from ingestion.rebuild import rebuild

    client = redis.Redis.from_url(url)
    keys = int(client.dbsize())
    client.flushdb()
    rebuild(open_feature_store(var, url), client)
    assert stream_clock(url) == clock and int(client.dbsize()) >= keys - 1  # -1: the marker's lock

    # 2. train: cut-offs inside the log's span; the report names what the log lacks; the verdict decides
    reports = tmp_path / "reports"
    result, decision = run_training(var, url, reports, progress=lambda *_: None)
    assert decision is not None
    import json

    doc = json.loads((reports / "model_comparison.json").read_text())
    cutoffs = [pd.Timestamp(s["cutoff"]) for s in doc["splits"]]
    assert len(cutoffs) >= 3 and all(START < c < clock for c in cutoffs)
    md = (reports / "model_comparison.md").read_text()
    assert "nan" not in md.lower().replace("nanosecond", "")
    for absent in ("movie metadata", "license costs", "oracle"):
        assert absent in result.comparison.absent, absent
    names = {s.model for s in result.scores}
    assert {"popularity", "recency_popularity", "item_item", "als"} <= names
    registry = ModelRegistry.open(RankSettings(RECSYS_VAR_DIR=var))  # type: ignore[call-arg]
    champion = registry.resolve("champion")
    assert champion is not None
    verdict = result.comparison.verdict
    if verdict.wins:
        assert champion.version == decision.ranker_version and champion.kind == "ranker"
    else:
        assert champion.kind == "baseline" and champion.policy == verdict.baseline
    assert champion.promotion_reason and "95% CI" in champion.promotion_reason

    # 3. serve under the stream clock; the offline lists are the served lists
    recent_users = _recently_active(var, clock)
    serving = ServingSettings(RECSYS_VAR_DIR=var, RECSYS_REDIS_URL=url, clock="stream",
                              experiments_file=tmp_path / "none.yaml", registry_poll_s=0.3,
                              feature_timeout_ms=2000.0)  # type: ignore[call-arg]  # fmt: skip
    with TestClient(create_app(serving)) as client:
        offline = run_served_lists(var, url, recent_users, len(recent_users))
        assert len(recent_users) >= 10 and all(len(v) == 20 for v in offline.values())
        assert len({tuple(v) for v in offline.values()}) > len(recent_users) // 2  # personal lists
        for user in recent_users:
            assert _recommend(client, int(user)) == offline[int(user)], f"user {user}"
        (tmp_path / "decision.txt").write_text(decision.summary() + "\n" + md)

        # 4. a baseline policy version is served by the same API, as `evaluate` says
        ranker_dir = registry.download(decision.ranker_version)
        base = write_baseline(ranker_dir, tmp_path / "baseline", "item_item", Ranker.load(ranker_dir))
        from recsys.training import REPO_DIR, snapshot

        prov = Provenance.collect(
            REPO_DIR, FEATURE_SERVICE, var / "feast" / "registry.db", snapshot(var / "offline")
        )
        info = registry.register(base, prov, {"ndcg20": 0.0, "cost20": 0.0, "p99_ms": 1.0})
        assert registry.promote(
            info.version, smoke_test, force=True, reason="test: serve a baseline"
        ).accepted
        deadline = time.monotonic() + 30
        while client.get("/readyz").json()["models"].get("champion") != info.version:
            assert time.monotonic() < deadline, "the baseline version was not swapped in"
            time.sleep(0.3)
        offline = run_served_lists(var, url, recent_users, len(recent_users))
        for user in recent_users:
            assert _recommend(client, int(user)) == offline[int(user)], f"baseline, user {user}"


def _recently_active(var: Path, clock: pd.Timestamp, n: int = 25) -> np.ndarray:
    """Users with a session in the last 20 days of the log (inside every view's TTL, as online rows are)."""
    from ranking.interactions import load_sessions

    sessions = load_sessions(var / "offline")
    recent = sessions[sessions["end_ts"] > clock - pd.Timedelta(days=20)]
    return np.sort(pd.unique(recent["user_id"].to_numpy(dtype=np.int64)))[:n]
