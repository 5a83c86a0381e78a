"""Alertmanager's webhook payload (version 4) as pydantic models, and a body reader with a size cap.

The sink `POST /admin/alerts` validates what it receives before forwarding anything: a body
that is not this shape is a 422 naming the first problem, one above the cap a 413. Fields
Alertmanager may add in later versions are kept (`extra="allow"`) and forwarded as received.
See https://prometheus.io/docs/alerting/latest/configuration/#webhook_config.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serving.api.errors import BodyTooLargeError, InvalidBodyError

MAX_REASONS: Final = 3
"""Validation problems named in a 422 (the body stays one short line)."""


class Alert(BaseModel):
    """One alert of a webhook notification."""

    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime | None = None  # noqa: N815 (Alertmanager's field names)
    endsAt: datetime | None = None  # noqa: N815
    generatorURL: str = ""  # noqa: N815
    fingerprint: str = ""


class AlertmanagerWebhook(BaseModel):
    """A webhook notification: one alert group."""

    model_config = ConfigDict(extra="allow")

    version: str = "4"
    groupKey: str = ""  # noqa: N815
    truncatedAlerts: int = Field(0, ge=0)  # noqa: N815
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    commonLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    commonAnnotations: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    externalURL: str = ""  # noqa: N815
    alerts: list[Alert]


def _inline_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON Schema with its `$defs` references replaced by the definitions themselves."""
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    inlined: dict[str, Any] = inline(schema)
    return inlined


WEBHOOK_BODY: Final = {
    "required": True,
    # Inlined: inside an OpenAPI document `#/$defs/...` would resolve against the document, not the schema.
    "content": {"application/json": {"schema": _inline_defs(AlertmanagerWebhook.model_json_schema())}},
}
"""The sink's request body for the OpenAPI document (the route reads the raw body, so FastAPI cannot infer it)."""


async def read_capped(request: Request, max_bytes: int) -> bytes:
    """The request body, refused (BodyTooLargeError) above `max_bytes` by Content-Length or by the bytes read."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidBodyError(f"Content-Length must be a byte count, got {declared[:20]!r}")
        if int(declared) > max_bytes:
            raise BodyTooLargeError(f"body of {int(declared)} bytes is over the limit of {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():  # chunked bodies carry no Content-Length: count as we read
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLargeError(f"body is over the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_webhook(body: bytes) -> AlertmanagerWebhook:
    """Validate a webhook body; InvalidBodyError naming the first `MAX_REASONS` problems (where and what)."""
    try:
        return AlertmanagerWebhook.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors()
        reasons = [
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in errors[:MAX_REASONS]
        ]
        more = f" (+{len(errors) - MAX_REASONS} more)" if len(errors) > MAX_REASONS else ""
        raise InvalidBodyError(f"not Alertmanager's webhook payload: {'; '.join(reasons)}{more}") from None
