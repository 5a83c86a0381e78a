"""`recsys simulate` commands end to end on a tiny world (no broker: files only)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from events import ParseError, parse_line
from simulator.cli import app
from simulator.settings import get_sim_settings
from simulator.state import read_state

runner = CliRunner()


@pytest.fixture
def var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("RECSYS_VAR_DIR", str(tmp_path))
    get_sim_settings.cache_clear()
    yield tmp_path
    get_sim_settings.cache_clear()


def test_world_truth_history_and_resume(var: Path) -> None:
    r = runner.invoke(app, ["world", "--users", "300", "--movies", "60", "--seed", "3"])
    assert r.exit_code == 0, r.output
    assert json.loads((var / "sim" / "world.json").read_text())["users"] == 300
    assert (
        runner.invoke(app, ["world", "--users", "300", "--movies", "60"]).exit_code == 1
    )  # no silent overwrite

    r = runner.invoke(app, ["truth", "--user", "5", "--top", "3", "--json"])
    assert r.exit_code == 0, r.output
    top = json.loads(r.stdout)["5"]
    assert len(top) == 3 and top[0]["affinity"] >= top[1]["affinity"]
    assert runner.invoke(app, ["truth", "--user", "0"]).exit_code != 0

    args = [
        "history",
        "--days",
        "0.05",
        "--no-kafka",
        "--out",
        str(var / "logs"),
        "--start",
        "2026-01-01T00:00:00",
    ]
    r = runner.invoke(app, [*args, "--sessions-per-hour", "200", "--malformed-rate", "0.01"])
    assert r.exit_code == 0, r.output
    (path,) = (var / "logs").iterdir()
    lines = gzip.decompress(path.read_bytes()).splitlines()
    rejected = sum(isinstance(parse_line(line), ParseError) for line in lines)
    assert lines and 0 < rejected < len(lines) * 0.05
    state = read_state(var / "sim")
    assert state is not None and state.world_seed == 3

    r = runner.invoke(
        app, ["traffic", "--no-kafka", "--out", str(var / "live"), "--speed", "0", "--hours", "0.05"]
    )
    assert r.exit_code == 0, r.output
    resumed = read_state(var / "sim")
    assert resumed is not None and resumed.sim_now_ns > state.sim_now_ns  # continued where history stopped


def test_bad_input_exits_cleanly(var: Path) -> None:
    r = runner.invoke(app, ["traffic", "--no-kafka", "--out", str(var)])
    assert r.exit_code == 1 and "no world" in r.output  # no traceback
    (var / "drifts.json").write_text('[{"kind": "genre_surge", "genre": "Horrer", "start": "2026-01-01"}]')
    r = runner.invoke(
        app, ["history", "--no-kafka", "--out", str(var), "--drifts-file", str(var / "drifts.json")]
    )
    assert r.exit_code == 2 and "unknown genre" in r.output
    assert runner.invoke(app, ["traffic", "--mode", "sideways"]).exit_code == 2
