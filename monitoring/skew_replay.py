"""Log and recompute: rebuild sampled served rows through training's point-in-time path and compare value by value.

Serving logs each row with `as_of`, the feature time `rank` used (`serving.feature_log`). For a
seeded sample of the champion's rows this asks Feast's offline store for the user views and
the movie views of the ranker's feature service at event_timestamp = `as_of`
(`get_historical_features`, as `ranking.dataset.join_features` does at a cut-off), builds the
recent-genre profile from the model's own candidate index and training's movie table, and
computes the matrix with the shared `ranking.transforms.model_matrix` at now = `as_of`. The
candidate-generator columns (`CANDIDATE_COLUMNS`) come from the log itself: they are the shipped
index's, not Feast's. Identical inputs give bit-identical float32 values; any difference is a
different input (an online row the offline store does not have at `as_of`, a TTL the offline
join applies and the online read does not) or a different computation (a bug in one reader).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from ranking import columns as C  # noqa: N812
from ranking.dataset import genre_rows, recent_lists, service_references
from ranking.transforms import (
    CANDIDATE_COLUMNS,
    FEATURE_COLUMNS,
    FEATURE_SERVICE,
    model_matrix,
    recent_genre_profile,
)

AS_OF: Final = "as_of"
"""Feature log column: the feature time serving used (older files lack it: their `ts` stands in)."""
RECOMPUTED: Final = tuple(c for c in FEATURE_COLUMNS if c not in CANDIDATE_COLUMNS)
"""Features the replay recomputes from Feast (the candidate columns are taken from the log)."""
REL_TOL: Final = 1e-6
"""Relative tolerance of an equal value: the matrix is float32 (one ulp = 1.2e-7 relative), and `as_of` is
logged to the microsecond, so a day count can land one float32 step away; a real difference is far larger."""
ABS_TOL: Final = 1e-9
"""Absolute tolerance, for values near zero (a microsecond is 1.2e-11 days)."""
SEED: Final = 20_261_206
"""Seed of the row sample: two runs over the same log replay the same rows."""
_ROW: Final = "__replay_row"


class ReplayUnavailableError(RuntimeError):
    """The replay cannot run (no Feast registry, no offline store, no candidate index); the reason says which."""


@dataclass(frozen=True)
class ValueMatch:
    """One feature's value-by-value comparison of logged (serving) against replayed (training path) rows."""

    mismatch_share: float
    mean_logged: float | None
    mean_replayed: float | None
    missing_offline: float
    """Share of rows with a value online and NaN in the replay (the offline join's TTL, or a row it lacks)."""
    written_after: float = 0.0
    """Share of the differing rows whose user or movie has an offline row true at `as_of` but written after the
    answer: data the online store could not have served then (ingestion lag), not a computation difference."""


def differ(
    logged: npt.ArrayLike, replayed: npt.ArrayLike, rel: float = REL_TOL, abs_: float = ABS_TOL
) -> npt.NDArray[np.bool_]:
    """Per row: whether the two values differ (both NaN: equal; NaN against a value: differ; else beyond tolerance)."""
    a, b = np.asarray(logged, dtype=np.float64), np.asarray(replayed, dtype=np.float64)
    out: npt.NDArray[np.bool_] = ~np.isclose(a, b, rtol=rel, atol=abs_, equal_nan=True)
    return out


def _mean(values: npt.NDArray[np.float64]) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else None


def compare_values(
    logged: pd.DataFrame,
    replayed: pd.DataFrame,
    columns: tuple[str, ...] = RECOMPUTED,
    late: npt.NDArray[np.bool_] | None = None,
) -> dict[str, ValueMatch]:
    """Per feature in both frames (same rows, same order): mismatch share, both means, NaN-offline share.

    `late`: per row, whether the replay read data written after the answer (`written_late`).
    """
    out = {}
    for name in columns:
        if name not in logged or name not in replayed:
            continue
        a, b = logged[name].to_numpy(np.float64), replayed[name].to_numpy(np.float64)
        n = max(len(a), 1)
        miss = float(np.sum(np.isfinite(a) & np.isnan(b))) / n
        bad = differ(a, b)
        after = float((bad & late).sum()) / max(int(bad.sum()), 1) if late is not None else 0.0
        out[name] = ValueMatch(float(bad.sum()) / n, _mean(a), _mean(b), miss, after)
    return out


def sample_rows(served: pd.DataFrame, n: int, seed: int = SEED) -> pd.DataFrame:
    """Up to n served rows, a seeded uniform sample, with `as_of` filled from `ts` where the log lacks it."""
    rows = served.sample(n, random_state=seed) if len(served) > n else served
    rows = rows.reset_index(drop=True)
    as_of = rows[AS_OF].fillna(rows["ts"]) if AS_OF in rows else rows["ts"]
    return rows.assign(**{AS_OF: pd.to_datetime(as_of, utc=True).astype("datetime64[us, UTC]")})


