"""Answering `/provenance/<request_id>`: find a record in the topic and add the registry's facts about its model.

`fetch_at` reads the one message the Redis index (`serving.provenance_index`) points at.
`find_in_topic` scans the whole topic from the beginning, O(topic size): the fallback when the
index cannot answer, bounded by the log's scan gate (and used by tests and small topics). `explain_record` adds what the model registry knows
about the model version that answered: code commit, features and training data.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING, Any, Final

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, Message, TopicPartition

from events.kafka import make_consumer
from events.settings import KafkaSettings
from events.topics import PROVENANCE
from serving.provenance_record import ProvenanceLookupTimeoutError, ProvenanceRecord

if TYPE_CHECKING:
    from ranking.registry import ModelRegistry

log = logging.getLogger(__name__)

_NOT_FOUND_ERRORS: Final = frozenset({KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC})


def _parse(msg: Message) -> ProvenanceRecord | None:
    try:
        return ProvenanceRecord.from_json(msg.value() or b"")
    except ValueError:  # pydantic's ValidationError is a ValueError
        log.warning("unreadable provenance record at %s[%s]@%s", msg.topic(), msg.partition(), msg.offset())
        return None


def find_in_topic(
    request_id: str, settings: KafkaSettings | None = None, topic: str = PROVENANCE, timeout_s: float = 5.0
) -> ProvenanceRecord | None:
    """Scan a topic from the beginning for a request id: None when the whole topic holds none.

    Cost: reads every message up to the end offsets taken at the start (O(topic size)); a
    `ProvenanceLookupTimeoutError` when `timeout_s` runs out first. A throwaway consumer with
    manual assignment: it joins no group and commits nothing.
    """
    deadline = time.monotonic() + timeout_s

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProvenanceLookupTimeoutError(f"scanning {topic} for {request_id} took over {timeout_s:g} s")
        return remaining

    consumer = make_consumer(
        f"recsys-provenance-lookup-{uuid.uuid4().hex[:12]}",
        settings,
        {"enable.partition.eof": True, "fetch.wait.max.ms": 100},
    )
    try:
        try:
            meta = consumer.list_topics(topic, timeout=left()).topics.get(topic)
        except KafkaException as exc:
            raise ProvenanceLookupTimeoutError(f"cannot read the metadata of {topic}: {exc}") from exc
        if meta is None or (meta.error is not None and meta.error.code() in _NOT_FOUND_ERRORS):
            return None
        ends: dict[int, int] = {}
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=left())
            if high > low:
                ends[p] = high
        if ends:
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        key = request_id.encode()
        while ends:
            for msg in consumer.consume(1000, timeout=min(0.5, left())):
                partition = msg.partition()
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF and partition is not None:
                        ends.pop(partition, None)
                    continue
                if msg.key() == key and (found := _parse(msg)) is not None:
                    return found
                offset = msg.offset()
                if partition is not None and offset is not None and offset + 1 >= ends.get(partition, 0):
                    ends.pop(partition, None)
        return None
    finally:
        consumer.close()


def fetch_at(
    request_id: str,
    partition: int,
    offset: int,
    settings: KafkaSettings | None = None,
    topic: str = PROVENANCE,
    timeout_s: float = 5.0,
) -> ProvenanceRecord | None:
    """Read the one message at `partition`/`offset` (from the provenance index): O(1), not a scan.

    None when that offset no longer holds this request's record (retention deleted it, or the
    index points elsewhere); `ProvenanceLookupTimeoutError` when the broker does not answer in time.
    """
    deadline = time.monotonic() + timeout_s
    consumer = make_consumer(
        f"recsys-provenance-fetch-{uuid.uuid4().hex[:12]}", settings, {"enable.partition.eof": True}
    )
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        while (left := deadline - time.monotonic()) > 0:
            msg = consumer.poll(min(0.5, left))
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() in (KafkaError._PARTITION_EOF, *_NOT_FOUND_ERRORS):
                    return None
                continue
            if msg.offset() != offset or msg.key() != request_id.encode():
                return None  # the offset is gone (retention) or holds another record
            return _parse(msg)
        raise ProvenanceLookupTimeoutError(f"reading {topic}[{partition}]@{offset} took over {timeout_s:g} s")
    finally:
        consumer.close()


def explain_record(rec: ProvenanceRecord, registry: ModelRegistry) -> dict[str, Any]:
    """A record plus the registry's facts on its model version: code commit, features, training data snapshot."""
    from ranking.registry import VersionNotFoundError

    out: dict[str, Any] = {"record": rec.to_dict(), "model": None}
    if rec.model_version is None:
        out["note"] = f"answered without a model ({rec.fallback or 'no model version recorded'})"
        return out
    if rec.model_name is not None and rec.model_name != registry.name:
        out["model"] = {
            "name": rec.model_name,
            "version": rec.model_version,
            "error": f"the registry holds model {registry.name!r}, not {rec.model_name!r}",
        }
        return out
    try:
        info = registry.show(rec.model_version)
        prov = registry.load_provenance(rec.model_version)
    except VersionNotFoundError as exc:  # deleted since: the record still answers what it can
        out["model"] = {"name": registry.name, "version": rec.model_version, "error": str(exc)}
        return out
    start, end = prov.data.time_range
    out["model"] = {
        "name": info.name,
        "version": info.version,
        "aliases": list(info.aliases),
        "run_id": info.run_id,
        "created_at": info.created_at.isoformat(),
        "metrics": info.metrics,
        "code": {"git_commit": prov.git_commit, "git_dirty": prov.git_dirty},
        "features": {
            "feature_service": prov.feature_service,
            "feast_registry_version": prov.feast_registry_version,
        },
        "training_data": {
            "files": len(prov.data.files),
            "rows": prov.data.total_rows,
            "rows_by_table": prov.data.rows,
            "time_min": start,
            "time_max": end,
            "content_hash": prov.data.content_hash,
        },
        "params": prov.params,
        "trained_at": prov.created_at,
    }
    return out
