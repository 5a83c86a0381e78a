"""What `/openapi.json` says the routes answer besides FastAPI's defaults: statuses, content types, body shapes.

The app's exception handlers (serving.app) answer HTTP errors, request validation errors and
every `RecsysError` in plain text, where FastAPI would document JSON (its `HTTPValidationError`
422 included). Routes pass these entries to `responses=` so the document describes what is
really sent; tests/unit/test_api_schema.py holds the service to it with schemathesis. The
models below only describe JSON bodies: the routes build their answers themselves, unvalidated.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from fastapi import FastAPI
from pydantic import BaseModel, Field

Responses = dict[int | str, dict[str, Any]]
"""The `responses=` argument of a route decorator."""


def text(description: str, **extra: Any) -> dict[str, Any]:
    """A plain-text answer; `extra` adds OpenAPI response fields (headers)."""
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}, **extra}


def json_body(model: type[BaseModel], description: str) -> dict[str, Any]:
    """A JSON answer shaped like `model`."""
    return {"description": description, "model": model}


VALIDATION: Final = text("Request validation failed; the app's handler answers it in plain text.")
"""Replaces the JSON 422 FastAPI documents on every route with parameters (not what the app would send)."""
UNAUTHORIZED: Final = text(
    "No admin token, another scheme or a wrong token (send `Authorization: Bearer <RECSYS_ADMIN_TOKEN>`).",
    headers={"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
)
"""The answer of every admin route without the right bearer token (serving.api.deps.require_admin)."""


class Readiness(BaseModel):
    """`GET /readyz`: whether this process serves model answers, and which check fails."""

    ready: bool
    checks: dict[str, bool] = Field(
        description=(
            "models, movie_table, feature_store: each True when loaded; cold_start_policy: False while an arm's "
            "self-description policy is on its first build."
        )
    )
    models: dict[str, int] = Field(description="Loaded model refs (champion, challenger, v<N>) -> version.")
    movies: int = Field(ge=0, description="Rows of the movie feature table.")
    table_error: str | None = Field(description="Why the last movie table read failed; null when it did not.")


class LoadedModel(BaseModel):
    """One loaded model version."""

    version: int
    loaded_at: float
    path: str


class ModelsStatus(BaseModel):
    """`GET /admin/models`: loaded versions per ref, failed loads, the last registry poll."""

    loaded: dict[str, LoadedModel]
    failed: dict[str, str] = Field(description="v<N> -> why its load failed (not retried).")
    registry_ok: bool
    last_error: str | None


class ModelsRefreshed(ModelsStatus):
    """`POST /admin/models/refresh`: the status after a poll, and whether the served versions changed."""

    changed: bool


class ExperimentsView(BaseModel):
    """`GET /admin/experiments`: the active experiment (or none), its arms and shares, the loaded models."""

    experiment: str | None
    description: str
    salt: str | None
    kind: str
    control: str
    stopped: bool
    lifecycle: dict[str, Any] | None
    arms: list[dict[str, Any]] = Field(description="Each arm's settings and its share of traffic.")
    inactive: list[str]
    source: str | None = Field(description="The experiment file loaded; null before any.")
    sha256: str | None
    loaded_at: str
    reloads: int
    models: dict[str, int]


class Reloaded(BaseModel):
    """`POST /admin/experiments/reload` done: what the new file changed."""

    reloaded: Literal[True]
    source: str
    sha256: str
    changed: bool
    previous: str | None
    current: str | None
    salt_changed: bool
    added: list[str]
    removed: list[str]
    modified: dict[str, dict[str, list[Any]]] = Field(description="Arm -> field -> [old, new].")


class ReloadRefused(BaseModel):
    """`POST /admin/experiments/reload` refused: the file is missing or invalid; the old one keeps serving."""

    reloaded: Literal[False]
    error: str


class AlertsForwarded(BaseModel):
    """`POST /admin/alerts`: how many alerts went to `recsys.alerts`."""

    forwarded: int = Field(ge=0)


class Provenance(BaseModel):
    """`GET /provenance/<request_id>`: the request's record and the registry's facts on its model version."""

    record: dict[str, Any] = Field(description="The provenance record (serving.provenance_record).")
    model: dict[str, Any] | None = Field(
        description="Code, features and training data; null without a model."
    )
    note: str | None = Field(None, description="Set when no model answered the request.")


def distinct_operation_ids(app: FastAPI) -> None:
    """Give each operation of a multi-method route its own operationId (FastAPI repeats one: GET/HEAD `/recommend`).

    Clients generated from the document key methods by operationId, so a repeated one makes them
    drop an operation; the HEAD of `/recommend/{user_id}` becomes `recommend_head`.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        first_build = app.openapi_schema is None
        schema = build()  # FastAPI caches it in app.openapi_schema: the renaming below is done once
        if first_build:
            by_id: dict[str, list[tuple[str, dict[str, Any]]]] = {}
            for path in schema.get("paths", {}).values():
                for method, operation in path.items():
                    by_id.setdefault(operation.get("operationId", ""), []).append((method, operation))
            for op_id, operations in by_id.items():
                if len(operations) > 1:  # GET keeps the id; the others get their method appended
                    for method, operation in operations:
                        if method != "get":
                            operation["operationId"] = f"{op_id}_{method}"
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
