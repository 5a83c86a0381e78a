"""The sampled feature log: the draw, the bounded queue (drops counted), the file contract and the flush on close."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from prometheus_client import REGISTRY

from core.layout import FEATURE_LOG_DIR
from ranking.transforms import FEATURE_COLUMNS
from serving.feature_log import SCHEMA, FeatureLog, LoggedAnswer
from serving.recommender import ScoredRows

VOCAB = np.asarray([f"movie+{i}+2000" for i in range(50)], dtype=object)


def _answer(n: int, user: int = 1, ts: float | None = None) -> LoggedAnswer:
    rng = np.random.default_rng(user)
    items = np.sort(rng.choice(len(VOCAB), n, replace=False)).astype(np.int64)
    x = rng.normal(size=(n, len(FEATURE_COLUMNS))).astype(np.float32)
    x[:, 3] = np.nan  # a missing feature stays missing in the log
    scored = ScoredRows(x, rng.normal(size=n), items, VOCAB)
    return LoggedAnswer(time.time() if ts is None else ts, f"req{user}", user, 7, "control", scored)


def test_sampling_rate_is_a_uniform_draw() -> None:
    log = FeatureLog(Path("/nonexistent"), 0.25, 5, 10, seed=1)
    hits = sum(log.sample() for _ in range(20_000))
    assert 0.23 < hits / 20_000 < 0.27
    assert not any(FeatureLog(Path("/nonexistent"), 0.0, 5, 10).sample() for _ in range(100))
    assert all(FeatureLog(Path("/nonexistent"), 1.0, 5, 10).sample() for _ in range(100))


def test_full_queue_drops_and_counts_without_waiting() -> None:
    log = FeatureLog(Path("/nonexistent"), 1.0, 5, queue_size=3)  # never started: nothing drains
    before = REGISTRY.get_sample_value("recsys_feature_log_dropped_total") or 0.0
    t0 = time.perf_counter()
    accepted = [log.offer(_answer(10, user=u)) for u in range(5)]
    assert time.perf_counter() - t0 < 0.05
    assert accepted == [True, True, True, False, False]
    assert log.dropped == 2
    assert REGISTRY.get_sample_value("recsys_feature_log_dropped_total") == before + 2


def test_file_holds_the_layout_contract_and_a_uniform_sample_of_each_answer(tmp_path: Path) -> None:
    folder = tmp_path / FEATURE_LOG_DIR
    log = FeatureLog(folder, 1.0, rows_per_request=4, queue_size=10, seed=3)
    answers = [_answer(10, user=1), _answer(3, user=2)]  # the second has fewer rows than K: all logged
    for a in answers:
        log.offer(a)
    log.close()
    day = time.strftime("%Y-%m-%d", time.gmtime(answers[0].ts))
    files = sorted((folder / f"date={day}").glob("*.parquet"))
    assert [f.name for f in files] == [f"{os.getpid()}-0.parquet"]
    table = pq.read_table(files[0])
    assert table.schema.equals(SCHEMA)
    assert table.column_names[:8] == [
        "ts",
        "as_of",
        "request_id",
        "user_id",
        "model_version",
        "arm",
        "movie_id",
        "score",
    ]
    assert table.column_names[8:] == list(FEATURE_COLUMNS)
    frame = table.to_pandas()
    assert frame.groupby("user_id").size().to_dict() == {1: 4, 2: 3}
    for a in answers:
        rows = frame[frame.user_id == a.user_id]
        # Every logged row is one the ranker scored, with its own score and features.
        pos = {str(m): i for i, m in enumerate(VOCAB[a.scored.items])}
        for _, row in rows.iterrows():
            i = pos[row.movie_id]
            assert row.score == a.scored.scores[i]
            assert row[FEATURE_COLUMNS[0]] == np.float64(a.scored.x[i, 0])
        assert rows[FEATURE_COLUMNS[3]].isna().all()
    assert set(frame.model_version) == {7} and set(frame.arm) == {"control"}
    assert log.written == 7


def test_writer_thread_writes_on_its_own_and_close_flushes_the_rest(tmp_path: Path) -> None:
    log = FeatureLog(tmp_path, 1.0, rows_per_request=5, queue_size=100, flush_s=0.2, flush_rows=1_000)
    log.start()
    log.offer(_answer(8, user=1))
    deadline = time.monotonic() + 5
    while not log.files and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(log.files) == 1, "a file within flush_s of the first row"
    log.offer(_answer(8, user=2))
    log.close()
    assert len(log.files) == 2 and log.written == 10
    assert sum(pq.read_metadata(f).num_rows for f in log.files) == 10


def test_batch_across_midnight_goes_to_each_days_folder_and_files_never_overwrite(tmp_path: Path) -> None:
    midnight = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    (tmp_path / "date=2025-12-31").mkdir()
    (tmp_path / "date=2025-12-31" / f"{os.getpid()}-0.parquet").write_bytes(b"an earlier run's")
    log = FeatureLog(tmp_path, 1.0, 2, 10)
    log.offer(_answer(5, user=1, ts=midnight - 1))
    log.offer(_answer(5, user=2, ts=midnight + 1))
    log.close()
    assert pq.read_table(tmp_path / "date=2025-12-31" / f"{os.getpid()}-1.parquet").column(
        "user_id"
    ).to_pylist() == [1, 1]
    (new_year,) = (tmp_path / "date=2026-01-01").glob("*.parquet")
    assert pq.read_table(new_year).column("user_id").to_pylist() == [2, 2]
