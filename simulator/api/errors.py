"""API errors: each knows its HTTP status and renders as `{"error": <code>, "detail": <text>}`."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse


class ApiError(Exception):
    """Base of the metadata API's errors."""

    status_code = 500
    code = "internal_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class MalformedIdError(ApiError):
    """An id that can never exist (not a number, white space in a slug, an empty list item)."""

    status_code = 400
    code = "malformed_id"


class TooManyIdsError(ApiError):
    """More ids in one request than `api_max_ids`."""

    status_code = 400
    code = "too_many_ids"


class NotFoundError(ApiError):
    """A single requested id that does not exist (in a batch, unknown ids are per-item entries)."""

    status_code = 404
    code = "not_found"


class InjectedFaultError(ApiError):
    """A 5xx answer made on purpose by fault injection."""

    status_code = 503
    code = "injected_fault"


class WorldNotLoadedError(ApiError):
    """The world is not loaded (the app was not started through its lifespan)."""

    status_code = 503
    code = "world_not_loaded"


async def handle_api_error(_request: Request, exc: Exception) -> JSONResponse:
    """Render an ApiError as JSON with its status."""
    err = exc if isinstance(exc, ApiError) else ApiError(str(exc))
    return JSONResponse({"error": err.code, "detail": err.detail}, status_code=err.status_code)
