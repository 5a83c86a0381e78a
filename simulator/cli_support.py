"""Shared pieces of the `recsys simulate` commands: settings with CLI overrides, times, world loading."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from simulator.settings import SimSettings, get_sim_settings

if TYPE_CHECKING:
    from simulator.temporal import TemporalConfig
    from simulator.world import World

console = Console(stderr=True)

SeedOpt = Annotated[int | None, typer.Option(help="Traffic seed (default: the world's seed).")]
DriftsOpt = Annotated[Path | None, typer.Option(help="JSON file with a list of scheduled drifts (see docs).")]
MalformedOpt = Annotated[float | None, typer.Option(help="Share of lines corrupted (codec-rejected).")]
DuplicateOpt = Annotated[float | None, typer.Option(help="Share of lines written twice.")]
LateOpt = Annotated[float | None, typer.Option(help="Share of lines delivered late (out of order).")]
RateOpt = Annotated[float | None, typer.Option(help="Watch sessions started per simulated hour.")]
TopicOpt = Annotated[str | None, typer.Option(help="Kafka topic (default: settings, 'movielog').")]


def settings_with(**updates: Any) -> SimSettings:
    """Settings from the environment with the CLI's explicit options on top; bad values exit with a message."""
    from pydantic import ValidationError

    from simulator.drift import load_drifts

    drifts = updates.pop("drifts_file", None)
    values = {k: v for k, v in updates.items() if v is not None}
    try:
        s = get_sim_settings()
        if drifts is not None:
            values["drifts"] = load_drifts(drifts)
        return SimSettings.model_validate({**s.model_dump(), **values}) if values else s
    except (ValidationError, ValueError, OSError) as exc:  # a bad file or value, not a bug: no traceback
        console.print(f"[red]invalid settings: {exc}[/red]")
        raise typer.Exit(2) from exc


def parse_time(text: str | None) -> int | None:
    """Nanoseconds since the epoch for 'now' or an ISO 8601 time (naive = UTC); None passes through."""
    if text is None:
        return None
    if text == "now":
        return time.time_ns()
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO 8601 time or 'now': {text!r}") from exc
    return int((dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp() * 1e9)


def temporal_config(path: Path | None, start: str | None, days: float | None) -> TemporalConfig:
    """The temporal knobs of a new world: a JSON file, then the options; the period, when still unset,
    is centred on today (midnight UTC), so a history ending now and a live run both fall in it."""
    from pydantic import ValidationError

    from simulator.temporal import TemporalConfig

    try:
        cfg = TemporalConfig.model_validate_json(path.read_text()) if path is not None else TemporalConfig()
        if days is not None:
            cfg = TemporalConfig.model_validate({**cfg.model_dump(), "days": days})
    except (ValidationError, OSError) as exc:
        console.print(f"[red]invalid temporal settings: {exc}[/red]")
        raise typer.Exit(2) from exc
    start_ns = parse_time(start)
    if start_ns is not None:
        return cfg.model_copy(update={"start": datetime.fromtimestamp(start_ns // 10**9, UTC)})
    return cfg if cfg.start is not None else cfg.centred(datetime.now(UTC))


def load_world_or_exit(s: SimSettings, texts: bool = False) -> World:
    """The stored world, or a clear message and exit code 1 when there is none."""
    from simulator.store import WorldNotFoundError, load_world

    try:
        return load_world(s.sim_dir, texts=texts)
    except WorldNotFoundError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


def ensure_topic(topic: str) -> None:
    """Create the Kafka topic if missing, with the platform's partition count."""
    from events.kafka import ensure_topics
    from events.settings import get_kafka_settings

    ensure_topics({topic: get_kafka_settings().movielog_partitions})
