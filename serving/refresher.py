"""When a serving worker refreshes what it holds: the experiments file, the movie table, the Feast registry.

One daemon thread per worker wakes every `movie_check_s`: it follows the experiments file,
reads the movie-change counter that writers of movie features bump
(`feature_repo.online_signal`), and has the runtime re-read its movie table after writes (at
most every `movie_min_refresh_s`) and in any case every `movie_refresh_s`, jittered so that
workers started together do not read together. The periodic pass also re-reads the Feast
registry (a `feast apply` changes definitions; data writes do not). What a refresh does is
the runtime's (`serving.runtime.Runtime`); this module only decides when.

It also reads the online store's marker (`feature_repo.online_marker`): when Redis came back
empty or restarted, the gauge `recsys_online_store_whole` drops to 0 and (with
`RECSYS_SERVING_AUTO_REBUILD`) a `recsys features rebuild --if-needed` child process rebuilds
the store from the offline store; a Redis lock keeps ingestion and other workers from doing it twice.
"""

from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from feature_repo import online_marker, online_signal
from serving import metrics as M  # noqa: N812

if TYPE_CHECKING:
    from serving.runtime import Runtime

log = logging.getLogger(__name__)


class Refresher:
    """The background thread of one serving worker; see the module doc."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._rebuild: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="table-refresher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end at its next wake-up."""
        self._stop.set()

    def _next_full(self) -> float:
        return time.monotonic() + self.rt.settings.movie_refresh_s * random.uniform(0.8, 1.2)

    def _run(self) -> None:
        cfg = self.rt.settings
        if cfg.reader_prestart and self.rt.store is not None:
            # Spawn the reader process now, while the service starts: its first use is a re-read
            # under load, and a spawn then (imports, Feast registry) stalled the soak's workers.
            self.rt.table_reader().warm()
        last_read, next_full = time.monotonic(), self._next_full()
        seen = self.movie_changes()
        self.read_clock()
        while not self._stop.wait(cfg.movie_check_s):
            self.rt.watch_experiments()
            self.check_store()
            self.read_clock()
            changes = self.movie_changes()
            now = time.monotonic()
            moved = changes is not None and changes != seen and now - last_read >= cfg.movie_min_refresh_s
            if not moved and now < next_full:
                continue
            if not moved:
                self.rt.refresh_registry()
            if self.rt.refresh_table(background=True) and changes is not None:
                seen = changes
            M.MOVIE_TABLE_REFRESHES.labels("changed" if moved else "periodic").inc()
            last_read, next_full = time.monotonic(), self._next_full()

    def check_store(self) -> online_marker.MarkerState | None:
        """Read the store marker, export it, and start a rebuild when the store was lost (None: Redis down)."""
        self.movie_changes()  # opens the client
        try:
            state = online_marker.check(self._client)
        except Exception:  # Redis down: the request path already degrades; check again next wake-up
            return None
        M.ONLINE_STORE_WHOLE.set(0 if state.needs_rebuild else 1)
        running = self._rebuild is not None and self._rebuild.poll() is None
        if state.needs_rebuild and self.rt.settings.auto_rebuild and not running:
            log.warning("online store %s: starting `recsys features rebuild --if-needed`", state.verdict)
            logs = self.rt.settings.var_dir / "log"
            logs.mkdir(parents=True, exist_ok=True)
            with (logs / "features-rebuild.log").open("ab") as out:
                # The child rebuilds *this* service's store: its var dir and Redis, not whatever the environment says.
                env = {**os.environ, "RECSYS_VAR_DIR": str(self.rt.settings.var_dir),
                       "RECSYS_REDIS_URL": self.rt.settings.redis_url}  # fmt: skip
                self._rebuild = subprocess.Popen(
                    [sys.executable, "-m", "recsys.cli", "features", "rebuild", "--if-needed"],
                    stdout=out, stderr=subprocess.STDOUT, env=env,
                )  # fmt: skip
        return state

    def read_clock(self) -> None:
        """Keep the runtime's stream clock (latest event time ingested) current; Redis down: keep the last value."""
        if self.rt.settings.clock != "stream":
            return
        self.movie_changes()  # opens the client
        try:
            value = online_signal.read_clock(self._client)
        except Exception:
            return
        if value is not None:
            self.rt.stream_now = value

    def movie_changes(self) -> int | None:
        """The movie-change counter; None when Redis cannot say (the periodic refresh still runs)."""
        if self._client is None:
            import redis

            self._client = redis.Redis.from_url(
                self.rt.settings.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5
            )
        return online_signal.peek(self._client)
