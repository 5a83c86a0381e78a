"""Done-when of issue 14 on real services: start/stop change a running service's routing without a restart,
stop returns all traffic to control, and each change is on the `recsys.experiments` topic.

Serving runs in-process on the small world of `test_serving` (its own Redis db and var dir);
`recsys experiment` is called through its CLI (typer's runner) on the file serving watches; the
service's own file watch (`Runtime.watch_experiments`, what each worker's refresher calls every
few seconds) picks the change up.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from events.kafka import make_consumer
from events.topics import EXPERIMENTS
from recsys.cli import app
from serving.app import create_app
from serving.settings import ServingSettings
from tests.integration.conftest import StackInfo
from tests.integration.test_feast_repo import db_url
from tests.integration.test_serving import build_world

pytestmark = pytest.mark.integration
TEST_DB = 14


def _arms(client: TestClient, users: range) -> dict[str, int]:
    seen: dict[str, int] = {}
    for user in users:
        answer = client.get(f"/recommend/{user}")
        assert answer.status_code == 200
        key = f"{answer.headers['X-Experiment']}/{answer.headers['X-Arm']}"
        seen[key] = seen.get(key, 0) + 1
    return seen


def test_start_and_stop_reroute_a_running_service_and_are_journalled_on_the_topic(
    stack: StackInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    var, url = tmp_path / "var", db_url(stack.redis_url, TEST_DB)
    build_world(var, url, tmp_path / "models", seeds=(1,))
    experiments = var / "experiments.yaml"
    operator = f"tester-{uuid.uuid4().hex[:6]}"
    for key, value in {"RECSYS_VAR_DIR": str(var), "RECSYS_SERVING_EXPERIMENTS_FILE": str(experiments),
                       "RECSYS_OPERATOR": operator}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    from serving.settings import get_serving_settings

    get_serving_settings.cache_clear()  # the CLI reads the file's path from the environment
    settings = ServingSettings(RECSYS_VAR_DIR=var, RECSYS_REDIS_URL=url, experiments_file=experiments,
                               registry_poll_s=5.0, movie_refresh_s=600.0)  # type: ignore[call-arg]  # fmt: skip
    cli = CliRunner()
    name = f"lam-{uuid.uuid4().hex[:6]}"
    try:
        with TestClient(create_app(settings)) as client:
            rt = client.app.state.rt  # type: ignore[attr-defined]
            assert set(_arms(client, range(1, 41))) == {"none/default"}, (
                "no file yet: everyone gets the champion"
            )

            started = cli.invoke(app, ["experiment", "start", name, "--arm", "name=control,model=champion,weight=50",
                                       "--arm", "name=treatment,model=champion,weight=50,lam=2.0",
                                       "--reason", "integration"])  # fmt: skip
            assert started.exit_code == 0, started.output
            assert "warning" not in started.output, started.output  # the topic took the change
            assert rt.watch_experiments(), "the service follows the edited file"
            split = _arms(client, range(1, 61))
            assert set(split) == {f"{name}/control", f"{name}/treatment"}, split

            refused = cli.invoke(
                app, ["experiment", "start", "other", "--arm", "name=control,model=champion"]
            )
            assert refused.exit_code == 2 and name in refused.output

            stopped = cli.invoke(app, ["experiment", "stop", name, "--reason", "enough"])
            assert stopped.exit_code == 0, stopped.output
            assert rt.watch_experiments()
            assert _arms(client, range(1, 61)) == {f"{name}/control": 60}, (
                "stop returns all traffic to control"
            )

            history = cli.invoke(app, ["experiment", "history", name])
            assert history.exit_code == 0 and "start" in history.output and "stop" in history.output
    finally:
        get_serving_settings.cache_clear()

    consumer = make_consumer(f"experiments-check-{uuid.uuid4().hex[:6]}")
    consumer.subscribe([EXPERIMENTS])
    mine: list[dict[str, object]] = []
    deadline = time.monotonic() + 30
    while len(mine) < 2 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        record = json.loads(message.value())
        if record["experiment"] == name:
            mine.append(record)
    consumer.close()
    assert [(r["action"], r["by"], r["reason"]) for r in mine] == [
        ("start", operator, "integration"), ("stop", operator, "enough")]  # fmt: skip
    assert mine[1]["after"]["stopped_at"] is not None  # type: ignore[index]
