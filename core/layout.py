"""Paths under the var dir that one package writes and another reads (the only shared layout outside Feast's)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

FEATURE_LOG_DIR: Final = Path("monitoring") / "feature_log"
"""Under the var dir: serving's sampled feature log (`date=YYYY-MM-DD/<pid>-<seq>.parquet`), read by monitoring.

Columns: `ts` (timestamp[us, UTC], when the answer was logged), `as_of` (timestamp[us, UTC], the feature time
serving computed the row at: `Runtime.now()`, the stream clock or the wall clock; files written before it
existed lack it, read it as `ts`), `request_id`, `user_id` (int64), `model_version` (int64), `arm`,
`movie_id`, `score` (float64), then one float64 column per model feature (`ranking.transforms.FEATURE_COLUMNS`).
"""
REFERENCE_SAMPLE: Final = Path("reference") / "train_sample.parquet"
"""Inside a model's artifact folder: a uniform sample of its training rows (the feature columns, `score`, `label`)."""
