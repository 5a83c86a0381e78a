"""The API's routers without services: HEAD and 405 answers, and the alert sink's validation and size cap."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.alert_sink import AlertForwarder
from serving.app import create_app
from serving.models import ModelManager
from serving.provenance import ProvenanceLog
from serving.routing import Router
from serving.runtime import Runtime, check_bundle
from serving.settings import ServingSettings

ADMIN = {"Authorization": "Bearer recsys-local-admin"}
ALERT: dict[str, Any] = {
    "status": "firing",
    "labels": {"alertname": "RecsysP99Slow", "severity": "page"},
    "annotations": {"summary": "p99 over 600 ms"},
    "startsAt": "2026-12-05T10:00:00.123Z",
    "endsAt": "0001-01-01T00:00:00Z",
    "generatorURL": "http://prometheus:9090/graph",
    "fingerprint": "c0ffee",
}
WEBHOOK: dict[str, Any] = {
    "version": "4",
    "groupKey": '{}:{alertname="RecsysP99Slow"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "recsys-sink",
    "groupLabels": {"alertname": "RecsysP99Slow"},
    "commonLabels": {"alertname": "RecsysP99Slow"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "alerts": [ALERT],
}


@pytest.fixture
def forwarded(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the sink hands to Kafka (the producer is replaced)."""
    sent: list[dict[str, Any]] = []

    def forward(_self: AlertForwarder, alerts: list[dict[str, Any]]) -> int:
        sent.extend(alerts)
        return len(alerts)

    monkeypatch.setattr(AlertForwarder, "forward", forward)
    return sent


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """The app on a runtime with no model, no feature store and no broker (fallback answers)."""
    settings = ServingSettings(RECSYS_VAR_DIR=tmp_path, alerts_max_bytes=64 * 1024)  # type: ignore[call-arg]
    runtime = Runtime(settings, Router(), ModelManager(lambda: None, check_bundle, 60.0), None,
                      ProvenanceLog(index_size=10))  # fmt: skip
    runtime.fallback = ["the+green+mile+1999", "spider-man+3+2007"]
    with TestClient(create_app(settings, runtime)) as c:
        yield c


def test_head_on_recommend_answers_like_get_without_a_body(client: TestClient) -> None:
    get = client.get("/recommend/42")
    head = client.head("/recommend/42")
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["X-Recommendation-Path"] == get.headers["X-Recommendation-Path"]
    assert get.text == "the+green+mile+1999,spider-man+3+2007"
    assert int(head.headers["content-length"]) == len(get.content)
    assert client.head("/recommend/abc").status_code == 400
    assert client.head("/recommend").status_code == 400


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/recommend/42", {"GET", "HEAD"}),
        ("DELETE", "/healthz", {"GET"}),
        ("PUT", "/provenance/" + "0" * 32, {"GET"}),
        ("GET", "/admin/alerts", {"POST"}),
    ],
)
def test_405_answers_carry_an_allow_header(
    client: TestClient, method: str, path: str, allowed: set[str]
) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed


