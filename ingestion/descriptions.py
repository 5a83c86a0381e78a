"""Self-descriptions at account creation: fetched, parsed, encoded and landed as `user_description` rows.

The worker hands over users to describe: every account event, and every user whose metadata it
enriches for the first time (users known before this feature existed). Per landed batch at most
`MAX_PER_BATCH` of them are done, so landing is never held up by the metadata API or the
encoder: one batched lookup (the profile lookup just before it usually filled the client's
cache), `textmodel.describe.parse_description` for each (titles matched against the movies the
worker has enriched, the sentence encoder loaded once, lazily, on first use: the ONNX model, or
TF-IDF when it is missing — the row carries the model id either way), and one table of rows.
A user the API says it does not know, or a failed parse, is tried again after
`RETRY_BASE_S * 2**attempt` seconds (with the next landed batch after that: a quiet stream
delays it), at most `MAX_ATTEMPTS` times, then dropped (logged, counted). A lookup that got no
answer at all (API down, breaker open, timeout: the client's `Lookup.unavailable`) does not
spend that budget: an outage of minutes must not cost the users who signed up during it their
cold-start profile. Those users wait with the same backoff capped at `RETRY_MAX_S` for as long
as the API stays away; the queue holds at most `MAX_PENDING` users (the oldest are dropped,
counted as given up) so a dead API cannot grow the worker's memory without bound. The rows go where the batch's other user features go (offline Parquet named by the
batch, then the online push), so a crash before the progress marker redoes them with the batch.

Pending users live in memory: after a restart, account events replayed from the last snapshot
are queued again, and users already described (any landed `user_description` file) are skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pyarrow as pa
import pyarrow.parquet as pq

from events.metadata import MovieMeta, UserMeta
from ingestion import metrics

if TYPE_CHECKING:
    from ingestion.enrichment import Lookup
    from textmodel.describe import ParsedDescription
    from textmodel.encoder import TextEncoder
    from textmodel.titles import TitleIndex

log = logging.getLogger(__name__)

DESCRIPTION_VIEW: Final = "user_description"
"""The Feast view the rows belong to (feature_repo.user_features.user_description)."""
MAX_PER_BATCH: Final = 32
"""Users described per landed batch at most (~7 ms of encoding each): bounds the work a batch waits for."""
MAX_ATTEMPTS: Final = 5
"""Tries per user (lookup plus parse) before the description is given up."""
RETRY_BASE_S: Final = 2.0
"""First retry delay; doubles per attempt."""
RETRY_MAX_S: Final = 120.0
"""Longest wait between lookups of a user while the API gives no answer at all."""
MAX_PENDING: Final = 200_000
"""Users waiting at most (~100 B each); beyond it the oldest are given up."""
TITLE_REFRESH_S: Final = 60.0
"""Least wall time between rebuilds of the title index as the enriched catalogue grows."""
US: Final = pa.timestamp("us", tz="UTC")

UserLookup = Callable[[Sequence[int]], "dict[int, UserMeta] | Lookup[int, UserMeta]"]
"""Metadata API batch lookup of users: found records, or the client's `Lookup` (which also says who got no answer)."""
Parse = Callable[["str | None", "str | None", "TextEncoder | None", "TitleIndex"], "ParsedDescription"]
"""`textmodel.describe.parse_description`'s signature (tests pass their own)."""


@dataclass
class _Pending:
    """One user waiting to be described."""

    ts_ns: int
    """Event time of the row: the account creation, else the event that made the user known."""
    meta: UserMeta | None = None
    attempts: int = 0
    """Lookups answered without this user, and failed parses: `MAX_ATTEMPTS` of them give up."""
    waits: int = 0
    """Lookups that got no answer at all: they only space out the next try."""
    next_try: float = 0.0


def _load_encoder() -> TextEncoder:
    from textmodel.settings import get_text_settings
    from textmodel.tfidf import load_encoder

    return load_encoder(get_text_settings())


