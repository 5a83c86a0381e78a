"""`recsys evaluate --cold-start`: the cold-start policies judged on users who joined after the cut-off.

Lives in the front door because it joins what `ranking/` must not import: the metadata API
client (ingestion) for the self-descriptions, the simulator's ground truth for the oracle share.
The evaluation itself is `ranking.cold_eval` (pure); this module loads its inputs and writes
`reports/cold_start.md`.

Inputs, all from `<var>`: sessions, ratings and account events (offline store), the catalogue
(movie_metadata view: id, genres, cost, runtime), the champion's default λ (0 without one), the
text encoder and cached movie vectors (`textmodel`). Self-descriptions come from the metadata
API (`GET /user/<ids>`); `descriptions="world"` reads them from the simulated world's public
user table instead — SIMULATOR-ONLY, for measuring on a world whose API is not running.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import duckdb
import httpx
import numpy as np
import pandas as pd

from events.metadata import GENRES
from ranking import columns as C  # noqa: N812 (the Recommenders idiom)
from ranking.candidates.popularity import PopularityConfig
from ranking.cold_eval import (
    DESCRIPTION,
    DESCRIPTION_TITLES,
    FIRST_DAYS,
    POLICIES,
    ColdStartResult,
    cohort,
    decayed_popularity,
    evaluate,
)
from ranking.cold_start import ColdStartPolicy
from ranking.dataset import plan_splits
from ranking.interactions import load_movies, load_ratings, load_sessions
from textmodel.describe import KINDS, ParsedDescription, parse_description
from textmodel.titles import TitleIndex

DescriptionSource = Literal["api", "world"]
"""Where self-descriptions are read: the metadata API, or (simulator only) the world's user table."""
REPORT: str = "cold_start.md"
"""File name of the report under the report directory."""


def load_accounts(offline: Path) -> pd.DataFrame:
    """Account creations: user_id, ts (UTC); empty when none were ingested."""
    base = offline / "raw" / "account"
    if not any(base.glob("date=*/*.parquet")):
        return pd.DataFrame({C.USER: pd.Series(dtype="int64"), "ts": pd.Series(dtype="datetime64[us, UTC]")})
    con = duckdb.connect()
    try:
        df: pd.DataFrame = con.sql(
            f"SELECT user_id, ts FROM read_parquet('{base}/date=*/*.parquet', union_by_name=true)"
        ).df()
    finally:
        con.close()
    df["ts"] = pd.to_datetime(df["ts"], utc=True).dt.floor("us")
    return df


def default_cutoff(sessions: pd.DataFrame, days: float) -> pd.Timestamp:
    """The last training cut-off (`plan_splits`' test cut-off), moved earlier when it leaves no full first week."""
    end = sessions[C.END_TS].max()
    try:
        last = plan_splits(sessions)[-1].cutoff
    except ValueError:  # too little data for the training plan: judge on what there is
        last = end
    return pd.Timestamp(min(last, (end - pd.Timedelta(days=2 * days)).floor("s")))


def descriptions_api(
    users: list[int], meta_url: str, transport: httpx.BaseTransport | None = None
) -> dict[int, tuple[str | None, str | None]]:
    """(likes, dislikes) of `users` from the metadata API (users it does not know are left out).

    RuntimeError when it answers for none of them: a report that silently judged everyone as
    "empty" would credit popularity with a policy that never ran.
    """
    from ingestion.enrichment import EnrichmentConfig, MetadataClient

    config = EnrichmentConfig(base_url=meta_url, timeout_s=10.0, deadline_s=60.0)
    with MetadataClient(config, transport=transport) as client:
        found = client.get_users(users)
    if users and not found:
        raise RuntimeError(
            f"the metadata API at {meta_url} answered for none of {len(users):,} users: start it "
            "(`recsys simulate api`) or, on a simulated world, pass --descriptions world"
        )
    return {u: (m.likes, m.dislikes) for u, m in found.items()}


