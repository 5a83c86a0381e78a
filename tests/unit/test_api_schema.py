"""The API against its own OpenAPI document: schemathesis on every operation, admin auth, routes listed.

schemathesis generates requests from `/openapi.json` and sends them to the in-process ASGI app;
every answer must be no 5xx and have a documented status, content type, headers and body shape,
and a method the path does not serve must be a 405 with `Allow`. The app runs on a model-less
runtime without services, as in test_serving_api.py (fallback lists), and reaches neither Kafka
nor Redis: provenance stays in memory (no drain, a topic scan finds nothing), alerts are counted
instead of produced, and Redis is a closed port (the table refresher's polls fail at once).

The document is read when the module is imported, as `schema.parametrize()` needs it to make one
test per operation (`schemathesis.pytest.from_fixture` would wait for a fixture, but schemathesis
4.32 sets `Function._nodeid`, which pytest 9 no longer has). It is read from an app that never
starts, not with `from_asgi`: schemathesis' own client starts the lifespan of the app it calls and
its pytest plugin ends it after every test, while a Runtime starts once (its provenance log cannot
reopen). So a module fixture runs the served app's lifespan once and the generated requests reach
it in-process through a schemathesis client that is never entered (entering starts a lifespan).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import (
    CheckFunction,
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from schemathesis.python.asgi import ASGIClient
from starlette.routing import BaseRoute

from serving.alert_sink import AlertForwarder
from serving.app import create_app
from serving.models import ModelManager
from serving.provenance import ProvenanceLog
from serving.routing import Router
from serving.runtime import Runtime, check_bundle
from serving.settings import DEV_ADMIN_TOKEN, ServingSettings

ADMIN: Final = {"Authorization": f"Bearer {DEV_ADMIN_TOKEN}"}
"""The local-mode admin token on a loopback host (the settings' default)."""
CHECKS: Final[list[CheckFunction]] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    unsupported_method,
]
"""No 5xx; a documented status, content type, headers and body shape; 405 + Allow for other methods."""
ANSWER_CHECKS: Final = [check for check in CHECKS if check is not unsupported_method]
"""The checks of one answer to a hand-made case (the 405 check needs a generated case)."""
ADMIN_ROUTES: Final = (
    ("GET", "/admin/experiments"),
    ("POST", "/admin/experiments/reload"),
    ("GET", "/admin/models"),
    ("POST", "/admin/models/refresh"),
    ("POST", "/admin/alerts"),
)
NOT_DOCUMENTED: Final = {
    # The empty-id forms of /recommend only answer a 400; the document lists the real operation.
    ("/recommend", "GET"), ("/recommend", "HEAD"), ("/recommend/", "GET"), ("/recommend/", "HEAD"),
    # FastAPI's own documentation pages.
    ("/openapi.json", "GET"), ("/openapi.json", "HEAD"), ("/docs", "GET"), ("/docs", "HEAD"),
    ("/docs/oauth2-redirect", "GET"), ("/docs/oauth2-redirect", "HEAD"), ("/redoc", "GET"), ("/redoc", "HEAD"),
}  # fmt: skip
"""Routes the app serves that `/openapi.json` leaves out on purpose."""
DOCUMENTED_STATUSES: Final = {
    ("/recommend/{user_id}", "get"): {"200", "400", "422"},
    ("/recommend/{user_id}", "head"): {"200", "400", "422"},
    ("/healthz", "get"): {"200"},
    ("/readyz", "get"): {"200", "503"},
    ("/metrics", "get"): {"200"},
    ("/provenance/{request_id}", "get"): {"200", "400", "404", "422", "503", "504"},
    ("/admin/experiments", "get"): {"200", "401"},
    ("/admin/experiments/reload", "post"): {"200", "401", "422"},
    ("/admin/models", "get"): {"200", "401"},
    ("/admin/models/refresh", "post"): {"200", "401"},
    ("/admin/alerts", "post"): {"200", "401", "413", "422"},
}
"""Each operation's answers, as the routes and the app's exception handlers give them."""
JSON_ERRORS: Final = {("/readyz", "503"), ("/admin/experiments/reload", "422")}
"""The only non-200 answers with a JSON body; every other one is the handlers' plain text."""
WEBHOOK: Final[dict[str, Any]] = {
    "status": "firing",
    "receiver": "recsys-sink",
    "alerts": [{"status": "firing", "labels": {"alertname": "RecsysP99Slow"}, "fingerprint": "c0ffee"}],
}


