"""Dependencies of the API's routes, each named once: the runtime, the settings and the admin check.

They are `async def` on purpose: FastAPI runs a plain `def` dependency in its thread pool, a
thread hop per request that the recommendation path (a few milliseconds per answer) cannot
afford; these only read `app.state` and never block.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.runtime import Runtime
from serving.settings import ServingSettings


async def get_runtime(request: Request) -> Runtime:
    """The serving process's components, built by the lifespan."""
    rt: Runtime = request.app.state.rt
    return rt


async def get_settings(request: Request) -> ServingSettings:
    """The settings `create_app` was built with."""
    cfg: ServingSettings = request.app.state.settings
    return cfg


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
"""A route parameter receiving the runtime."""
SettingsDep = Annotated[ServingSettings, Depends(get_settings)]
"""A route parameter receiving the serving settings."""


async def require_admin(request: Request, cfg: SettingsDep) -> None:
    """401 unless the request carries `Authorization: Bearer <admin token>`."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if not (scheme.lower() == "bearer" and cfg.admin_token_matches(token.strip())):
        raise StarletteHTTPException(401, "admin route: send Authorization: Bearer <RECSYS_ADMIN_TOKEN>")