def _parse(
    likes: str | None, dislikes: str | None, encoder: TextEncoder | None, titles: TitleIndex
) -> ParsedDescription:
    from textmodel.describe import parse_description

    return parse_description(likes, dislikes, encoder, titles)


def _build_titles(ids: Sequence[str], titles: Sequence[str | None]) -> TitleIndex:
    from textmodel.titles import TitleIndex

    return TitleIndex.build(ids, titles)


class DescriptionWriter:
    """Pending self-descriptions and the bounded per-batch step that turns them into rows; see the module doc."""

    def __init__(
        self,
        users: UserLookup,
        load_encoder: Callable[[], TextEncoder] = _load_encoder,
        parse: Parse = _parse,
        build_titles: Callable[[Sequence[str], Sequence[str | None]], TitleIndex] = _build_titles,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.users = users
        self.described: set[int] = set()
        """Users with a landed row (restored from the offline files on the first assignment)."""
        self.pending: dict[int, _Pending] = {}
        self._load_encoder = load_encoder
        self._parse = parse
        self._build_titles = build_titles
        self._clock = clock
        self._encoder: TextEncoder | None = None
        self._titles: TitleIndex | None = None
        self._titles_size = -1
        self._titles_at = float("-inf")

    def restore(self, folder: Path) -> None:
        """Remember every user a landed `user_description` file holds (a restart must not describe them again)."""
        for path in folder.glob("*.parquet"):
            try:
                self.described.update(pq.read_table(path, columns=["user_id"]).column("user_id").to_pylist())
            except Exception as exc:  # a foreign or half-written file: those users are simply described again
                log.warning("could not read %s (%s)", path, exc)

    def want(self, users: Mapping[int, int], metas: Mapping[int, UserMeta] | None = None) -> None:
        """Queue users (id -> event time, ns) not described yet; `metas`: records already fetched."""
        for user, ts_ns in users.items():
            if user in self.described:
                continue
            entry = self.pending.setdefault(user, _Pending(ts_ns))
            entry.ts_ns = min(entry.ts_ns, ts_ns) if entry.ts_ns else ts_ns
            if metas is not None and user in metas:
                entry.meta = metas[user]
        if len(self.pending) > MAX_PENDING:  # a long outage: keep the newest sign-ups, count the rest
            for user in list(self.pending)[: len(self.pending) - MAX_PENDING]:  # dicts keep insertion order
                del self.pending[user]
                metrics.DESCRIPTIONS.labels("gave_up").inc()
            log.warning(
                "self-descriptions: more than %d users waiting, the oldest were given up", MAX_PENDING
            )
        metrics.DESCRIPTIONS_PENDING.set(len(self.pending))

    def update_titles(self, movies: Mapping[str, MovieMeta]) -> None:
        """Rebuild the title index when the enriched catalogue grew (at most every `TITLE_REFRESH_S`)."""
        now = self._clock()
        if len(movies) == self._titles_size or (
            self._titles is not None and now - self._titles_at < TITLE_REFRESH_S
        ):
            return
        ids = sorted(movies)
        try:
            self._titles = self._build_titles(ids, [movies[m].title for m in ids])
        except Exception:  # keep the last index: names are matched a little less, nothing stops
            log.exception("title index rebuild failed")
            return
        self._titles_size, self._titles_at = len(movies), now

    def rows(self, created_ns: int) -> pa.Table | None:
        """`user_description` rows for up to `MAX_PER_BATCH` due users (None when there are none); never raises."""
        now = self._clock()
        due = sorted(
            (u for u, p in self.pending.items() if p.next_try <= now), key=lambda u: self.pending[u].next_try
        )
        due = due[:MAX_PER_BATCH]
        if not due:
            return None
        missing = [u for u in due if self.pending[u].meta is None]
        unanswered: set[int] = set()
        if missing:
            try:
                answer = self.users(missing)
                found = answer if isinstance(answer, dict) else answer.found
                unanswered = set() if isinstance(answer, dict) else set(answer.unavailable)
                for user, meta in found.items():
                    if user in self.pending:
                        self.pending[user].meta = meta
            except Exception as exc:  # the API client should not raise; if it does, nobody got an answer
                log.warning("self-description lookup failed (%s)", exc)
                unanswered = set(missing)
        encoder = self._encoder_or_none()
        titles = self._titles if self._titles is not None else self._build_titles([], [])
        done: list[tuple[int, _Pending, ParsedDescription]] = []
        for user in due:
            entry = self.pending[user]
            if entry.meta is None and user in unanswered:
                self._wait(entry, now)
                continue
            if entry.meta is None:
                self._retry(user, entry, now, "the metadata API does not know the user")
                continue
            try:
                parsed = self._parse(entry.meta.likes, entry.meta.dislikes, encoder, titles)
            except Exception as exc:
                self._retry(user, entry, now, f"parse failed: {type(exc).__name__}: {exc}")
                continue
            done.append((user, entry, parsed))
        for user, _, _ in done:
            del self.pending[user]
            self.described.add(user)
        metrics.DESCRIPTIONS.labels("stored").inc(len(done))
        metrics.DESCRIPTIONS_PENDING.set(len(self.pending))
        return description_table(done, created_ns) if done else None

    def _encoder_or_none(self) -> TextEncoder | None:
        """The encoder, loaded on first use; None (rows still get titles and genres) when even that fails."""
        if self._encoder is None:
            try:
                self._encoder = self._load_encoder()
            except Exception:  # e.g. RECSYS_TEXT_ENCODER=onnx without the model: tried again next batch
                log.exception("text encoder could not be loaded; descriptions wait")
                return None
        return self._encoder

    def _wait(self, entry: _Pending, now: float) -> None:
        entry.waits += 1
        entry.next_try = now + min(RETRY_MAX_S, RETRY_BASE_S * 2 ** (entry.waits - 1))
        metrics.DESCRIPTIONS.labels("waiting").inc()

    def _retry(self, user: int, entry: _Pending, now: float, why: str) -> None:
        entry.attempts += 1
        if entry.attempts >= MAX_ATTEMPTS:
            del self.pending[user]
            metrics.DESCRIPTIONS.labels("gave_up").inc()
            log.warning(
                "self-description of user %d given up after %d attempts (%s)", user, entry.attempts, why
            )
            return
        entry.next_try = now + RETRY_BASE_S * 2 ** (entry.attempts - 1)
        metrics.DESCRIPTIONS.labels("retried").inc()


def description_table(done: Iterable[tuple[int, _Pending, ParsedDescription]], created_ns: int) -> pa.Table:
    """The rows in the view's offline schema (an empty vector when the description had nothing to encode)."""
    items = sorted(done, key=lambda d: d[0])
    vectors = [[] if p.vector is None else [float(x) for x in p.vector] for _, _, p in items]
    return pa.table(
        {
            "user_id": pa.array([u for u, _, _ in items], pa.int64()),
            "event_timestamp": pa.array([e.ts_ns // 1000 for _, e, _ in items], pa.int64()).cast(US),
            "created": pa.array([created_ns // 1000] * len(items), pa.int64()).cast(US),
            "text_vector": pa.array(vectors, pa.list_(pa.float32())),
            "text_model_id": pa.array([p.model_id for _, _, p in items], pa.string()),
            "liked_movie_ids": pa.array([list(p.liked) for _, _, p in items], pa.list_(pa.string())),
            "disliked_movie_ids": pa.array([list(p.disliked) for _, _, p in items], pa.list_(pa.string())),
            "liked_genres": pa.array([list(p.liked_genres) for _, _, p in items], pa.list_(pa.string())),
            "disliked_genres": pa.array(
                [list(p.disliked_genres) for _, _, p in items], pa.list_(pa.string())
            ),
            "description_kind": pa.array([p.kind for _, _, p in items], pa.string()),
        }
    )