def join_as_of(store: Any, rows: pd.DataFrame, keys: tuple[str, ...]) -> pd.DataFrame:
    """`rows` plus the ranker's point-in-time features of the views keyed by `keys`, each row as of its `as_of`.

    `ranking.dataset.join_features` with one time per row instead of one cut-off: each distinct
    (key, as_of) is asked once; a row number carried through Feast puts the answers back in order.
    """
    refs = service_references(store, FEATURE_SERVICE).get(keys)
    if not refs:
        return rows
    on = [*keys, AS_OF]
    entity = rows[on].drop_duplicates().reset_index(drop=True)
    ask = entity[list(keys)].copy()
    ask[C.TIMESTAMP] = entity[AS_OF].astype("datetime64[ns, UTC]")
    ask[_ROW] = np.arange(len(entity))
    joined = store.get_historical_features(entity_df=ask, features=refs, full_feature_names=True).to_df()
    joined = joined.drop_duplicates(_ROW).set_index(_ROW).reindex(np.arange(len(entity)))
    pos = pd.MultiIndex.from_frame(entity).get_indexer(pd.MultiIndex.from_frame(rows[on]))
    features = (
        joined.drop(columns=[c for c in (*keys, C.TIMESTAMP) if c in joined]).iloc[pos].reset_index(drop=True)
    )
    return pd.concat([rows.reset_index(drop=True), features], axis=1)


def recompute(store: Any, rows: pd.DataFrame, index: Any, movie_genres: dict[str, Any]) -> pd.DataFrame:
    """The model's feature columns of logged rows (`user_id`, `movie_id`, `as_of`, candidate columns) via the training path.

    `index`: the model's `CandidateIndex` (its vocabulary and `positions`, as serving and training use them).
    """
    base = rows[[C.USER, C.ITEM, AS_OF, *CANDIDATE_COLUMNS]]
    joined = join_as_of(store, join_as_of(store, base, (C.USER,)), (C.ITEM,))
    # The recent-genre profile as training builds it: recent ids (Feast, as of the row's time) ->
    # positions in the model's index -> genres from training's movie table (`load_movies`).
    genres = genre_rows(index.items, movie_genres)
    profile = np.zeros((len(joined), genres.shape[1]), dtype=np.float32)
    for _, part in joined.groupby([C.USER, AS_OF], sort=False):
        recent = recent_lists(part.iloc[:1])
        profile[part.index.to_numpy()] = recent_genre_profile(
            index.positions(next(iter(recent.values()))), genres
        )
    now = joined[AS_OF].astype("int64").to_numpy() / 1e6  # microseconds -> unix seconds
    x = model_matrix(joined, now, profile)
    return pd.DataFrame(x.astype(np.float64), columns=list(FEATURE_COLUMNS))


def written_late(var: Path, store: Any, rows: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """Per row: whether its user or movie has an offline row with event time <= `as_of` written after the answer (`ts`).

    Feast's point-in-time join is on event time only, so rows ingested after the answer still count
    at `as_of`; the online store could not have held them when serving answered.
    """
    import pyarrow.dataset as ds

    from feature_repo.config import CREATED, EVENT_TIMESTAMP, offline_dir

    late = np.zeros(len(rows), dtype=bool)
    for keys, refs in service_references(store, FEATURE_SERVICE).items():
        if len(keys) != 1 or keys[0] not in rows:
            continue
        key = keys[0]
        frame = rows[[key, AS_OF, "ts"]].reset_index(drop=True).reset_index()
        wanted = pd.unique(frame[key]).tolist()
        for view in sorted({r.split(":")[0] for r in refs}):
            data = ds.dataset(offline_dir(view, var), format="parquet")
            table = data.to_table(columns=[key, EVENT_TIMESTAMP, CREATED], filter=ds.field(key).isin(wanted))
            m = frame.merge(table.to_pandas(), on=key)
            late[m.loc[(m[EVENT_TIMESTAMP] <= m[AS_OF]) & (m[CREATED] > m["ts"]), "index"].unique()] = True
    return late


@dataclass(frozen=True)
class Replay:
    """A replay's outcome: rows recomputed and the per-feature comparison."""

    rows: int
    matches: dict[str, ValueMatch]


def replay_served(var: Path, redis_url: str, model_dir: Path, served: pd.DataFrame, n: int) -> Replay:
    """Recompute up to n served rows through the training path and compare; ReplayUnavailableError when it cannot run."""
    from feature_repo.config import registry_path
    from ranking.candidate_index import INDEX_DIR, CandidateIndex
    from ranking.interactions import load_movies

    if n <= 0:
        raise ReplayUnavailableError("off (skew_replay_rows = 0)")
    offline = var / "offline"
    if not registry_path(var).is_file():
        raise ReplayUnavailableError(f"no Feast registry at {registry_path(var)}")
    if not (offline / "features").is_dir():
        raise ReplayUnavailableError(f"no offline feature store under {offline / 'features'}")
    if not (model_dir / INDEX_DIR).is_dir():
        raise ReplayUnavailableError(f"the model has no candidate index ({model_dir / INDEX_DIR})")
    from ingestion.feast_bridge import open_feature_store

    # apply=False: a monitor reads the registry training wrote; it never re-applies definitions (or touches Redis).
    store = open_feature_store(var, redis_url, apply=False)
    index = CandidateIndex.load(model_dir / INDEX_DIR)
    movies = load_movies(offline)
    genres = dict(zip(movies[C.ITEM], movies["genres"], strict=True)) if "genres" in movies else {}
    rows = sample_rows(served, n)
    replayed = recompute(store, rows, index, genres)
    return Replay(len(rows), compare_values(rows, replayed, late=written_late(var, store, rows)))
