"""One background process owned by the stack: pid file, log file, start, liveness, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from recsys.stack.errors import StackError


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, for error messages."""
    if not path.exists():
        return f"(no log at {path})"
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 16_384))
        text = fh.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """A daemon we start detached, tracked by a pid file so another `recsys` call can find it."""

    def __init__(self, name: str, run_dir: Path, log_dir: Path) -> None:
        self.name = name
        self.pid_file = run_dir / f"{name}.pid"
        self.log_file = log_dir / f"{name}.log"

    def pid(self) -> int | None:
        """The pid of our running process, or None (stale pid files are removed)."""
        try:
            pid_text, start_text = self.pid_file.read_text().split()
            pid = int(pid_text)
        except (FileNotFoundError, ValueError):
            return None
        # The pid plus the kernel's start time identify the process: a recycled pid after a
        # reboot or crash has another start time. (Command lines are no use: redis rewrites its own.)
        if _alive(pid) and _start_time(pid) == start_text:
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def running(self) -> bool:
        """True when our process is alive."""
        return self.pid() is not None

    def start(self, argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
        """Start detached in its own session (so it outlives this CLI), logging to the log file."""
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{proc.pid} {_start_time(proc.pid)}\n")
        return proc.pid

    def wait_healthy(self, check: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Poll `check` until it passes; fail with the log tail if the process dies or time runs out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check():
                return
            if not self.running():
                raise StackError(
                    f"{self.name} exited during start-up; last log lines:\n{tail(self.log_file)}"
                )
            time.sleep(0.3)
        raise StackError(
            f"{self.name} did not become healthy ({what}) within {timeout_s:.0f} s; "
            f"last log lines:\n{tail(self.log_file)}"
        )

    def stop(self, timeout_s: float = 20.0) -> bool:
        """SIGTERM the process group, then SIGKILL after the timeout; True if something was stopped."""
        pid = self.pid()
        if pid is None:
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
            time.sleep(0.2)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self, sig: signal.Signals = signal.SIGKILL, timeout_s: float = 30.0) -> int:
        """Fault drills: send `sig` to the process group and wait until the process is gone; returns its pid.

        Unlike `stop`, nothing escalates: a SIGTERM that does not end the process within `timeout_s`
        is a StackError, as is a process this stack did not start (no pid file, or a stale one).
        """
        pid = self.pid()
        if pid is None:
            raise StackError(f"{self.name} is not running under this stack's control (no live pid file)")
        _signal_group(pid, sig)
        deadline = time.monotonic() + timeout_s
        while _alive(pid):
            if time.monotonic() > deadline:
                raise StackError(f"{self.name} (pid {pid}) outlived {sig.name} by {timeout_s:.0f} s")
            time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return pid


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as dead.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _start_time(pid: int) -> str:
    """Field 22 of /proc/<pid>/stat: start time in clock ticks since boot."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (FileNotFoundError, IndexError):
        return ""