class MemoryProvenanceLog(ProvenanceLog):
    """Provenance kept in the in-memory index: the drain produces nothing, a topic scan finds nothing."""

    def _run(self) -> None:
        """The drain thread's loop (and the flush at close), replaced: no producer, no broker."""

    def find_in_topic(self, request_id: str, timeout_s: float = 5.0) -> None:
        """The topic scan of a request id not in memory: not there (a 404), without a consumer."""


class CountingForwarder(AlertForwarder):
    """The alert sink's Kafka side, replaced: keeps what it would send."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, Any]] = []

    def forward(self, alerts: list[dict[str, Any]]) -> int:
        """Keep the alerts instead of producing them."""
        self.sent.extend(alerts)
        return len(alerts)


def build_app(var_dir: Path, **overrides: Any) -> FastAPI:
    """The app on a runtime with no model, no feature store and no broker (fallback answers)."""
    settings = ServingSettings(RECSYS_VAR_DIR=var_dir, RECSYS_REDIS_URL="redis://127.0.0.1:1/0",  # type: ignore[call-arg]
                               auto_rebuild=False, alerts_max_bytes=64 * 1024, **overrides)  # fmt: skip
    runtime = Runtime(settings, Router(), ModelManager(lambda: None, check_bundle, 60.0), None,
                      MemoryProvenanceLog(index_size=100), alerts=CountingForwarder())  # fmt: skip
    runtime.fallback = ["the+green+mile+1999", "spider-man+3+2007"]
    return create_app(settings, runtime)


SCHEMA = schemathesis.openapi.from_dict(create_app(ServingSettings(api_docs=True)).openapi())
"""The app's own document (the app is only built: no lifespan, no runtime)."""
BASE_URL: Final = "http://testserver"
"""Where the generated requests go: the in-process client answers any host."""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ASGIClient]:
    """A client of an app whose lifespan runs for the whole module (Hypothesis refuses per-test fixtures)."""
    app = build_app(tmp_path_factory.mktemp("served"))
    with TestClient(app):  # the lifespan: the runtime on app.state, started once, stopped at the end
        yield ASGIClient(app)  # type: ignore[arg-type]  # its ASGI alias is stricter than Starlette's


@SCHEMA.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case: Case[Any], served: ASGIClient) -> None:
    # The model-less runtime is never ready: /readyz's documented 503. A 500 there still fails conformance.
    checks = (
        [c for c in CHECKS if c is not not_a_server_error] if case.operation.path == "/readyz" else CHECKS
    )
    # With the admin token: generated requests reach the admin routes' work, not only their 401.
    case.call_and_validate(base_url=BASE_URL, session=served, headers=ADMIN, checks=checks)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """A client of a fresh app (its lifespan run)."""
    with TestClient(build_app(tmp_path)) as c:
        yield c