def descriptions_world(var: Path, users: list[int]) -> dict[int, tuple[str | None, str | None]]:
    """SIMULATOR-ONLY: (likes, dislikes) from the simulated world's public user table (what its API serves)."""
    table = pd.read_parquet(var / "sim" / "users.parquet", columns=["user_id", "likes", "dislikes"])
    table = table[table["user_id"].isin(users)]
    return {int(u): (lk, dl) for u, lk, dl in table.itertuples(index=False)}


def champion_lambda(var: Path) -> float:
    """The champion ranker's default λ (the cost penalty the service applies), 0 without a ranker champion."""
    from ranking.ranker import Ranker
    from ranking.registry import KIND_BASELINE, ModelRegistry, read_kind
    from ranking.settings import RankSettings

    registry = ModelRegistry.open(RankSettings(var_dir=var))
    info = registry.resolve("champion")
    if info is None:
        return 0.0
    path = registry.download(info.version)
    if read_kind(path)[0] == KIND_BASELINE:
        return 0.0
    return float(Ranker.load(path).meta.default_lambda or 0.0)


def _genre_matrix(genres: pd.Series) -> np.ndarray:
    """Movies x GENRES booleans from list-like genre names."""
    col = {g: i for i, g in enumerate(GENRES)}
    out = np.zeros((len(genres), len(GENRES)), dtype=bool)
    for row, names in enumerate(genres.tolist()):
        for g in names if names is not None else ():
            if (j := col.get(str(g))) is not None:
                out[row, j] = True
    return out


