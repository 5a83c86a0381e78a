"""Operational routes: liveness, readiness, Prometheus metrics and `/provenance/<request_id>`."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Final

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from serving import metrics as M  # noqa: N812
from serving.api.deps import RuntimeDep
from serving.api.responses import VALIDATION, Provenance, Readiness, json_body, text
from serving.provenance_record import ProvenanceError

REQUEST_ID: Final = re.compile(r"[0-9a-f]{32}")
"""A request id as the `X-Request-Id` header gives it: uuid4 hex."""

log = logging.getLogger(__name__)
router = APIRouter(tags=["ops"])


@router.get("/healthz", response_class=PlainTextResponse, responses={200: {"description": "`ok`"}})
async def healthz() -> Response:
    """Liveness: the process answers (fallback lists need nothing else)."""
    return PlainTextResponse("ok")


@router.get(
    "/readyz",
    responses={
        200: json_body(Readiness, "Ready: a model and the movie features are loaded."),
        503: json_body(Readiness, "Not ready: `checks` says what is missing."),
    },
)
async def readyz(rt: RuntimeDep) -> Response:
    """Readiness: a model and the movie features are loaded."""
    status = rt.readiness()
    M.READY.set(1 if status["ready"] else 0)
    return JSONResponse(status, status_code=200 if status["ready"] else 503)


# response_class only documents the answer: Prometheus' text format (the route sets the exact type).
@router.get(
    "/metrics", response_class=PlainTextResponse, responses={200: {"description": "Prometheus exposition."}}
)
async def metrics_route(rt: RuntimeDep) -> Response:
    """Prometheus exposition."""
    rt.export_gauges()
    body, content_type = M.render()
    return Response(body, media_type=content_type)


@router.get(
    "/provenance/{request_id}",
    responses={
        200: json_body(Provenance, "The record and its model version's provenance."),
        400: text("Not a request id: 32 lowercase hex characters, as the X-Request-Id header gives it."),
        404: text("No record of that request (not this process's, not in the index, not in the topic)."),
        422: VALIDATION,
        503: text("Lookups are busy (topic scans at their limit) or the model registry is unavailable."),
        504: text("Reading the record from the provenance topic took too long."),
    },
)
async def provenance(request_id: str, rt: RuntimeDep) -> Response:
    """Which model version answered a request, the code that trained it and the data it learned from."""
    if not REQUEST_ID.fullmatch(request_id):
        return PlainTextResponse(
            "request id must be 32 lowercase hex characters (the X-Request-Id header)", status_code=400
        )
    try:
        body = await asyncio.get_running_loop().run_in_executor(None, rt.explain, request_id)
    except ProvenanceError:
        raise  # the app's handler answers with the error's own status
    except Exception:  # the registry is down: say so, without its error text (paths, hosts) in the answer
        log.exception("provenance lookup of %s failed", request_id)
        return PlainTextResponse(
            "provenance lookup failed: the model registry is unavailable", status_code=503
        )
    return JSONResponse(body)
