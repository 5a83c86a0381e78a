"""Admin routes (bearer token): experiments view and reload, models view and refresh, the alert sink."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from serving.api.alert_payload import parse_webhook, read_capped
from serving.api.deps import RuntimeDep, SettingsDep, require_admin
from serving.experiments import ExperimentFileError

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


@router.get("/experiments")
async def experiments(rt: RuntimeDep) -> Response:
    """The active experiment, its arms and shares."""
    return JSONResponse(rt.router.describe() | {"models": rt.models.available()})


@router.post("/experiments/reload")
async def reload_experiments(rt: RuntimeDep, cfg: SettingsDep) -> Response:
    """Validate and load the experiment file again; an invalid file is refused and the old one serves."""
    try:
        summary = rt.router.reload(cfg.experiments_file)
    except ExperimentFileError as exc:
        return JSONResponse({"reloaded": False, "error": str(exc)}, status_code=exc.http_status)
    rt.pin_from_router()
    return JSONResponse({"reloaded": True, **summary.to_dict()})


@router.get("/models")
async def models(rt: RuntimeDep) -> Response:
    """Loaded versions per ref, failed loads, last registry poll."""
    return JSONResponse(rt.models_status())


@router.post("/models/refresh")
async def refresh_models(rt: RuntimeDep) -> Response:
    """Poll the registry now instead of at the next interval."""
    changed = await asyncio.get_running_loop().run_in_executor(None, rt.models.refresh)
    return JSONResponse({"changed": changed, **rt.models_status()})


@router.post("/alerts")
async def alerts(request: Request, rt: RuntimeDep, cfg: SettingsDep) -> Response:
    """Alertmanager's webhook: validate the payload (422, 413 above the size cap), forward each alert to `recsys.alerts`."""
    payload = parse_webhook(await read_capped(request, cfg.alerts_max_bytes))
    count = rt.alerts.forward([alert.model_dump(mode="json") for alert in payload.alerts])
    return JSONResponse({"forwarded": count})
