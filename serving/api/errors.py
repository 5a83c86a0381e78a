"""Errors the API's routes raise; each knows its HTTP status and the app maps them all in one handler."""

from __future__ import annotations

from core.errors import RecsysError


class ApiError(RecsysError):
    """Base of the routes' errors: `http_status` is the answer's status, the message its one-line body."""

    http_status = 400


class BodyTooLargeError(ApiError):
    """The request body is larger than the route accepts."""

    http_status = 413


class InvalidBodyError(ApiError):
    """The request body is not what the route accepts (malformed JSON or the wrong shape)."""

    http_status = 422
