"""Dependencies of the API's routes, each named once: the runtime, the settings and the admin check.

They are `async def` on purpose: FastAPI runs a plain `def` dependency in its thread pool, a
thread hop per request that the recommendation path (a few milliseconds per answer) cannot
afford; these only read `app.state` and never block.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
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


ADMIN_BEARER = HTTPBearer(
    scheme_name="adminToken",
    description="RECSYS_ADMIN_TOKEN (local mode on a loopback address: the development token when unset).",
    auto_error=False,  # require_admin answers the 401 itself, in plain text like every error of the app
)
"""The admin routes' scheme; as a dependency it also puts the scheme into the OpenAPI document."""


async def require_admin(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(ADMIN_BEARER)], cfg: SettingsDep
) -> None:
    """401 unless the request carries `Authorization: Bearer <admin token>`."""
    # None: no header, an empty token or another scheme than Bearer (any case); the token comes stripped.
    if credentials is None or not cfg.admin_token_matches(credentials.credentials):
        # RFC 9110 15.5.2: a 401 names the scheme that would be accepted.
        raise StarletteHTTPException(
            401,
            "admin route: send Authorization: Bearer <RECSYS_ADMIN_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )
