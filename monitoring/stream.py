"""`recsys monitor stream`: the online metrics job, a Kafka consumer of `movielog` and `recsys.provenance`.

Restart-safe like ingestion: every `checkpoint_s` it finalises what the watermark allows, writes
the finished rows as Parquet part `seq`, then atomically replaces the checkpoint (join state,
next offsets, `seq + 1`) and only then commits the offsets to Kafka (for lag tooling). A crash
anywhere resumes from the checkpoint: the same part names are rewritten, nothing counts twice.
One instance reads every partition of both topics (a list's provenance record and its front-end
line are on different partitions), so the job is not scaled by adding consumers; it is cheap
(see benchmarks/monitoring.py).
"""

from __future__ import annotations

import json
import logging
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from confluent_kafka import Consumer, KafkaException, TopicPartition

from events.batch import parse_batch
from events.kafka import make_consumer
from ingestion.progress import atomic_write
from monitoring import metrics as M  # noqa: N812
from monitoring import safe_pickle
from monitoring.catalog import MovieFacts
from monitoring.exporter import start_exporter
from monitoring.layout import MonitorLayout
from monitoring.online import OnlineJoin
from monitoring.settings import MonitorSettings
from monitoring.tables import IMPRESSION_SCHEMA, RATING_SCHEMA, WINDOW_SCHEMA, write_part, write_tuples

log = logging.getLogger(__name__)

CHECKPOINT_VERSION: Final = 1
Offsets = dict[str, dict[int, int]]


@dataclass
class StreamSummary:
    """What a run of the job did."""

    messages: dict[str, int] = field(default_factory=dict)
    windows: int = 0
    ratings: int = 0
    impressions: int = 0
    unattributed: int = 0
    seconds: float = 0.0

    @property
    def events_per_s(self) -> float:
        """Messages of both topics per wall second."""
        return sum(self.messages.values()) / self.seconds if self.seconds else 0.0

    def describe(self) -> str:
        """One line for the CLI."""
        counts = ", ".join(f"{n:,} {t}" for t, n in self.messages.items())
        return (
            f"monitor: {counts} in {self.seconds:.1f} s ({self.events_per_s:,.0f}/s); {self.windows:,} window rows, "
            f"{self.ratings:,} ratings credited, {self.unattributed:,} lists not from this service (no provenance record: another recommender or a lost record)"
        )


def _load_checkpoint(layout: MonitorLayout) -> dict[str, Any] | None:
    if not layout.checkpoint.exists():
        return None
    # Restricted: a file planted in the var dir must not be able to run code in the job.
    state: dict[str, Any] = safe_pickle.loads(layout.checkpoint.read_bytes())
    if state.get("version") != CHECKPOINT_VERSION:
        raise RuntimeError(
            f"{layout.checkpoint} has format {state.get('version')}, expected {CHECKPOINT_VERSION}"
        )
    return state


def _start_offsets(
    consumer: Consumer, topics: list[str], saved: Offsets | None, from_beginning: bool
) -> list[TopicPartition]:
    """Checkpoint offsets, else the group's committed ones, else the beginning (or end) of each partition."""
    parts = [
        TopicPartition(t, p)
        for t in topics
        for p in sorted(consumer.list_topics(t, timeout=10).topics[t].partitions or {})
    ]
    committed = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(parts, timeout=10)}
    out = []
    for tp in parts:
        offset = (saved or {}).get(tp.topic, {}).get(tp.partition)
        if offset is None:
            offset = committed.get((tp.topic, tp.partition), -1)
        if offset < 0:  # resolved now, so "how far behind" is known before the first message
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            offset = low if from_beginning else high
        out.append(TopicPartition(tp.topic, tp.partition, offset))
    return out


