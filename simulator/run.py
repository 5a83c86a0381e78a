"""Drive a traffic run: batches into sinks, paced by the simulated clock, with progress and saved state."""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from simulator.sinks import Sink
from simulator.state import TrafficState, write_state
from simulator.traffic import Traffic, TrafficStats


@dataclass(slots=True)
class RunResult:
    """What a run did and how fast."""

    stats: TrafficStats
    seconds: float
    sim_end_ns: int

    @property
    def lines_per_s(self) -> float:
        """Lines written per wall-clock second."""
        return self.stats.lines / self.seconds if self.seconds > 0 else 0.0


def _save(traffic: Traffic, sim_dir: Path | None, seed: int, users: int) -> None:
    # The generated time, not the clock's: a resumed run continues exactly where lines stopped.
    if sim_dir is not None:
        state = TrafficState(
            sim_now_ns=traffic.now_ns, next_user=traffic.next_user, world_seed=seed, world_users=users
        )
        write_state(sim_dir, state)


def drive(
    traffic: Traffic,
    sinks: list[Sink],
    *,
    until_ns: int | None = None,
    max_lines: int | None = None,
    sim_dir: Path | None = None,
    progress: bool = True,
) -> RunResult:
    """Write the traffic into every sink until `until_ns` or `max_lines`; Ctrl-C stops cleanly.

    Paced runs write each line when the simulated clock reaches its emission time. The state
    (simulated time, next new user) goes to `sim_dir` every second and at the end.
    """
    seed, users = traffic.seed, traffic.n_users
    traffic.clock.start()  # simulated time starts flowing now, not when the world was loaded
    t0 = time.perf_counter()
    last_save = t0
    bar = Progress(
        TextColumn("traffic"), BarColumn(), MofNCompleteColumn(), TextColumn("lines"), TimeElapsedColumn(),
        TextColumn("simulated {task.fields[sim]}"), console=Console(stderr=True), disable=not progress,
    )  # fmt: skip
    task = bar.add_task("traffic", total=max_lines, sim="")
    bar.start()
    try:
        for batch in traffic.batches(until_ns):
            lines, keys, emit = batch.lines, batch.users, batch.emit_ns
            if max_lines is not None and traffic.stats.lines >= max_lines:
                cut = len(lines) - (traffic.stats.lines - max_lines)
                lines, keys, emit = lines[:cut], keys[:cut], emit[:cut]
            start = 0
            while start < len(lines):
                # Paced: everything already due goes at once, then sleep until the next line is due.
                end = (
                    len(lines)
                    if not traffic.clock.paced
                    else max(start + 1, bisect.bisect_right(emit, traffic.clock.now_ns(), lo=start))
                )
                traffic.clock.wait_until(emit[start])
                for sink in sinks:
                    sink.write(lines[start:end], keys[start:end], emit[start:end])
                start = end
            bar.update(
                task, advance=len(lines), sim=time.strftime("%Y-%m-%d %H:%M", time.gmtime(batch.end_ns / 1e9))
            )
            if time.perf_counter() - last_save >= 1.0:
                _save(traffic, sim_dir, seed, users)
                last_save = time.perf_counter()
            if max_lines is not None and traffic.stats.lines >= max_lines:
                traffic.stats.lines = max_lines
                break
    except KeyboardInterrupt:
        pass
    finally:
        bar.stop()
        for sink in sinks:
            sink.close()
        _save(traffic, sim_dir, seed, users)
    return RunResult(traffic.stats, time.perf_counter() - t0, traffic.now_ns)
