"""One provenance record: what answered a request and how, its JSON form, and the feature hash it carries.

Split from `serving.provenance` (the delivery log) so readers of the topic (monitoring, the
lookup) need neither a producer nor its threads.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from pydantic import TypeAdapter

from core.errors import RecsysError


class ProvenanceError(RecsysError):
    """Base of provenance errors; `http_status` is what the provenance route answers with."""

    http_status = 500


class ProvenanceNotFoundError(ProvenanceError):
    """No record with that request id in the index or the topic."""

    http_status = 404


class ProvenanceBusyError(ProvenanceError):
    """Every allowed topic scan is running (the index could not answer): try again later."""

    http_status = 503


class ProvenanceLookupTimeoutError(ProvenanceError, TimeoutError):
    """The topic scan ran out of time before reaching the end: the record may still exist."""

    http_status = 504


def _new_request_id() -> str:
    return uuid.uuid4().hex


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvenanceRecord:
    """What answered one request and how: serialised as one compact JSON object (slots: ~1 KB in memory)."""

    request_id: str = field(default_factory=_new_request_id)
    """uuid4 hex; the Kafka key and the id `/provenance/<request_id>` takes."""
    ts: str = field(default_factory=_utc_now)
    """When the answer was given, ISO 8601 UTC with milliseconds."""
    user_id: int
    experiment: str | None
    """Active experiment (None: no experiment enabled)."""
    arm: str
    model_name: str | None
    """Registered model name (None: answered without a model)."""
    model_version: int | None
    model_ref: str | None = None
    """Alias or pin that served (`champion`, `challenger`, `v7`)."""
    lam: float | None = None
    """Cost penalty λ applied."""
    feature_service: str | None = None
    features_hash: str | None = None
    """SHA-256 of the user's feature values (`hash_features`), None when no features were read."""
    candidate_sources: dict[str, int] = field(default_factory=dict)
    """Candidate generator -> candidates it contributed, e.g. {"pop": 50, "als": 70}."""
    cold_start: str | None = None
    """Cold-start policy used (the user had no history), else None."""
    result: list[str] = field(default_factory=list)
    """Movie ids answered, best first."""
    fallback: str | None = None
    """Why the answer is not the arm's normal path (model missing, timeout...); None when it is."""
    latency_ms: float
    """Server-side time from request to answer."""
    status: int = 200
    """HTTP status answered."""
    interleave: dict[str, Any] | None = None
    """An interleaved answer's teams: `{"teams": "ABBA…" (one per `result` position), "a", "b" (arm names),
    "a_version", "b_version"}`; None for every other answer (last, defaulted: older records still parse)."""

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON (no spaces), field order as declared."""
        return _RECORD.dump_json(self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: bytes | str) -> ProvenanceRecord:
        """Parse and validate a record (unknown keys from newer writers are ignored)."""
        return _RECORD.validate_json(data)


_RECORD: Final = TypeAdapter(ProvenanceRecord)


class SupportsToBytes(Protocol):
    """An array-like with a `tobytes()` (numpy arrays)."""

    def tobytes(self) -> bytes:
        """The raw bytes."""
        ...


def hash_features(values: Mapping[str, Any] | bytes | SupportsToBytes) -> str:
    """SHA-256 hex of a feature vector: canonical JSON of a mapping, raw bytes, or an array's dtype, shape and bytes."""
    if isinstance(values, bytes):
        data = values
    elif isinstance(values, Mapping):
        # Sorted keys, no spaces, numpy scalars as Python numbers: equal values, equal hash.
        data = json.dumps(values, sort_keys=True, separators=(",", ":"), default=_plain).encode()
    else:
        # Same bytes as float32 or as float64 are different vectors: the dtype and shape go in too.
        header = f"{getattr(values, 'dtype', '')}{getattr(values, 'shape', '')}".encode()
        data = header + values.tobytes()
    return hashlib.sha256(data).hexdigest()


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars
    return item() if callable(item) else str(value)
