"""`recsys events ...`: validate log files and peek at topics with the event codec."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.console import Console
from rich.table import Table

from events import ParseError, parse_line
from events.topics import MOVIELOG

app = typer.Typer(no_args_is_help=True)
console = Console()


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


@app.command()
def check(
    path: Annotated[Path, typer.Argument(help="An MLiP log file (plain or .gz), one line per event.")],
    show: Annotated[int, typer.Option(help="Print up to this many rejected lines.")] = 5,
) -> None:
    """Parse every line of a log file and report counts by event type and by rejection reason."""
    kinds: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    shown = 0
    with _open(path) as fh:
        for lineno, raw in enumerate(fh, 1):
            result = parse_line(raw)
            if isinstance(result, ParseError):
                reasons[result.reason.value] += 1
                if shown < show:
                    console.print(f"[red]line {lineno}[/red] {result.reason}: {result.detail}")
                    shown += 1
            else:
                kinds[type(result).__name__] += 1
    table = Table(title=str(path))
    table.add_column("outcome")
    table.add_column("lines", justify="right")
    for name, n in kinds.most_common():
        table.add_row(name, f"{n:,}")
    for name, n in reasons.most_common():
        table.add_row(f"[red]rejected: {name}[/red]", f"{n:,}")
    console.print(table)


@app.command()
def tail(
    topic: Annotated[str, typer.Option(help="Topic to read.")] = MOVIELOG,
    n: Annotated[int, typer.Option("-n", help="How many messages to print.")] = 10,
    timeout_s: Annotated[
        float, typer.Option(help="Give up after this many seconds without a message.")
    ] = 5.0,
) -> None:
    """Print the latest messages of a topic with their parse result (reads without joining a group)."""
    from confluent_kafka import OFFSET_END, TopicPartition

    from events.kafka import make_consumer

    consumer = make_consumer("recsys-events-tail", extra={"enable.auto.commit": False})
    try:
        md = consumer.list_topics(topic, timeout=10)
        if topic not in md.topics or md.topics[topic].error is not None:
            console.print(f"[red]no topic {topic!r}[/red]")
            raise typer.Exit(1)
        parts = []
        for pid in md.topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, pid), timeout=10)
            parts.append(TopicPartition(topic, pid, max(low, high - n) if high > 0 else OFFSET_END))
        consumer.assign(parts)
        printed = 0
        while printed < n:
            msg = consumer.poll(timeout_s)
            if msg is None:
                break
            if msg.error():
                continue
            value = msg.value() or b""
            parsed = parse_line(value)
            headers: dict[str, str] = {}
            for item in msg.headers() or []:
                key, hval = str(item[0]), item[1]
                headers[key] = hval.decode("utf-8", "replace") if isinstance(hval, bytes) else str(hval)
            verdict = (
                f"[red]{parsed.reason}[/red]" if isinstance(parsed, ParseError) else type(parsed).__name__
            )
            extra = f" {json.dumps(headers)}" if headers else ""
            console.print(f"p{msg.partition()}@{msg.offset()} {verdict}{extra}: {value[:200]!r}")
            printed += 1
    finally:
        consumer.close()
