"""The ingestion worker: Kafka batch -> parse -> Parquet + DLQ + user features -> progress -> online push.

Order of a partition's batch, and why:
1. parse and update the partition's user state;
2. write raw Parquet files, the DLQ rows and the user feature rows under names carrying the
   offset range, and produce bad lines to `movielog.dlq` (flushed);
3. move the progress marker past the batch — the commit point — then commit the Kafka offset
   (informational: lag and tooling; recovery trusts the marker);
4. push the touched users' features online; a failed push is retried later and never blocks
   landing (Redis down degrades freshness, not completeness).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition

from events.batch import ParsedBatch, parse_batch
from events.kafka import make_consumer, make_producer
from events.metadata import GENRE_INDEX, MovieMeta, UserMeta
from events.settings import KafkaSettings, get_kafka_settings
from ingestion import metrics, snapshots
from ingestion.descriptions import DESCRIPTION_VIEW, DescriptionWriter
from ingestion.dlq import DeadLetter, DeadLetterWriter, recovery_consumer
from ingestion.layout import BatchId, OfflineLayout
from ingestion.movie_features import latest_per_movie, movie_rows, write_rows
from ingestion.online import OnlineWriter
from ingestion.online_changes import ChangedRows
from ingestion.online_sync import OnlineSync
from ingestion.progress import Progress, atomic_write
from ingestion.sessions import sessionize, stale_dates
from ingestion.settings import IngestSettings, get_ingest_settings
from ingestion.sink import SourceBatch, tables, write_tables
from ingestion.state import UserState
from ingestion.user_features import user_rows, with_day_rows
from ingestion.validation import quarantine_future

log = logging.getLogger(__name__)

MovieLookup = Callable[[Sequence[str]], dict[str, MovieMeta]]
"""Metadata API batch lookup of movies (missing ids are simply absent)."""
UserLookup = Callable[[Sequence[int]], dict[int, UserMeta]]
"""Metadata API batch lookup of users (missing ids are simply absent)."""

PROFILE_VIEW = "user_profile"
US = pa.timestamp("us", tz="UTC")
PLAY_SCHEMA = pa.schema(
    [("ts", pa.timestamp("ns", tz="UTC")), ("user_id", pa.int64()), ("movie_id", pa.string())]
)


@dataclass
class RunStats:
    """What one `run` did."""

    messages: int = 0
    landed: int = 0
    dlq: int = 0
    replayed: int = 0
    batches: int = 0
    pushes_failed: int = 0
    catch_ups: int = 0
    rebuilds: int = 0
    by_kind: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def _complete(meta: MovieMeta | None) -> bool:
    """A movie's metadata with what features and the cost penalty need: its cost and genres."""
    return meta is not None and meta.cost is not None and bool(meta.genres)


def _offset(m: Message) -> int:
    # Messages returned without error always carry an offset.
    return int(m.offset() or 0)


