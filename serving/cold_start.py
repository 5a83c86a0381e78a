"""The `self_description` cold-start policy as serving runs it: built off the request path, read per request.

Build (a background thread, at start-up and after every movie-table refresh, only while an arm
uses the policy): each movie's document is its slug's title, year and genres (what the table
holds; serving never asks the metadata API), embedded by `textmodel.movies.movie_vectors`, cached
per model id and catalogue hash under var/textmodel (a restart is a file read, a grown catalogue
embeds only the new movies). With the popularity prior (the table's 7-day plays; before any play
is counted, the champion's recency-decayed popular order), the licence costs and the champion's
λ it becomes a `ranking.cold_start.ColdStartPolicy`, swapped in whole. Until then the arm serves
the popular list (outcome `not_ready`).

Per request the description is the user's stored `user_description__*` features (ingestion
writes them at account creation). Without a stored row, and with `metadata_url` set, it is fetched
and encoded inline (`serving.inline_description`: `inline_encode`, else `inline_not_found` /
`inline_unavailable`); without either the answer is the popular list (`no_description`). A vector
of another encoder than serving's (one side degraded to TF-IDF) is dropped and the named titles
and genres still count (`model_mismatch`). Outcomes: `recsys_cold_start_outcome_total{policy,outcome}`
(`degraded_encoder`: both sides on TF-IDF).

Hand-over (`handover`): a user with fewer than `ranking.cold_start.HANDOVER_PLAYS` plays (the
`watch_count_total` feature) is answered by the ranker, then the ranker's list and the
description's top 20 are re-ordered by `ranking.cold_start.blend`: the policy's scores against the
ranker's ranks (1 / (1 + position), 0 off its list), both rank-normalised, the ranker weighing
`handover_weight(n_plays)` (0 at no plays, 1 at HANDOVER_PLAYS). From there on, or without a
stored description, the ranker's answer is untouched. The answer stays on path `model`; its
reason and candidate sources say the description took part.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from ranking.cold_start import ColdStartPolicy, blend, handover_weight
from ranking.registry import CHAMPION
from serving import metrics as M  # noqa: N812
from serving.cold_start_inputs import catalogue_frame, popularity_prior, rank_scores, stored_description
from serving.inline_description import InlineDescriber
from serving.models import ModelManager
from serving.movie_table import COST, MovieTable
from textmodel.describe import ParsedDescription
from textmodel.encoder import TextEncoder
from textmodel.settings import TextSettings, get_text_settings
from textmodel.tfidf import TfidfEncoder
from textmodel.titles import TitleIndex

if TYPE_CHECKING:
    from serving.routing import Router

log = logging.getLogger(__name__)

POLICY: Final = "self_description"
"""The arm's `cold_start` value this module serves."""
REBUILD_MIN_S: Final = 60.0
"""Seconds between policy rebuilds once one is built: its popularity prior may lag the table by this much."""
PLAYS_FEATURE: Final = "user_watch_stats__watch_count_total"
"""The user's watch sessions: the hand-over rule's n_plays."""
Inline = tuple[ParsedDescription | None, str]
"""An inline read: the description (None when there is none to use) and its outcome label."""


@dataclass(frozen=True)
class Built:
    """One built policy and what it was built from."""

    policy: ColdStartPolicy
    model_id: str
    dim: int
    """Width of the movie vectors (a stored vector of another width cannot be compared)."""
    degraded: bool
    """The encoder is the TF-IDF fallback."""
    generation: int
    """The movie table's generation it was built from."""
    seconds: float
    row_of: dict[str, int]
    """Movie id -> position in the policy's scores."""
    titles: TitleIndex
    """The catalogue's titles (from the slugs), for reading a description inline."""


class SelfDescriptionColdStart:
    """The built policy (replaced whole by a background build) and the per-request answers; see the module doc."""

    def __init__(
        self, load_encoder: Callable[[], TextEncoder] | None = None, settings: TextSettings | None = None
    ) -> None:
        self.settings = settings
        """Text model settings (None: the process's `get_text_settings()`, read at the first build)."""
        self.built: Built | None = None
        self._genres: np.ndarray[Any, Any] | None = None
        """The genre matrix the current vectors and titles were built with (a re-price keeps them)."""
        self.last_error: str | None = None
        self._load_encoder = load_encoder
        self._encoder: TextEncoder | None = None
        self._lock = threading.Lock()
        self._wanted: tuple[MovieTable, ModelManager] | None = None
        self._thread: threading.Thread | None = None
        self._scheduled_at = -REBUILD_MIN_S
        self.inline: InlineDescriber | None = None
        """Inline fetch-and-encode of descriptions not stored yet (None: no metadata API configured)."""

    # --- build (off the request path) -----------------------------------------------------

    def schedule(
        self, table: MovieTable, models: ModelManager, router: Router, var_dir: Path | None = None
    ) -> None:
        """Build a policy for this table in the background when an arm of the active experiment uses it.

        The latest table wins when a build is running; the popular order is read in the thread.
        `var_dir`: serving's, where the movie vectors are cached (unless settings were given).
        """
        experiment = router.experiment
        if not len(table) or not any(a.cold_start == POLICY for a in (experiment.arms if experiment else ())):
            return
        now = time.monotonic()
        if self.built is not None and now - self._scheduled_at < REBUILD_MIN_S:
            return  # the table refreshes every few seconds under writes: a rebuild each time costs the requests CPU
        self._scheduled_at = now
        if self.settings is None and var_dir is not None:
            self.settings = get_text_settings().model_copy(update={"var_dir": var_dir})
        with self._lock:
            self._wanted = (table, models)
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name="cold-start-build", daemon=True)
            self._thread.start()

    def building(self, router: Router) -> bool:
        """True while an arm of the active experiment uses the policy and its first build has not ended
        (readiness waits for it: until then that arm would answer the popular list, and the build's CPU
        would slow every answer of a worker already taking traffic)."""
        experiment = router.experiment
        used = any(a.cold_start == POLICY for a in (experiment.arms if experiment else ()))
        return used and self.built is None and self.last_error is None

    def wait(self, timeout_s: float) -> bool:
        """Block until no build is running (tests and start-up); True when a policy is loaded."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
        return self.built is not None

    def _run(self) -> None:
        while True:
            with self._lock:
                wanted, self._wanted = self._wanted, None
                if wanted is None:
                    return
            table, models = wanted
            bundle = models.loaded.get(CHAMPION) or next(iter(models.loaded.values()), None)
            popular = [str(m) for m in bundle.index.items[bundle.index.popular(len(table))]] if bundle else []
            # The champion's trained λ: the policy's cost term has ranking.cost_policy's form.
            lam = (bundle.ranker.meta.default_lambda or 0.0) if bundle is not None and bundle.ranker else 0.0
            try:
                self.built = self.build(table, popular, lam)
                self.last_error = None
            except Exception as exc:  # keep serving the last policy (or popular)
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("self-description cold-start policy build failed")

    def encoder(self) -> TextEncoder:
        """The sentence encoder, loaded once (ONNX model, or TF-IDF when it is missing: degraded)."""
        if self._encoder is None:
            if self._load_encoder is not None:
                self._encoder = self._load_encoder()
            else:
                from textmodel.tfidf import load_encoder

                self._encoder = load_encoder(self._settings())
        assert self._encoder is not None
        return self._encoder

    def build(self, table: MovieTable, popular: Sequence[str], lam: float = 0.0) -> Built:
        """A policy over the table's movies (blocking: movie vectors may need embedding); unknown costs stay NaN
        (the policy charges them a high quantile)."""
        from textmodel.movies import movie_vectors

        t0 = time.perf_counter()
        encoder = self.encoder()
        ids = [str(m) for m in table.ids]
        cost = table.gather(COST, np.arange(len(table), dtype=np.int64))
        last = self.built
        if (
            last is not None
            and last.model_id == encoder.model_id
            and last.policy.movie_ids == ids
            and self._genres is not None
            and np.array_equal(self._genres, table.genres)
        ):
            # Same movies, titles and genres (what the vectors and titles come from): only plays and
            # costs moved. Re-pricing is numpy; the full build is seconds of Python holding the
            # interpreter lock, which stalled every request of the worker (the soak's p99).
            policy = last.policy.repriced(popularity_prior(table, popular), cost, lam)
            return replace(last, policy=policy, generation=table.generation, seconds=time.perf_counter() - t0)
        vectors = movie_vectors(encoder, catalogue_frame(table), self._settings())
        # movie_vectors answers in id order: put its rows back in table order.
        row_of = {str(m): i for i, m in enumerate(vectors.ids.tolist())}
        matrix = vectors.matrix[[row_of[str(m)] for m in table.ids]]
        self._genres = table.genres.copy()
        policy = ColdStartPolicy(
            ids, matrix, encoder.model_id, table.genres > 0, popularity_prior(table, popular), cost, lam
        )
        seconds = time.perf_counter() - t0
        degraded = isinstance(encoder, TfidfEncoder)
        log.info("self-description policy: %d movies, %s%s, built in %.2f s", len(table), encoder.model_id,
                 " (DEGRADED)" if degraded else "", seconds)  # fmt: skip
        row_of = {m: i for i, m in enumerate(ids)}
        titles = TitleIndex.build(ids, [None] * len(ids))
        return Built(
            policy,
            encoder.model_id,
            int(matrix.shape[1]),
            degraded,
            table.generation,
            seconds,
            row_of,
            titles,
        )

    def _settings(self) -> TextSettings:
        if self.settings is None:
            self.settings = get_text_settings()
        return self.settings

    # --- requests -------------------------------------------------------------------------

    async def fetch_inline(self, user_id: int, user: dict[str, Any] | None) -> Inline | None:
        """The description read inline for a user with no stored row (None: stored, not needed or not possible)."""
        built, inline = self.built, self.inline
        if built is None or inline is None or stored_description(user) is not None:
            return None
        return await inline.describe(user_id, self.encoder(), built.titles)

    def recommend(
        self, user: dict[str, Any] | None, seen: Collection[str], k: int = 20, inline: Inline | None = None
    ) -> tuple[list[str] | None, str]:
        """(movies, outcome) for a user without history, counted; movies None: serve the popular list instead."""
        movies, outcome = self._answer(user, seen, k, inline)
        M.COLD_START_OUTCOMES.labels(POLICY, outcome).inc()
        return movies, outcome

    def _answer(
        self, user: dict[str, Any] | None, seen: Collection[str], k: int, inline: Inline | None
    ) -> tuple[list[str] | None, str]:
        built = self.built
        if built is None:
            return None, "not_ready"
        described, outcome = self._described(built, user)
        if described is None and inline is not None:
            described, outcome = inline
            if described is not None and described.model_id != built.model_id:
                described = replace(described, vector=None, model_id=None)  # the encoder changed meanwhile
        if described is None:
            return None, outcome
        return built.policy.recommend(described, k, seen), outcome

    @staticmethod
    def _described(built: Built, user: dict[str, Any] | None) -> tuple[ParsedDescription | None, str]:
        """The stored description as the policy can use it, and the outcome label."""
        described = stored_description(user)
        if described is None:
            return None, "no_description"
        if described.vector is None:
            return described, "no_vector"
        if described.model_id != built.model_id or len(described.vector) != built.dim:
            # Another encoder's vector: the named titles and genres still count.
            return replace(described, vector=None, model_id=None), "model_mismatch"
        return described, "degraded_encoder" if built.degraded else "stored_vector"

    def handover(self, user: dict[str, Any] | None, ranked: list[str], seen: Collection[str],
                 k: int = 20) -> tuple[list[str], float]:  # fmt: skip
        """The ranker's list mixed with the description's scores by `blend`; (list, the description's share).

        Candidates: the ranker's list and the description's top k. The description's side is the
        policy's score of each; the ranker's is by rank (1 / (1 + position), 0 off its list).
        Share 0 (enough plays, no stored description, no policy): the ranker's list unchanged.
        """
        built = self.built
        n_plays = int((user or {}).get(PLAYS_FEATURE) or 0)
        share = 1.0 - handover_weight(n_plays)
        if built is None or share <= 0.0:
            return ranked, 0.0
        described, _ = self._described(built, user)
        if described is None:
            return ranked, 0.0
        # One scoring pass serves both the description's top k and its score of every candidate.
        all_scores = built.policy.scores(described)
        floor = float(np.min(all_scores)) - 1.0 if len(all_scores) else 0.0
        unseen = all_scores.copy()
        unseen[[r for m in seen if (r := built.row_of.get(m)) is not None]] = -np.inf
        cold = [
            built.policy.movie_ids[i]
            for i in np.argsort(-unseen, kind="stable")[:k]
            if np.isfinite(unseen[i])
        ]
        union = list(dict.fromkeys([*ranked, *cold]))
        cold_scores = np.array(
            [all_scores[r] if (r := built.row_of.get(m)) is not None else floor for m in union]
        )
        mixed = blend(cold_scores, rank_scores(ranked, union), n_plays)
        order = np.argsort(-mixed, kind="stable")
        M.COLD_START_OUTCOMES.labels(POLICY, "handover").inc()
        return [union[i] for i in order[:k]], share
