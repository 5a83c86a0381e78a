"""The recommendation API: `create_app()` builds the FastAPI app; its lifespan loads everything before traffic.

Routers per resource (`serving.api`): `recommend` (`GET /recommend/<userid>`, text/plain, up to
20 ids), `ops` (`/healthz`, `/readyz`, `/metrics`, `/provenance/<request_id>`) and `admin`
(bearer token: experiments view and reload, models view and refresh, the Alertmanager sink
`POST /admin/alerts`). This module only wires them: lifespan, exception handlers, routers.
The request path never raises to the client: every failure degrades to the fallback list.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import RecsysError
from core.noise import quiet_third_party
from serving.api import admin, ops, recommend
from serving.api.recommend import KEY_FEATURES, USER_ID, answer
from serving.api.responses import distinct_operation_ids
from serving.loop_watch import LoopWatch
from serving.runtime import Runtime
from serving.settings import ServingSettings, get_serving_settings

__all__ = ["KEY_FEATURES", "USER_ID", "answer", "create_app", "warm_up"]

log = logging.getLogger(__name__)


def create_app(settings: ServingSettings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """The API; `runtime` injects prepared components (tests), else the lifespan builds them from settings."""
    quiet_third_party()  # every uvicorn worker builds the app here: no Feast/httpx/MLflow chatter in its log
    cfg = settings or get_serving_settings()
    cfg.check_admin_token()  # outside local mode an unusable token stops the start here

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt: Runtime = runtime if runtime is not None else await asyncio.to_thread(Runtime.build, cfg)
        app.state.rt = rt
        rt.start()
        await warm_up(app)
        gc.collect()
        gc.freeze()  # warm-up objects leave the collector's view: no multi-ms pauses under load
        watch = LoopWatch(cfg.loop_stall_ms)
        watch.start()
        try:
            yield
        finally:
            watch.stop()
            if rt.users is not None:
                await rt.users.aclose()
            if rt.cold.inline is not None:
                await rt.cold.inline.aclose()
            rt.stop()

    docs = cfg.api_docs
    app = FastAPI(title="recsys", summary="Movie recommendations under a 600 ms SLA", lifespan=lifespan,
                  docs_url="/docs" if docs else None, redoc_url="/redoc" if docs else None,
                  openapi_url="/openapi.json" if docs else None)  # fmt: skip
    app.state.settings = cfg
    distinct_operation_ids(app)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        return PlainTextResponse(f"invalid request: {first.get('msg', 'malformed')}", status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        # exc.headers carries e.g. the `Allow` of a 405 (RFC 9110 15.5.6 requires it).
        return PlainTextResponse(str(exc.detail), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RecsysError)
    async def _recsys(_request: Request, exc: RecsysError) -> Response:
        # Every platform error knows its status (core.errors): routes only raise.
        return PlainTextResponse(str(exc), status_code=exc.http_status)

    app.include_router(recommend.router)
    app.include_router(ops.router)
    app.include_router(admin.router)
    return app


async def warm_up(app: FastAPI) -> None:
    """Run a few requests through the whole path so first real requests do not pay for lazy imports."""
    rt: Runtime = app.state.rt
    for user_id in rt.warm_up_users():
        try:
            await answer(rt, user_id, time.perf_counter())
        except Exception:  # warm-up must never stop the start
            log.exception("warm-up request failed")