class IngestWorker:
    """One consumer in the ingestion group; run several for more partitions in parallel."""

    def __init__(
        self,
        settings: IngestSettings | None = None,
        kafka: KafkaSettings | None = None,
        online: OnlineWriter | None = None,
        movies: MovieLookup | None = None,
        users: UserLookup | None = None,
        descriptions: DescriptionWriter | None = None,
    ) -> None:
        self.s = settings or get_ingest_settings()
        self.kafka = kafka or get_kafka_settings()
        self.layout = OfflineLayout(self.s.offline_dir)
        self.progress = Progress(self.layout)
        self.online = online
        self.movie_changes = ChangedRows(self.s.movie_repush_s)
        """Movie rows already online: each refresh pushes only the others."""
        self.movies = movies
        self.users = users
        self.descriptions = descriptions
        """Self-descriptions of new users into `user_description` rows (None: not described)."""
        self.profiled: set[int] = set()
        """Users whose demographics were looked up by this worker (re-done after a restart: idempotent)."""
        self.unaged: set[int] = set()
        """Profiled users the API answered without an age (a schema fault): asked again until it sends one."""
        self.genres: dict[str, tuple[int, ...]] = {}
        self.movie_meta: dict[str, MovieMeta] = {}
        self.states: dict[int, UserState] = {}
        self.landed_until: dict[int, int] = {}
        """Per partition: offsets below this are already landed (replay updates state only)."""
        self.last_snapshot: dict[int, float] = {}
        self.stats = RunStats()
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._dlq: DeadLetterWriter | None = None
        self.snapshot_every_s = 30.0
        self._last_movie_job = 0.0
        self._last_lag = 0.0
        self._assigned_at = 0.0
        self.sync = OnlineSync(online if self.s.push_online else None, self.s.online_check_s, self.stats)
        self._stopping = False

    # --- partition lifecycle -------------------------------------------------------------

    def _new_state(self) -> UserState:
        return UserState(self._genre_of, self.s.recent_movies, self.s.session_gap_s)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        resumes: dict[int, int | None] = {}
        for tp in partitions:
            resume, removed = self.progress.recover(self.s.topic, tp.partition)
            if removed:
                log.warning("partition %d: removed %d files of an interrupted batch", tp.partition, removed)
            resumes[tp.partition] = resume
        self._recover_dead_letters(resumes)
        if self.descriptions is not None:
            self.descriptions.restore(self.layout.feature_dir(DESCRIPTION_VIEW))
        for tp in partitions:
            resume = resumes[tp.partition]
            self.profiled.update(self._profiled_users(tp.partition))
            state = self._new_state()
            snap = snapshots.latest(self.layout.root, self.s.topic, tp.partition, resume)
            if snap is not None:
                snapshots.load(snap[1], state)
            self.states[tp.partition] = state
            self.landed_until[tp.partition] = resume or 0
            self.last_snapshot[tp.partition] = time.monotonic()
            # Replay from the snapshot (or the beginning) to rebuild state; land from `resume` on.
            tp.offset = snap[0] if snap is not None else OFFSET_BEGINNING
        consumer.assign(partitions)
        self._assigned_at = time.monotonic()

    def _recover_dead_letters(self, resumes: dict[int, int | None]) -> None:
        """Learn which bad lines at or after each partition's resume offset a crashed run already copied to the DLQ.

        One read of the DLQ tail for the whole assignment, from a little before the oldest commit among them.
        """
        if self._dlq is None or not resumes:
            return
        markers = [self.layout.progress_file(self.s.topic, p) for p in resumes]
        since_ms = min(int(m.stat().st_mtime * 1000) if m.exists() else 0 for m in markers)
        consumer = recovery_consumer(lambda group: make_consumer(group, self.kafka))
        try:
            self._dlq.recover({p: r or 0 for p, r in resumes.items()}, since_ms, consumer)
        finally:
            consumer.close()

    def _profiled_users(self, partition: int) -> set[int]:
        """Users a landed `user_profile` file of this partition holds: a restart must not profile them again."""
        prefix = f"{self.s.topic}-p{partition}-"
        users: set[int] = set()
        aged: set[int] = set()
        for path in self.layout.feature_dir(PROFILE_VIEW).glob(f"{prefix}*.parquet"):
            table = pq.read_table(path, columns=["user_id", "age"])
            ids, ages = table.column("user_id").to_pylist(), table.column("age").to_pylist()
            users.update(ids)
            aged.update(u for u, a in zip(ids, ages, strict=True) if a is not None)
        self.unaged.update(users - aged)
        return users

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._snapshot(tp.partition)
            self.states.pop(tp.partition, None)
            self.landed_until.pop(tp.partition, None)

    def _snapshot(self, partition: int) -> None:
        state = self.states.get(partition)
        until = self.landed_until.get(partition)
        if state is None or until is None:
            return
        snapshots.save(self.layout.root, self.s.topic, partition, until, state)
        self.last_snapshot[partition] = time.monotonic()

    # --- enrichment ----------------------------------------------------------------------

    def _genre_of(self, movie_id: str) -> tuple[int, ...] | None:
        return self.genres.get(movie_id)

    def _enrich(self, parsed: ParsedBatch) -> None:
        if self.movies is None:
            return
        # Movies without a cost or genres yet (not found, or the API broke its schema) are asked again:
        # the client's cache keeps that cheap, and the values fill in once the API answers them.
        unknown = {m for m in parsed.watch.movie_id if not _complete(self.movie_meta.get(m))}
        if not unknown:
            return
        try:
            found = self.movies(sorted(unknown))
        except Exception:  # the lookup must never stall the stream
            log.exception("movie lookup failed")
            return
        for movie_id, meta in found.items():
            self.movie_meta[movie_id] = meta
            self.genres[movie_id] = tuple(GENRE_INDEX[g.lower()] for g in meta.genres)

    # --- the loop ------------------------------------------------------------------------

    def run(
        self, idle_exit_s: float | None = None, max_seconds: float | None = None, until_drained: bool = False
    ) -> RunStats:
        """Consume until stopped (`stop()`), idle for `idle_exit_s`, `max_seconds` elapsed, or (`until_drained`)
        every assigned partition is landed up to its high watermark."""
        self._consumer = make_consumer(self.s.group_id, self.kafka, {"auto.offset.reset": "earliest"})
        self._producer = make_producer(self.kafka)
        self._dlq = DeadLetterWriter(self._producer, self.s.topic, self.kafka.max_line_bytes)
        self._consumer.subscribe([self.s.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        self._stopping = False
        self._assigned_at = 0.0
        started = last_msg = self._last_movie_job = time.monotonic()
        try:
            while not self._stopping:
                msgs = self._consumer.consume(self.s.batch_max_messages, self.s.batch_max_seconds)
                now = time.monotonic()
                good = [m for m in msgs if m.error() is None]
                for m in msgs:
                    if m.error() is not None:
                        log.warning("consumer error: %s", m.error())
                if good:
                    last_msg = now
                    by_part: dict[int, list[Message]] = defaultdict(list)
                    for m in good:
                        by_part[int(m.partition() or 0)].append(m)
                    for part, items in by_part.items():
                        self._handle(part, items)
                self.sync.push()
                self._maybe_snapshot()
                if now - self._last_lag > 5.0:
                    self._update_lag()
                self.sync.maybe_check(now)
                if self.s.movie_job and now - self._last_movie_job > self.s.movie_refresh_s:
                    self.refresh_movies()
                # Idle counts only once partitions are assigned: a fresh broker's group coordinator
                # can take seconds to load, and that is not an empty topic.
                idle_since = max(last_msg, self._assigned_at)
                if (
                    idle_exit_s is not None
                    and self._assigned_at > 0
                    and now - idle_since > idle_exit_s
                    and not self.pending_push_count()
                ):
                    break
                if max_seconds is not None and now - started > max_seconds:
                    break
                if until_drained and not good and self._drained():
                    break
            if self.s.movie_job:
                self.refresh_movies()
        finally:
            for part in list(self.states):
                self._snapshot(part)
            self._consumer.close()
            self._producer.flush(30)
        return self.stats

    def refresh_movies(self) -> dict[str, int]:
        """Fold new watch minutes into sessions, recompute movie features, land them and push them online."""
        self._last_movie_job = time.monotonic()
        written = sessionize(self.layout, stale_dates(self.layout), self.s.session_gap_s)
        stamp = time.time_ns()
        rows = movie_rows(self.layout, self.movie_meta, stamp)
        write_rows(self.layout, rows, stamp)
        pushed: dict[str, int] = {}
        if self.online is not None and self.s.push_online:
            now = time.time()
            for view, table in rows.items():
                changed, digests = self.movie_changes.select(view, latest_per_movie(table), now)
                if not changed.num_rows:
                    continue
                try:
                    self.online.write(view, changed)
                except Exception as exc:  # not recorded as pushed: the next refresh tries these rows again
                    metrics.PUSH_FAILURES.inc()
                    log.warning("online push of %s failed (%s)", view, exc)
                    continue
                self.movie_changes.commit(view, digests, now)
                pushed[f"{view} pushed"] = changed.num_rows
        return {
            **{f"sessions {d}": n for d, n in written.items()},
            **{v: t.num_rows for v, t in rows.items()},
            **pushed,
        }

    def stop(self) -> None:
        """Ask the loop to finish after the current batch."""
        self._stopping = True

    def pending_push_count(self) -> int:
        """Users whose online features have not been pushed yet."""
        return self.sync.pending_count()

    @property
    def freshness_samples(self) -> list[float]:
        """Seconds from a line's Kafka timestamp to its user's features being online (benchmarks read it)."""
        return self.sync.freshness_samples

    def _drained(self) -> bool:
        """Every assigned partition landed up to its high watermark (asked of the broker), nothing left to push."""
        if (
            self._consumer is None
            or not self._assigned_at
            or not self.landed_until
            or self.pending_push_count()
        ):
            return False
        for part, until in list(self.landed_until.items()):
            try:
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self.s.topic, part), timeout=2.0
                )
            except Exception:  # the broker cannot say now: not drained yet
                return False
            if high > until:
                return False
        return True

    def _update_lag(self) -> None:
        """Consumer lag per partition: high watermark minus the next offset to land."""
        self._last_lag = time.monotonic()
        if self._consumer is None:
            return
        for part, until in list(self.landed_until.items()):
            try:
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self.s.topic, part), timeout=1.0, cached=True
                )
            except Exception:  # metadata not available yet: skip this round
                continue
            metrics.LAG.labels(str(part)).set(max(0, high - until))

    def _maybe_snapshot(self) -> None:
        now = time.monotonic()
        for part in list(self.states):
            if now - self.last_snapshot.get(part, 0.0) > self.snapshot_every_s:
                self._snapshot(part)

    def _handle(self, partition: int, msgs: list[Message]) -> None:
        until = self.landed_until.get(partition, 0)
        replay = [m for m in msgs if _offset(m) < until]
        fresh = [m for m in msgs if _offset(m) >= until]
        if replay:
            parsed = parse_batch([m.value() or b"" for m in replay])
            quarantine_future(parsed, [m.timestamp()[1] for m in replay], self.s.max_future_skew_s)
            self._enrich(parsed)
            self._apply(self.states[partition], parsed)
            self.states[partition].drain()
            self.states[partition].drain_days()
            self.stats.replayed += len(replay)
        if fresh:
            self._land(partition, fresh)

    def _apply(self, state: UserState, parsed: ParsedBatch) -> None:
        w = parsed.watch
        for ts, user, movie, minute in zip(w.ts_ns, w.user_id, w.movie_id, w.minute, strict=True):
            state.watch(ts, user, movie, minute)
        r = parsed.rate
        for ts, user, movie, rating in zip(r.ts_ns, r.user_id, r.movie_id, r.rating, strict=True):
            state.rate(ts, user, rating, movie)
        for _, acc in parsed.accounts:
            state.account(acc.ts_ns, acc.user_id)
        if self.descriptions is not None and parsed.accounts:
            self.descriptions.want({acc.user_id: acc.ts_ns for _, acc in parsed.accounts})

    def _land(self, partition: int, msgs: list[Message]) -> None:
        t0 = time.perf_counter()
        assert self._producer is not None and self._consumer is not None
        values = [m.value() or b"" for m in msgs]
        offsets = [_offset(m) for m in msgs]
        kafka_ts = [m.timestamp()[1] for m in msgs]
        batch = BatchId(self.s.topic, partition, offsets[0], offsets[-1])
        parsed = parse_batch(values)
        quarantine_future(parsed, kafka_ts, self.s.max_future_skew_s)
        self._enrich(parsed)
        state = self.states[partition]
        self._apply(state, parsed)
        touched, plays = state.drain()

        kinds = tables(parsed, SourceBatch(batch, offsets, kafka_ts, values))
        if plays:
            kinds["play"] = pa.Table.from_arrays(
                [pa.array([p[0] for p in plays], pa.int64()).cast(PLAY_SCHEMA.field("ts").type),
                 pa.array([p[1] for p in plays], pa.int64()), pa.array([p[2] for p in plays])],
                schema=PLAY_SCHEMA,
            )  # fmt: skip
        write_tables(self.layout, batch, kinds)
        assert self._dlq is not None
        for i, err in parsed.errors:
            # The offline DLQ table (dated by Kafka time) keeps the full bytes; the topic gets a bounded copy.
            date = time.strftime("%Y-%m-%d", time.gmtime(kafka_ts[i] / 1000))
            where = (self.layout.raw_dir("dlq", date) / batch.file_name()).relative_to(self.layout.root)
            self._dlq.send(
                DeadLetter(partition, offsets[i], values[i], err.reason.value, err.detail, str(where))
            )
            metrics.DLQ.labels(err.reason.value).inc()
        if parsed.errors:
            self._dlq.flush(30)

        created_ns = time.time_ns()
        features = user_rows(state, touched, created_ns)
        profiles = self._profiles(state, touched, created_ns)
        if profiles is not None:
            features[PROFILE_VIEW] = profiles
        if self.descriptions is not None:  # bounded work; a failure waits for a later batch
            self.descriptions.update_titles(self.movie_meta)
            described = self.descriptions.rows(created_ns)
            if described is not None:
                features[DESCRIPTION_VIEW] = described
        # Offline also gets each user's day-end rows (a batch spanning days keeps its history
        # point in time); online only the latest row per user matters.
        for view, rows in with_day_rows(features, state.drain_days(), created_ns).items():
            path = self.layout.feature_dir(view) / batch.file_name()
            sink = pa.BufferOutputStream()
            pq.write_table(rows, sink, compression="zstd")
            atomic_write(path, sink.getvalue().to_pybytes())

        next_offset = offsets[-1] + 1
        self.progress.advance(self.s.topic, partition, next_offset)
        self.landed_until[partition] = next_offset
        self._consumer.commit(
            offsets=[TopicPartition(self.s.topic, partition, next_offset)], asynchronous=True
        )
        metrics.BATCH_SECONDS.observe(time.perf_counter() - t0)

        n_ok = len(msgs) - len(parsed.errors)
        self.stats.messages += len(msgs)
        self.stats.landed += n_ok
        self.stats.dlq += len(parsed.errors)
        self.stats.batches += 1
        for kind, table in kinds.items():
            if kind not in ("dlq", "play"):
                self.stats.by_kind[kind] += table.num_rows
                metrics.EVENTS.labels(kind).inc(table.num_rows)
        self.sync.queue(features, min(kafka_ts) if kafka_ts else 0)

    def _profiles(self, state: UserState, touched: set[int], created_ns: int) -> pa.Table | None:
        """`user_profile` rows for users not profiled yet (demographics from the metadata API)."""
        if self.users is None:
            return None
        new = sorted(u for u in touched if u not in self.profiled or u in self.unaged)
        if not new:
            return None
        try:
            found = self.users(new)
        except Exception:  # never stall the stream on the metadata API
            log.exception("user lookup failed")
            return None
        # A user asked again for a missing age gets a row only once the age comes: never a blank row again.
        ids = sorted(u for u in found if u not in self.profiled or found[u].age is not None)
        if not ids:
            return None
        first = [u for u in ids if u not in self.profiled]
        self.profiled.update(ids)
        self.unaged.difference_update(u for u in ids if found[u].age is not None)
        self.unaged.update(u for u in ids if found[u].age is None)
        aggs = [state.users[u] for u in ids]
        if (
            self.descriptions is not None and first
        ):  # first enrichment: users known before their description was
            self.descriptions.want(
                {u: state.users[u].account_ts_ns or state.users[u].last_ts_ns for u in first}, found
            )
        return pa.table(
            {
                "user_id": pa.array(ids, pa.int64()),
                "event_timestamp": pa.array([a.stamp_ns // 1000 for a in aggs], pa.int64()).cast(US),
                "created": pa.array([created_ns // 1000] * len(ids), pa.int64()).cast(US),
                "age": pa.array([found[u].age for u in ids], pa.int64()),
                "gender": pa.array([found[u].gender for u in ids], pa.string()),
                "occupation": pa.array([found[u].occupation for u in ids], pa.string()),
                "account_created_ts": pa.array(
                    [a.account_ts_ns // 1_000_000_000 if a.account_ts_ns else None for a in aggs], pa.int64()
                ),
            }
        )