def run_cold_start_evaluation(
    var: Path,
    report_dir: Path,
    meta_url: str,
    progress: Any = print,
    cutoff: str | None = None,
    days: float = FIRST_DAYS,
    descriptions: DescriptionSource = "api",
    lam: float | None = None,
) -> ColdStartResult:
    """Load, evaluate (`ranking.cold_eval.evaluate`), write `reports/cold_start.md`; return the result."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from recsys.training import simulator_oracle
    from textmodel.movies import movie_vectors
    from textmodel.settings import TextSettings
    from textmodel.tfidf import load_encoder

    offline = var / "offline"
    sessions, ratings, accounts = load_sessions(offline), load_ratings(offline), load_accounts(offline)
    at = pd.Timestamp(cutoff, tz="UTC") if cutoff else default_cutoff(sessions, days)
    end = sessions[C.END_TS].max()
    movies = load_movies(offline)
    # The catalogue a cold start could serve at the cut-off: movies played before it.
    known = set(sessions.loc[(sessions[C.END_TS] < at).to_numpy(), C.ITEM])
    movies = movies[movies[C.ITEM].isin(known)].sort_values(C.ITEM).reset_index(drop=True)
    co = cohort(
        accounts, sessions, ratings, dict(zip(movies[C.ITEM], movies["runtime"], strict=True)), at, end, days
    )
    progress(f"cold start: cut-off {at:%Y-%m-%d %H:%M}, {len(co.users):,} users joined after it with a full first "
             f"{days:g} days, {co.truth[C.USER].nunique():,} of them watched something; {len(movies):,} movies")  # fmt: skip
    text = TextSettings(var_dir=var)
    encoder = load_encoder(text)
    frame = movies[[C.ITEM, "genres"]]
    vectors = movie_vectors(encoder, frame, text)
    ids = [str(m) for m in vectors.ids]
    movies = movies.set_index(C.ITEM).reindex(ids)
    half_life = PopularityConfig().half_life_days
    penalty = champion_lambda(var) if lam is None else lam
    policy = ColdStartPolicy(ids, vectors.matrix, encoder.model_id, _genre_matrix(movies["genres"]),
                             decayed_popularity(sessions, ids, at, half_life),
                             movies["cost"].to_numpy(dtype=np.float64), penalty)  # fmt: skip
    users = sorted(set(co.truth[C.USER].tolist()))
    texts = descriptions_world(var, users) if descriptions == "world" else descriptions_api(users, meta_url)
    titles = TitleIndex.build(ids, [None] * len(ids))
    parsed: dict[int, ParsedDescription] = {
        u: parse_description(lk, dl, encoder, titles) for u, (lk, dl) in texts.items()
    }
    oracle = simulator_oracle(var)
    oracle_recs = None
    if oracle is not None:
        oracle_recs = oracle(np.asarray(users, dtype=np.int64), {}, 20, at)
    result = evaluate(co, parsed, policy, movies["cost"], at, days, oracle_recs=oracle_recs)
    result.notes += [
        f"encoder {encoder.model_id}; descriptions from {'the simulated world (simulator only)' if descriptions == 'world' else 'the metadata API'}; "
        f"{len(users) - len(texts)} users without a description answered as empty",
        f"popularity prior: plays before the cut-off decayed with a {half_life:g}-day half-life; λ = {penalty:g}",
    ]  # fmt: skip
    if oracle_recs is None:
        result.notes.append("no simulated world: oracle share not computed")
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / REPORT).write_text("\n".join(report_lines(result)) + "\n")
    return result


def _f(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{x:.4f}"


def report_lines(r: ColdStartResult) -> list[str]:
    """The Markdown report: the comparison, the split by description kind, the intervals."""
    lines = [
        "# Cold start from self-descriptions",
        "",
        f"Users who created their account at or after {r.cutoff:%Y-%m-%d %H:%M} UTC and whose first "
        f"{r.days:g} days are in the data, judged on what they watched in those days ({r.users:,} users "
        f"with a relevant movie; kinds: " + ", ".join(f"{k} {r.kinds.get(k, 0):,}" for k in KINDS) + ").",
        "",
        f"| policy | users | NDCG@{r.k} | recall@{r.k} | mean cost (USD/play) | oracle share |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {f.policy} | {f.users:,} | {_f(f.ndcg)} | {_f(f.recall)} | {_f(f.mean_cost)} | {_f(f.oracle_share)} |"
        for f in r.figures
        if f.group == "all"
    ]
    lines += ["", "## By description kind", "", f"| kind | policy | users | NDCG@{r.k} | recall@{r.k} | mean cost |",
              "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    lines += [
        f"| {f.group} | {f.policy} | {f.users:,} | {_f(f.ndcg)} | {_f(f.recall)} | {_f(f.mean_cost)} |"
        for f in r.figures
        if f.group != "all" and f.policy in POLICIES
    ]
    lines += ["", "## Difference from popularity (per-user NDCG, 95% bootstrap interval over users)", ""]
    for name in (DESCRIPTION, DESCRIPTION_TITLES):
        if name in r.ci:
            diff, low, high = r.ci[name]
            verdict = "clear of zero" if low > 0 or high < 0 else "not clear of zero"
            lines.append(
                f"- **{name} − popularity**: {diff:+.4f}, 95% CI [{low:+.4f}, {high:+.4f}] ({verdict})"
            )
        for kind in KINDS:
            if (name, kind) in r.ci_by_kind:
                diff, low, high = r.ci_by_kind[(name, kind)]
                lines.append(f"  - {kind}: {diff:+.4f} [{low:+.4f}, {high:+.4f}]")
    lines += ["", *(f"_{n}_" for n in r.notes)]
    return lines


def summary(r: ColdStartResult) -> list[str]:
    """The printed lines: NDCG of each policy and the intervals."""
    out = []
    for name in (*POLICIES, "oracle"):
        if (f := r.figure(name)) is not None:
            out.append(f"{name:<19} NDCG@{r.k} {_f(f.ndcg)}  recall@{r.k} {_f(f.recall)}  "
                       f"mean cost {_f(f.mean_cost)}  oracle share {_f(f.oracle_share)}")  # fmt: skip
    for name, (diff, low, high) in r.ci.items():
        out.append(
            f"{name} − popularity: {diff:+.4f}, 95% CI [{low:+.4f}, {high:+.4f}] over {r.users:,} users"
        )
    return out
