"""Guard rails on real windows: simulated users call the real API under an experiment, the online metrics job
builds the windows from Kafka, and a treatment breaking its rail is stopped, routed to control and alerted.

The API has no model, so every answer is its stored fallback list: a treatment whose fallback ratio
is 1.0 against a 0.05 rail, a realistic failure (a treatment whose model does not serve). Control
answers the same way; its breach is reported, never acted on (stopping cannot fix control).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest

from events.kafka import make_consumer
from events.topics import ALERTS
from monitoring.settings import MonitorSettings
from monitoring.stream import run_stream
from recsys.experiment_guard import check
from recsys.experiment_lifecycle import ExperimentBook
from recsys.services import ServiceProcess, recommender_api
from serving.experiments import Arm, Experiment, Guardrails
from simulator.clock import SimClock
from simulator.recommend import RecommendClient
from simulator.run import drive
from simulator.settings import SimSettings
from simulator.sinks import KafkaSink
from simulator.store import save_world
from simulator.traffic import Traffic
from simulator.world import World, generate_world
from tests.integration.conftest import StackInfo, free_port, wait_until
from tests.integration.test_feast_repo import db_url

pytestmark = pytest.mark.integration
START_NS = 1_781_000_000 * 10**9


@pytest.fixture
def api(stack: StackInfo, tmp_path: Path) -> Iterator[tuple[Path, str, World, ExperimentBook]]:
    """A model-less API (fallback answers) watching an experiment file under its var dir."""
    var = tmp_path / "var"
    world = generate_world(400, 800, seed=6)
    save_world(world, var / "sim")
    popular = [world.catalog.slug[i] for i in np.argsort(-world.catalog.popularity)[:60]]
    (var / "serving").mkdir(parents=True)
    (var / "serving" / "fallback.json").write_text(json.dumps({"movies": popular, "written_at": time.time()}))
    experiments = var / "experiments.yaml"
    experiments.write_text("experiments: []\n")
    book = ExperimentBook(experiments, var, publish=False)
    port = free_port()
    service: ServiceProcess = recommender_api(var, port=port, workers=1, until_ready=False)
    env = {"RECSYS_VAR_DIR": str(var), "RECSYS_REDIS_URL": db_url(stack.redis_url, 8),
           "RECSYS_SERVING_EXPERIMENTS_FILE": str(experiments)}  # fmt: skip
    try:
        service.up(env=env, timeout_s=120)
    except Exception as e:
        raise AssertionError(f"the API did not start:\n{service.log_tail()}") from e
    yield var, f"http://127.0.0.1:{port}", world, book
    service.down()


def _arms_seen(url: str, users: range) -> dict[str, int]:
    seen: dict[str, int] = {}
    with httpx.Client(timeout=5) as client:
        for user in users:
            arm = client.get(f"{url}/recommend/{user}").headers.get("X-Arm", "?")
            seen[arm] = seen.get(arm, 0) + 1
    return seen


def test_a_breaking_treatment_is_stopped_routed_to_control_and_paged_from_real_windows(
    api: tuple[Path, str, World, ExperimentBook], topic: str
) -> None:
    var, url, world, book = api
    name = f"guard-{uuid.uuid4().hex[:6]}"
    rails = Guardrails(fallback_ratio_max=0.05, min_requests=30)
    experiment = Experiment(name=name, salt=name, guardrails=rails,
                            arms=(Arm(name="control", weight=1), Arm(name="treatment", weight=1)))  # fmt: skip
    # Started in the stream's log time (the simulated lines' clock), which the windows use.
    book.start(experiment, "tester", at=datetime.fromtimestamp(START_NS / 1e9, UTC))
    wait_until(lambda: "treatment" in _arms_seen(url, range(1, 41)), 30, "the API to split users")

    settings = SimSettings(  # type: ignore[call-arg]
        RECSYS_VAR_DIR=var, sessions_per_hour=1500.0, speed=0.0, topic=topic, closed_loop_concurrency=4
    )
    client = RecommendClient(url, 2000, 4)
    traffic = Traffic(
        world, settings, "closed", START_NS, recommender=client, clock=SimClock(START_NS, 0.0), seed=3
    )
    try:
        stats = drive(traffic, [KafkaSink(topic)], until_ns=START_NS + 3600 * 10**9, progress=False).stats
    finally:
        client.close()
    assert stats.requests > 400, stats.requests
    monitor = MonitorSettings(  # type: ignore[call-arg]
        RECSYS_VAR_DIR=var, topic=topic, group_id=f"test-guard-{uuid.uuid4().hex[:8]}",
        metrics_port=0, checkpoint_s=1.0, lateness_s=0,
    )  # fmt: skip
    run_stream(monitor, until_idle_s=4.0, serve_metrics=False)

    result = check(book)  # publishes the page to recsys.alerts
    assert result is not None, "the experiment was running"
    health = {h.arm: h for h in result.health}
    assert health["treatment"].judged and health["treatment"].fallback_ratio == pytest.approx(1.0)
    assert result.stopped is not None and result.alert is not None, health
    assert result.alert["labels"]["arm"] == "treatment", "a control breach is reported, not acted on"
    assert book.get(name).stopped_at is not None and book.running() is None

    # Every worker follows the file within seconds: all traffic back to control.
    wait_until(lambda: _arms_seen(url, range(1, 61)) == {"control": 60}, 30, "all users routed to control")

    consumer = make_consumer(f"guard-alerts-{uuid.uuid4().hex[:6]}")
    consumer.subscribe([ALERTS])
    page = None
    deadline = time.monotonic() + 30
    while page is None and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        alert = json.loads(message.value() or b"{}")
        if alert.get("fingerprint") == f"guardrail-{name}":
            page = alert
    consumer.close()
    assert page is not None, "the guard's page is on recsys.alerts"
    assert (
        page["labels"]["alertname"] == "ExperimentGuardrailBreached" and page["labels"]["severity"] == "page"
    )
    assert "fallback ratio 1.000" in page["annotations"]["description"]