def test_a_valid_webhook_is_forwarded_alert_by_alert_keeping_unknown_fields(
    client: TestClient, forwarded: list[dict[str, Any]]
) -> None:
    body = WEBHOOK | {
        "alerts": [ALERT | {"newField": 1}, ALERT | {"status": "resolved", "fingerprint": "f2"}]
    }
    response = client.post("/admin/alerts", json=body | {"futureTopLevel": True}, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json() == {"forwarded": 2}
    assert [a["fingerprint"] for a in forwarded] == ["c0ffee", "f2"]
    assert forwarded[0]["newField"] == 1 and forwarded[0]["labels"]["severity"] == "page"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"alerts": None}, "alerts"),
        ([1, 2], "object"),
        ([{"labels": "x"}], "object"),
        (WEBHOOK | {"alerts": [ALERT | {"labels": "x"}]}, "alerts.0.labels"),
        (WEBHOOK | {"alerts": [ALERT | {"labels": {"n": 1}}]}, "alerts.0.labels.n"),
        (WEBHOOK | {"alerts": [1, 2]}, "alerts.0"),
        (WEBHOOK | {"alerts": None}, "alerts"),
        (WEBHOOK | {"status": "exploded"}, "status"),
        ("not json", "body"),
    ],
)
def test_malformed_webhooks_are_a_422_with_the_reason(
    client: TestClient, forwarded: list[dict[str, Any]], body: Any, reason: str
) -> None:
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    response = client.post("/admin/alerts", content=content, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert "Alertmanager" in response.text and reason in response.text
    assert "\n" not in response.text
    assert forwarded == []


def test_a_body_over_the_cap_is_a_413_by_length_and_by_bytes_read(
    client: TestClient, forwarded: list[dict[str, Any]]
) -> None:
    huge = WEBHOOK | {"alerts": [ALERT | {"annotations": {"description": "x" * 2_000_000}}]}
    response = client.post("/admin/alerts", json=huge, headers=ADMIN)
    assert response.status_code == 413 and "65536" in response.text

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap must hold on what is read
        yield json.dumps(WEBHOOK)[:-1].encode()
        for _ in range(100):
            yield b" " * 1024

    chunked = client.post("/admin/alerts", content=chunks(), headers=ADMIN)
    assert chunked.status_code == 413, chunked.text
    assert forwarded == []
    assert client.post("/admin/alerts", json=WEBHOOK, headers=ADMIN).status_code == 200


def test_the_alert_sink_is_an_admin_route(client: TestClient, forwarded: list[dict[str, Any]]) -> None:
    assert client.post("/admin/alerts", json=WEBHOOK).status_code == 401
    assert client.post("/admin/alerts", json={"alerts": None}).status_code == 401, "auth before parsing"
    assert forwarded == []


def test_api_docs_can_be_switched_off_for_production(tmp_path: Path) -> None:
    # They map every route, admin ones included: production settings turn them off.
    on = ServingSettings(RECSYS_VAR_DIR=tmp_path)  # type: ignore[call-arg]
    off = ServingSettings(RECSYS_VAR_DIR=tmp_path, api_docs=False)  # type: ignore[call-arg]
    for settings, status in ((on, 200), (off, 404)):
        runtime = Runtime(settings, Router(), ModelManager(lambda: None, check_bundle, 60.0), None,
                          ProvenanceLog(index_size=10))  # fmt: skip
        with TestClient(create_app(settings, runtime)) as c:
            for path in ("/docs", "/redoc", "/openapi.json"):
                assert c.get(path).status_code == status, path
            assert c.get("/healthz").status_code == 200


def test_a_failing_provenance_lookup_does_not_leak_the_error_text(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(_self: Runtime, _request_id: str) -> dict[str, Any]:
        raise OSError("sqlite:////srv/secret/path/mlflow.db: unable to open database file")

    monkeypatch.setattr(Runtime, "explain", explode)
    resp = client.get("/provenance/" + "a" * 32)
    assert resp.status_code == 503
    assert "registry is unavailable" in resp.text and "secret" not in resp.text and "sqlite" not in resp.text


def test_a_request_whose_feature_read_used_its_budget_answers_the_fallback(tmp_path: Path) -> None:
    import asyncio

    from prometheus_client import REGISTRY

    class SlowUsers:
        async def get(self, _user_id: int) -> dict[str, Any]:
            await asyncio.sleep(0.05)
            return {}

        async def aclose(self) -> None:
            return None

    def budget_fallbacks() -> float:
        return REGISTRY.get_sample_value("recsys_fallback_total", {"reason": "budget_exceeded"}) or 0.0

    for budget_ms, over in ((10.0, True), (5_000.0, False)):
        settings = ServingSettings(RECSYS_VAR_DIR=tmp_path, request_budget_ms=budget_ms)  # type: ignore[call-arg]
        runtime = Runtime(settings, Router(), ModelManager(lambda: None, check_bundle, 60.0), None,
                          ProvenanceLog(index_size=10))  # fmt: skip
        runtime.fallback = ["the+green+mile+1999"]
        runtime.users = SlowUsers()  # type: ignore[assignment]
        before = budget_fallbacks()
        with TestClient(create_app(settings, runtime)) as c:
            answer = c.get("/recommend/42")
        assert answer.status_code == 200 and answer.headers["X-Recommendation-Path"] == "fallback"
        # Over budget: counted as such (the start-up warm-up requests count too); else "no_model" (none here).
        assert (budget_fallbacks() - before >= 1) if over else (budget_fallbacks() == before), budget_ms