def conforms(method: str, path: str, response: Any, **case: Any) -> None:
    """Assert that an answer is what the document says `method path` answers."""
    SCHEMA[path][method].Case(**case).validate_response(response, checks=ANSWER_CHECKS)


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-the-admin-token", f"Basic {DEV_ADMIN_TOKEN}", "Bearer ", DEV_ADMIN_TOKEN],
    ids=["no-token", "wrong-token", "wrong-scheme", "empty-token", "no-scheme"],
)
def test_admin_routes_answer_401_without_the_token(
    client: TestClient, method: str, path: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.request(
        method, path, headers=headers, json=WEBHOOK if path == "/admin/alerts" else None
    )
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    conforms(method, path, response)
    rt: Runtime = client.app.state.rt  # type: ignore[attr-defined]
    assert rt.alerts.sent == [] and rt.router.reloads == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_admin_routes_answer_as_documented_with_the_token(client: TestClient, method: str, path: str) -> None:
    body = WEBHOOK if path == "/admin/alerts" else None
    response = client.request(method, path, headers=ADMIN, json=body)
    assert response.status_code == 200, response.text
    conforms(method, path, response)


def test_admin_routes_declare_the_bearer_scheme(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert [(s["type"], s["scheme"]) for s in schemes.values()] == [("http", "bearer")]
    for method, path in ADMIN_ROUTES:
        assert spec["paths"][path][method.lower()]["security"] == [{name: []} for name in schemes]
    assert all("security" not in op for path, ops in spec["paths"].items() if not path.startswith("/admin")
               for op in ops.values())  # fmt: skip


def _served(routes: list[BaseRoute]) -> set[tuple[str, str]]:
    """(path, method) of every route, into included routers (FastAPI 0.16x keeps each as one route)."""
    served: set[tuple[str, str]] = set()
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            served |= _served(included.routes)
        else:
            served |= {(getattr(route, "path", ""), m) for m in getattr(route, "methods", None) or ()}
    return served


def _hidden(routes: list[BaseRoute]) -> set[str]:
    """Paths of the API routes left out of the document, into included routers."""
    hidden: set[str] = set()
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            hidden |= _hidden(included.routes)
        elif isinstance(route, APIRoute) and not route.include_in_schema:
            hidden.add(route.path)
    return hidden


def test_openapi_lists_every_route_the_app_serves(client: TestClient) -> None:
    app: FastAPI = client.app  # type: ignore[assignment]
    spec = client.get("/openapi.json").json()
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    served = _served(app.routes)
    assert documented == served - NOT_DOCUMENTED
    assert served >= NOT_DOCUMENTED, "a route left out on purpose is gone: update NOT_DOCUMENTED"
    assert _hidden(app.routes) == {"/recommend", "/recommend/"}


def test_each_operation_has_its_own_operation_id(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    recommend = spec["paths"]["/recommend/{user_id}"]
    assert (recommend["get"]["operationId"], recommend["head"]["operationId"]) == (
        "recommend",
        "recommend_head",
    )


def test_openapi_documents_each_operations_answers(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    responses = {
        (path, method): op["responses"] for path, ops in spec["paths"].items() for method, op in ops.items()
    }
    assert {op: set(answers) for op, answers in responses.items()} == DOCUMENTED_STATUSES
    for (path, method), answers in responses.items():
        for code, answer in answers.items():
            if code != "200" and (path, code) not in JSON_ERRORS:
                assert list(answer["content"]) == ["text/plain"], (path, method, code)


def test_a_served_request_has_documented_provenance(client: TestClient) -> None:
    answer = client.get("/recommend/42")
    conforms("GET", "/recommend/{user_id}", answer, path_parameters={"user_id": "42"})
    request_id = answer.headers["X-Request-Id"]
    response = client.get(f"/provenance/{request_id}")
    assert response.status_code == 200, response.text
    assert response.json()["record"]["result"] == answer.text.split(",")
    conforms("GET", "/provenance/{request_id}", response, path_parameters={"request_id": request_id})


@pytest.mark.parametrize(("request_id", "status"), [("f" * 32, 404), ("F" * 32, 400), ("not-an-id", 400)])
def test_provenance_misses_and_bad_ids_answer_as_documented(
    client: TestClient, request_id: str, status: int
) -> None:
    response = client.get(f"/provenance/{request_id}")
    assert response.status_code == status, response.text
    conforms("GET", "/provenance/{request_id}", response, path_parameters={"request_id": request_id})


def test_refused_reload_and_oversized_alerts_answer_as_documented(tmp_path: Path) -> None:
    with TestClient(build_app(tmp_path, experiments_file=tmp_path / "missing.yaml")) as c:
        refused = c.post("/admin/experiments/reload", headers=ADMIN)
        assert refused.status_code == 422 and refused.json()["reloaded"] is False
        conforms("POST", "/admin/experiments/reload", refused)
        huge = WEBHOOK | {"commonAnnotations": {"description": "x" * 100_000}}
        too_large = c.post("/admin/alerts", headers=ADMIN, json=huge)
        assert too_large.status_code == 413, too_large.text
        conforms("POST", "/admin/alerts", too_large)
