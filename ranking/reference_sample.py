"""The training reference sample: a uniform, seeded sample of a model's training rows kept in its artifact folder.

Monitoring's train/serve skew check (`recsys monitor skew`) compares the rows serving logs
(`core.layout.FEATURE_LOG_DIR`) with these, feature by feature; the sample travels with the
registered version (`ranking.registry` uploads `reference/`), so the check always compares with
the rows the served model actually learned from. 20,000 rows of 35 float64 features are ~6 MB
in memory and ~2-4 MB of Parquet; the PSI of ten bins needs far fewer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.layout import REFERENCE_SAMPLE
from ranking.transforms import FEATURE_COLUMNS

REFERENCE_ROWS: Final = 20_000
"""Most training rows kept in the reference sample."""
SCORE: Final = "score"
LABEL: Final = "label"


def sample_positions(n: int, k: int = REFERENCE_ROWS, seed: int = 7) -> npt.NDArray[np.int64]:
    """Sorted positions of a seeded uniform sample of k of n rows (all of them when n <= k)."""
    if n <= k:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.random.default_rng([seed, 12]).choice(n, k, replace=False)).astype(np.int64)


def write_reference_sample(
    model_dir: Path,
    x: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int64],
) -> Path:
    """Write already-sampled training rows (FEATURE_COLUMNS order), their scores and labels to `model_dir/REFERENCE_SAMPLE`."""
    frame = pd.DataFrame(np.asarray(x, dtype=np.float64), columns=list(FEATURE_COLUMNS))
    frame[SCORE] = np.asarray(scores, dtype=np.float64)
    frame[LABEL] = np.asarray(labels, dtype=np.int64)
    path = model_dir / REFERENCE_SAMPLE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path
