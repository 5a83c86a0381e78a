"""Admin routes (bearer token): experiments view and reload, models view and refresh, the alert sink."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from serving.api.alert_payload import WEBHOOK_BODY, parse_webhook, read_capped
from serving.api.deps import RuntimeDep, SettingsDep, require_admin
from serving.api.responses import (
    UNAUTHORIZED,
    AlertsForwarded,
    ExperimentsView,
    ModelsRefreshed,
    ModelsStatus,
    Reloaded,
    ReloadRefused,
    json_body,
    text,
)
from serving.experiments import ExperimentFileError

router = APIRouter(
    prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)], responses={401: UNAUTHORIZED}
)


@router.get("/experiments", responses={200: json_body(ExperimentsView, "The experiment view.")})
async def experiments(rt: RuntimeDep) -> Response:
    """The active experiment, its arms and shares."""
    return JSONResponse(rt.router.describe() | {"models": rt.models.available()})


@router.post(
    "/experiments/reload",
    responses={
        200: json_body(Reloaded, "The file was valid and now serves."),
        422: json_body(ReloadRefused, "The file is missing or invalid; the old one keeps serving."),
    },
)
async def reload_experiments(rt: RuntimeDep, cfg: SettingsDep) -> Response:
    """Validate and load the experiment file again; an invalid file is refused and the old one serves."""
    try:
        summary = rt.router.reload(cfg.experiments_file)
    except ExperimentFileError as exc:
        return JSONResponse({"reloaded": False, "error": str(exc)}, status_code=exc.http_status)
    rt.pin_from_router()
    return JSONResponse({"reloaded": True, **summary.to_dict()})


@router.get("/models", responses={200: json_body(ModelsStatus, "The model status.")})
async def models(rt: RuntimeDep) -> Response:
    """Loaded versions per ref, failed loads, last registry poll."""
    return JSONResponse(rt.models_status())


@router.post(
    "/models/refresh", responses={200: json_body(ModelsRefreshed, "The model status after the poll.")}
)
async def refresh_models(rt: RuntimeDep) -> Response:
    """Poll the registry now instead of at the next interval."""
    changed = await asyncio.get_running_loop().run_in_executor(None, rt.models.refresh)
    return JSONResponse({"changed": changed, **rt.models_status()})


@router.post(
    "/alerts",
    responses={
        200: json_body(AlertsForwarded, "Every alert was handed to the producer."),
        413: text("The body is over `RECSYS_SERVING_ALERTS_MAX_BYTES` (by Content-Length or by bytes read)."),
        422: text("Not Alertmanager's webhook payload (names the first problems), or a bad Content-Length."),
    },
    # The route reads the body itself (auth first, then a size cap): FastAPI cannot see it, so say it here.
    openapi_extra={"requestBody": WEBHOOK_BODY},
)
async def alerts(request: Request, rt: RuntimeDep, cfg: SettingsDep) -> Response:
    """Alertmanager's webhook: validate the payload (422, 413 above the size cap), forward each alert to `recsys.alerts`."""
    payload = parse_webhook(await read_capped(request, cfg.alerts_max_bytes))
    count = rt.alerts.forward([alert.model_dump(mode="json") for alert in payload.alerts])
    return JSONResponse({"forwarded": count})
