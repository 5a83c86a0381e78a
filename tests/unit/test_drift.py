"""Drift scores, the result file and schema diffs on synthetic profiles and a synthetic offline store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring.drift import compare, run_drift
from monitoring.layout import MonitorLayout
from monitoring.profiles import column_rows, profile_frames
from monitoring.schema import diff_fields, expected_schema, json_types, observed, stream_changes
from monitoring.scores import hellinger, score_column
from monitoring.settings import MonitorSettings

os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "1")
GENRES = ["Drama", "Comedy", "Action", "Horror", "Romance", "Thriller"]
T0 = pd.Timestamp("2026-03-02T00:00:00", tz="UTC")


def _genres(rng: np.random.Generator, n: int, horror: float = 1.0) -> pd.DataFrame:
    w = np.ones(len(GENRES))
    w[GENRES.index("Horror")] *= horror
    return pd.DataFrame({"genre": rng.choice(GENRES, n, p=w / w.sum())})


def test_hellinger_of_counts() -> None:
    assert hellinger({"a": 3, "b": 1}, {"a": 30, "b": 10}) == pytest.approx(0.0)
    assert hellinger({"a": 1}, {"b": 1}) == pytest.approx(1.0)
    assert np.isnan(hellinger({}, {"a": 1}))


def test_identical_categories_score_near_zero_and_a_surge_is_over_the_threshold() -> None:
    rng = np.random.default_rng(1)
    ref = profile_frames([_genres(rng, 5000)])
    same = profile_frames([_genres(rng, 3000)])
    surged = profile_frames([_genres(rng, 3000, horror=6.0)])
    clean = score_column("categorical", same, ref, "genre")
    drift = score_column("categorical", surged, ref, "genre")
    assert clean is not None and drift is not None
    assert clean.score < 0.05 and drift.score > 0.2
    assert drift.p_value is not None and drift.p_value < 1e-6  # whylogs' chi-square beside the distance


def test_numeric_shift_is_scored_and_noise_is_not() -> None:
    rng = np.random.default_rng(2)
    ref = profile_frames([pd.DataFrame({"x": rng.normal(0, 1, 5000)})])
    same = profile_frames([pd.DataFrame({"x": rng.normal(0, 1, 3000)})])
    moved = profile_frames([pd.DataFrame({"x": rng.normal(1.5, 1, 3000)})])
    clean, drift = score_column("numeric", same, ref, "x"), score_column("numeric", moved, ref, "x")
    assert clean is not None and drift is not None
    assert clean.score < 0.1 < 0.2 < drift.score
    assert drift.p_value is not None and drift.p_value < 1e-6  # whylogs' KS


def test_nan_and_empty_columns_are_skipped_with_a_reason() -> None:
    rng = np.random.default_rng(3)
    ref = profile_frames([pd.DataFrame({"x": rng.normal(size=500), "y": np.nan, "genre": "Drama"})])
    cur = profile_frames([pd.DataFrame({"x": np.r_[rng.normal(size=50), [np.nan] * 450], "y": np.nan})])
    assert column_rows(cur, "x") == 50 and column_rows(cur, "y") == 0 and column_rows(cur, "genre") == 0
    assert score_column("numeric", cur, ref, "y") is None
    assert profile_frames([pd.DataFrame({"x": []})]) is None
    rows, skipped = compare(
        "events", cur, ref, {"x": "numeric", "y": "numeric", "genre": "categorical"}, 0.2, 20
    )
    assert [r.feature for r in rows] == ["x"] and rows[0].rows == 50
    assert {s.feature for s in skipped} == {"y", "genre"}
    assert all("reference values" in s.reason for s in skipped)


def _write(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)


def _store(var: Path, hours: int = 6, surge_from: int | None = None, seed: int = 5) -> None:
    """A tiny offline store as ingestion lands it: sessions, ratings, requests, DLQ, movie and user views."""
    rng = np.random.default_rng(seed)
    movies = pd.DataFrame({"movie_id": [f"m{i}+2000" for i in range(60)], "cost": rng.uniform(0.1, 3, 60),
                           "runtime": rng.integers(80, 140, 60), "genres": [[GENRES[i % 6]] for i in range(60)],
                           "event_timestamp": T0, "created": T0})  # fmt: skip
    users = pd.DataFrame({"user_id": np.arange(200), "age": rng.integers(15, 70, 200),
                          "gender": rng.choice(["M", "F"], 200), "occupation": rng.choice(["writer", "other"], 200),
                          "event_timestamp": T0, "created": T0})  # fmt: skip
    off = var / "offline"
    _write(movies, off / "features" / "movie_metadata" / "m.parquet")
    _write(users, off / "features" / "user_profile" / "u.parquet")
    n = 400 * hours
    start = T0 + pd.to_timedelta(np.sort(rng.uniform(0, hours * 3600, n)), unit="s")
    w = np.ones(60)
    pick = rng.choice(60, n, p=w / w.sum())
    if surge_from is not None:  # later sessions draw Horror movies six times as often
        hw = np.where(np.arange(60) % 6 == GENRES.index("Horror"), 6.0, 1.0)
        late = start >= T0 + pd.Timedelta(hours=surge_from)
        pick[late] = rng.choice(60, int(late.sum()), p=hw / hw.sum())
    sessions = pd.DataFrame({"user_id": rng.integers(0, 200, n), "movie_id": movies["movie_id"].to_numpy()[pick],
                             "minutes_watched": rng.integers(1, 120, n), "start_ts": start,
                             "end_ts": start + pd.Timedelta(minutes=30)})  # fmt: skip
    _write(sessions, off / "sessions" / "date=2026-03-02" / "s.parquet")
    _write(pd.DataFrame({"ts": start, "user_id": sessions["user_id"], "movie_id": sessions["movie_id"],
                         "rating": rng.integers(1, 6, n).astype("int8")}), off / "raw" / "rate" / "date=2026-03-02" / "r.parquet")  # fmt: skip
    _write(pd.DataFrame({"ts": start, "user_id": sessions["user_id"], "server": "s", "status": np.int16(200),
                         "response_ms": rng.integers(10, 80, n).astype("int32")}), off / "raw" / "recommendation" / "date=2026-03-02" / "q.parquet")  # fmt: skip
    late_line = (
        f"{(T0 + pd.Timedelta(hours=hours - 1)).strftime('%Y-%m-%dT%H:%M:%S')},5,GET /search/x".encode()
    )
    _write(pd.DataFrame({"ts": [T0 + pd.Timedelta(days=3)], "reason": ["unknown_request"],
                         "detail": ["unknown request: 'GET /search/x'"], "raw": [late_line]}),
           off / "raw" / "dlq" / "date=2026-03-05" / "d.parquet")  # fmt: skip


def test_run_drift_writes_the_result_the_exporter_reads(tmp_path: Path) -> None:
    from monitoring.exporter import ResultCollector

    clean, surged = tmp_path / "clean", tmp_path / "surged"
    _store(clean)
    _store(surged, surge_from=3)
    results = {}
    for var in (clean, surged):
        settings = MonitorSettings(var_dir=var, drift_min_rows=100, RECSYS_SIM_API_URL="http://127.0.0.1:9")  # type: ignore[call-arg]
        results[var] = run_drift(settings, hours=3)
    assert not results[clean].drifted
    # Horror's ten movies have their own costs, so the cost of what is played moves with the genre.
    assert "genre" in {r.feature for r in results[surged].drifted}
    doc = json.loads((MonitorLayout(surged).drift / "latest.json").read_text())
    assert set(doc) >= {"computed_at", "reference", "window", "threshold", "rows", "schema"}
    assert doc["reference"]["model_version"] is None and doc["reference"]["rows"] > 0
    assert pd.Timestamp(doc["window"]["start"]) == T0 + pd.Timedelta(hours=3)
    row = next(r for r in doc["rows"] if r["feature"] == "genre")
    assert row | {"score": 0, "p_value": 0} == {"profile": "events", "feature": "genre", "kind": "categorical",
                                               "metric": "hellinger", "score": 0, "p_value": 0, "drifted": True,
                                               "rows": row["rows"], "reference_rows": row["reference_rows"]}  # fmt: skip
    assert {"source": "stream", "field": "dlq:unknown_request:GET /search", "change": "new"}.items() <= doc["schema"][0].items()  # fmt: skip
    assert any(s["feature"] == "metadata" for s in doc["skipped"])  # the API is unreachable: said, not hidden
    assert len(list(MonitorLayout(surged).drift.glob("*.json"))) == 2
    assert len(list((MonitorLayout(surged).profiles / "events").glob("*.bin"))) == 6  # one per hour
    families = {f.name: f for f in ResultCollector(MonitorLayout(surged)).collect()}
    detected = {s.labels["feature"]: s.value for s in families["recsys_drift_detected"].samples}
    assert detected["genre"] == 1.0 and detected["rating"] == 0.0


def test_schema_diff_of_metadata_records() -> None:
    good = {"id": "m+1999", "tmdb_id": 1, "imdb_id": "tt1", "title": "M", "genres": [{"id": 1, "name": "Drama"}],
            "overview": "o", "popularity": 1.5, "vote_average": 6, "vote_count": 3, "release_date": "1999-01-01",
            "runtime": 90, "original_language": "en", "cost": 0.5, "adult": False}  # fmt: skip
    expected = expected_schema("movie")
    assert expected["cost"] == {"number", "integer"} and expected["runtime"] == {"integer", "null"}
    assert json_types(list[dict[str, int] | str]) == {"array"}
    seen, n = observed([good] * 10)
    assert diff_fields("metadata", expected, seen, n, ignore=["id"]) == []
    # One record of ten losing a field is a fault, not a schema change.
    seen, n = observed([good] * 9 + [{k: v for k, v in good.items() if k != "runtime"}])
    assert diff_fields("metadata", expected, seen, n, ignore=["id"]) == []
    renamed = {**{k: v for k, v in good.items() if k != "vote_average"}, "rating_average": 6.1, "cost": "0.5"}
    seen, n = observed([renamed] * 10)
    got = {
        (c.field, c.change)
        for c in diff_fields("metadata", expected, seen, n, prefix="movie.", ignore=["id"])
    }
    assert got == {
        ("movie.vote_average", "missing"),
        ("movie.rating_average", "new"),
        ("movie.cost", "retyped"),
    }


def test_stream_kind_gone_missing(tmp_path: Path) -> None:
    _store(tmp_path)
    off = tmp_path / "offline"
    window = (T0 + pd.Timedelta(hours=3), T0 + pd.Timedelta(hours=6))
    assert stream_changes(off, window, (T0, window[0]))[0].field == "dlq:unknown_request:GET /search"
    (off / "raw" / "rate" / "date=2026-03-02" / "r.parquet").unlink()
    _write(pd.DataFrame({"ts": [T0], "user_id": [1], "movie_id": ["m"], "rating": [np.int8(3)]}),
           off / "raw" / "rate" / "date=2026-03-02" / "r.parquet")  # fmt: skip
    changes = stream_changes(off, window, (T0 - pd.Timedelta(hours=3), window[0]))
    assert [
        (c.field, c.change) for c in changes if c.field.startswith("kind:")
    ] == []  # 1 reference line: no promise
    _write(pd.DataFrame({"ts": T0 + pd.to_timedelta(np.arange(100), unit="min"), "user_id": 1, "movie_id": "m",
                         "rating": np.int8(3)}), off / "raw" / "rate" / "date=2026-03-02" / "r.parquet")  # fmt: skip
    changes = stream_changes(off, window, (T0, window[0]))
    assert ("kind:rate", "missing") in [(c.field, c.change) for c in changes]


def test_served_features_and_scores_against_the_champions_sample(tmp_path: Path) -> None:
    """Feature log and reference sample in the formats of core.layout; a shifted score drifts, features do not."""
    from core.layout import FEATURE_LOG_DIR, REFERENCE_SAMPLE
    from monitoring.reference import Champion

    rng = np.random.default_rng(7)
    folder = tmp_path / "model"
    sample = pd.DataFrame({"f_pop": rng.gamma(2, 1, 3000), "f_age": rng.uniform(0, 30, 3000),
                           "score": rng.normal(0, 1, 3000), "label": rng.integers(0, 4, 3000)})  # fmt: skip
    _write(sample, folder / REFERENCE_SAMPLE)
    n = 2000
    log = pd.DataFrame({"ts": T0 + pd.to_timedelta(rng.uniform(0, 7200, n), unit="s"),
                        "request_id": [f"r{i}" for i in range(n)], "user_id": rng.integers(0, 99, n),
                        "model_version": np.where(np.arange(n) < 1800, 3, 2), "arm": "a", "movie_id": "m",
                        "score": rng.normal(1.5, 1, n), "f_pop": rng.gamma(2, 1, n), "f_age": rng.uniform(0, 30, n)})  # fmt: skip
    _write(log, tmp_path / FEATURE_LOG_DIR / "date=2026-03-02" / "1-0.parquet")
    settings = MonitorSettings(var_dir=tmp_path, drift_min_rows=500, RECSYS_SIM_API_URL="http://127.0.0.1:9")  # type: ignore[call-arg]
    result = run_drift(settings, hours=3, champion=Champion(version=3, folder=folder))
    got = {(r.profile, r.feature): r for r in result.rows}
    assert set(got) == {("features", "f_pop"), ("features", "f_age"), ("scores", "score")}
    assert got[("scores", "score")].drifted and got[("scores", "score")].rows == 1800  # v3's rows only
    assert not got[("features", "f_pop")].drifted and not got[("features", "f_age")].drifted
    assert (MonitorLayout(tmp_path).profiles / "reference" / "scores-v3.bin").is_file()
    assert any(s.profile == "events" for s in result.skipped)  # no offline store: said, not hidden
    bare = run_drift(settings, hours=3, champion=Champion(version=4, folder=tmp_path / "none", note="x"))
    assert not bare.rows and {s.profile for s in bare.skipped} >= {"features", "scores"}


def test_metadata_schema_change_of_the_simulator_api(tmp_path: Path) -> None:
    """The simulator's own API with a scheduled schema change: the renamed field is missing and new."""
    from datetime import UTC, datetime

    from fastapi.testclient import TestClient

    from monitoring.schema import metadata_changes
    from simulator.api import create_app
    from simulator.drift import SchemaChange as Renaming
    from simulator.settings import SimSettings
    from simulator.store import save_world
    from simulator.world import generate_world

    world = generate_world(30, 20, seed=4)
    save_world(world, tmp_path / "sim")
    movies = [str(m) for m in world.catalog.slug[:10]]
    past = datetime(2020, 1, 1, tzinfo=UTC)
    for drifts, expected in (([], set()), ([Renaming(start=past, rename={"vote_average": "rating_average"})],
                                           {("movie.vote_average", "missing"), ("movie.rating_average", "new")})):  # fmt: skip
        with TestClient(create_app(SimSettings(var_dir=tmp_path, drifts=drifts))) as client:
            changes, note = metadata_changes("", movies, [1, 2, 3], client=client)
        assert note is None and {(c.field, c.change) for c in changes} == expected
