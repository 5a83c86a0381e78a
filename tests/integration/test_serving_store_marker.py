"""Serving reads the online store's marker: an emptied Redis is exported and a rebuild is started, once."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import redis

from feature_repo import online_marker
from serving import metrics as M  # noqa: N812
from serving.refresher import Refresher
from tests.integration.conftest import private_redis_server

pytestmark = pytest.mark.integration


class _Started:
    """Stands in for the rebuild child process (the command itself is tested in test_online_store_recovery)."""

    launched: ClassVar[list[list[str]]] = []

    def __init__(self, argv: list[str], **_: Any) -> None:
        self.launched.append(argv)

    def poll(self) -> int | None:
        return None  # still running


def test_an_emptied_store_is_exported_and_rebuilt_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with private_redis_server() as (_proc, url):
        monkeypatch.setattr(subprocess, "Popen", _Started)
        rt = SimpleNamespace(settings=SimpleNamespace(redis_url=url, auto_rebuild=True, var_dir=tmp_path))
        refresher = Refresher(rt)  # type: ignore[arg-type]
        client = redis.Redis.from_url(url)
        online_marker.mark(client)
        state = refresher.check_store()
        assert state is not None and state.verdict == "ok" and M.ONLINE_STORE_WHOLE._value.get() == 1
        assert not _Started.launched

        client.flushdb()  # what a restart without persistence leaves
        state = refresher.check_store()
        assert state is not None and state.verdict == "missing" and M.ONLINE_STORE_WHOLE._value.get() == 0
        assert _Started.launched == [
            [_Started.launched[0][0], "-m", "recsys.cli", "features", "rebuild", "--if-needed"]
        ]
        refresher.check_store()
        assert len(_Started.launched) == 1, "no second rebuild while the first runs"
        monkeypatch.undo()  # the fixture's own Popen stops the server