class StreamJob:
    """The consumer loop around an `OnlineJoin`; `run` until idle or `stop()`."""

    def __init__(self, settings: MonitorSettings, from_beginning: bool = True) -> None:
        self.s = settings
        self.layout = MonitorLayout(settings.var_dir)
        self.facts = MovieFacts(settings.var_dir)
        self.join = OnlineJoin(
            settings.window_s, settings.hit_window_s, settings.rating_window_s, settings.sla_ms,
            settings.lateness_s, self.facts,
        )  # fmt: skip
        self.topics = [settings.topic, settings.provenance_topic]
        self.seq = 0
        self.offsets: Offsets = {t: {} for t in self.topics}
        saved = _load_checkpoint(self.layout)
        if saved is not None:
            self.seq, self.offsets = int(saved["seq"]), saved["offsets"]
            self.join.restore(saved["join"])
        self.consumer = make_consumer(settings.group_id, extra={"fetch.max.bytes": 8 << 20})
        self.consumer.assign(
            _start_offsets(self.consumer, self.topics, saved and self.offsets, from_beginning)
        )
        self.summary = StreamSummary(messages={t: 0 for t in self.topics})
        self._stop = False
        self._window_end = 0.0

    def stop(self) -> None:
        """Ask `run` to checkpoint and return."""
        self._stop = True

    def run(
        self, until_idle_s: float | None = None, progress: Callable[[str], None] | None = None
    ) -> StreamSummary:
        """Consume until `until_idle_s` pass without a message (then drain every window) or `stop()`."""
        t0 = last_msg = last_ckpt = time.monotonic()
        self.facts.refresh()
        try:
            while not self._stop:
                msgs = self.consumer.consume(num_messages=20_000, timeout=0.5)
                now = time.monotonic()
                if msgs:
                    last_msg = now
                    self._feed(msgs)
                idle = until_idle_s is not None and now - last_msg >= until_idle_s
                if idle or now - last_ckpt >= self.s.checkpoint_s:
                    self.flush(drain=idle)
                    last_ckpt = now
                    if progress is not None:
                        progress(self.summary.describe())
                if idle:
                    break
            else:
                self.flush(drain=False)
        finally:
            self.summary.seconds = time.monotonic() - t0
            self.consumer.close()
        return self.summary

    def _feed(self, msgs: list[Any]) -> None:
        join, movielog = self.join, self.s.topic
        lines: list[bytes] = []
        counts: dict[str, int] = {}
        for msg in msgs:
            if msg.error():
                continue
            topic = msg.topic()
            self.offsets[topic][msg.partition()] = msg.offset() + 1
            counts[topic] = counts.get(topic, 0) + 1
            if topic == movielog:
                lines.append(msg.value() or b"")
            else:
                try:
                    record = json.loads(msg.value() or b"")
                except ValueError:
                    continue
                if isinstance(record, dict):
                    join.provenance(record)
        for topic, n in counts.items():  # once per topic and batch: a labelled inc per message costs
            self.summary.messages[topic] += n
            M.MESSAGES.labels(topic).inc(n)
        if not lines:
            return
        batch = parse_batch(lines)
        for _, rec in batch.recommendations:
            join.recommendation(rec.ts_ns, rec.user_id, rec.status, rec.results, rec.response_ms)
        w = batch.watch
        for ts, user, movie in zip(w.ts_ns, w.user_id, w.movie_id, strict=True):
            join.watch(ts, user, movie)
        r = batch.rate
        for ts, user, movie, stars in zip(r.ts_ns, r.user_id, r.movie_id, r.rating, strict=True):
            join.rating(ts, user, movie, stars)
        for _, account in batch.accounts:
            join.note_time(account.ts_ns)

    def flush(self, drain: bool = False) -> None:
        """Finalise, write part `seq`, checkpoint, commit; update the metrics."""
        self.facts.refresh()
        self.join.advance(drain, hold=not drain and self._provenance_behind())
        rows, ratings = self.join.take()
        write_part(self.layout.windows, self.seq, rows, WINDOW_SCHEMA)
        write_part(self.layout.ratings, self.seq, ratings, RATING_SCHEMA)
        impressions = self.join.take_impressions()
        write_tuples(self.layout.impressions, self.seq, impressions, IMPRESSION_SCHEMA)
        self.summary.impressions += len(impressions)
        state = {"version": CHECKPOINT_VERSION, "seq": self.seq + 1, "offsets": self.offsets,
                 "join": self.join.snapshot()}  # fmt: skip
        atomic_write(self.layout.checkpoint, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
        self.seq += 1
        commits = [TopicPartition(t, p, o) for t, parts in self.offsets.items() for p, o in parts.items()]
        if commits:
            try:
                self.consumer.commit(offsets=commits, asynchronous=False)
            except (
                KafkaException
            ) as exc:  # the checkpoint is the truth; the group offset only feeds lag tools
                log.warning("offset commit failed (kept in the checkpoint): %s", exc)
        self._export(rows, ratings)

    def _provenance_behind(self) -> bool:
        """True while the provenance topic has records not consumed yet (a replay, or a slow partition)."""
        topic = self.s.provenance_topic
        for partition, offset in self.offsets[topic].items():
            try:
                _, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=2)
            except Exception:  # broker slow: assume caught up rather than hold lists forever
                continue
            if offset < high:
                return True
        return False

    def _export(self, rows: list[dict[str, Any]], ratings: list[dict[str, Any]]) -> None:
        for row in rows:
            labels = (row["arm"], row["model"], row["path"])
            M.REQUESTS.labels(*labels, "ok").inc(row["available"])
            M.REQUESTS.labels(*labels, "slow").inc(row["ok"] - row["available"])
            M.REQUESTS.labels(*labels, "error").inc(row["requests"] - row["ok"])
            M.HITS.labels(*labels).inc(row["hits"])
            M.LIST_COST.labels(*labels).inc(row["list_cost_sum"])
            M.WATCH_COST.labels(*labels).inc(row["hit_cost_sum"])
            if row["ok"]:
                M.HIT_RATE.labels(*labels).set(row["hits"] / row["ok"])
            self._window_end = max(self._window_end, row["window_start"] / 1e6 + row["window_s"])
            M.WINDOW_END.set(self._window_end)
        for r in ratings:
            M.RATINGS.labels(r["arm"], r["model"], r["path"]).inc()
            M.RATING_SUM.labels(r["arm"], r["model"], r["path"]).inc(r["rating"])
        self.summary.windows += len(rows)
        self.summary.ratings += len(ratings)
        M.UNATTRIBUTED.inc(self.join.unattributed - self.summary.unattributed)
        self.summary.unattributed = self.join.unattributed
        M.CHECKPOINT_AT.set(time.time())
        for t, parts in self.offsets.items():
            for p, offset in parts.items():
                try:
                    _, high = self.consumer.get_watermark_offsets(
                        TopicPartition(t, p), timeout=1, cached=False
                    )
                except Exception:  # lag is informational: a slow broker must not stop the job
                    continue
                M.LAG.labels(t, str(p)).set(max(0, high - offset))


def run_stream(
    settings: MonitorSettings,
    until_idle_s: float | None = None,
    from_beginning: bool = True,
    progress: Callable[[str], None] | None = None,
    serve_metrics: bool = True,
) -> StreamSummary:
    """Run the job (serving /metrics unless told not to); Ctrl-C checkpoints and stops."""
    if serve_metrics:
        start_exporter(settings)
    job = StreamJob(settings, from_beginning)
    try:
        return job.run(until_idle_s, progress)
    except KeyboardInterrupt:
        return job.summary
