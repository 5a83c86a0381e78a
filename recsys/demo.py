"""`recsys demo`: the platform's main job at demo scale, step by step, ending with where to look."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console
from rich.panel import Panel

console = Console()


@dataclass
class DemoContext:
    """What earlier steps hand to later ones, and what the final summary prints."""

    users: int
    movies: int
    facts: dict[str, str] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)


Step = Callable[[DemoContext], None]


def _stack(ctx: DemoContext) -> None:
    from recsys.stack.manager import CORE, Stack

    for s in Stack().up(list(CORE)):
        ctx.facts[s.name] = f"{s.address} ({s.state})"
    ctx.where["stack status"] = "recsys stack status"
    ctx.where["logs"] = "var/log/"


def _smoke_events(ctx: DemoContext) -> None:
    """Produce one line of each kind plus a malformed one and read them back through a consumer group."""
    import uuid

    from events import ParseError, format_line, parse_line
    from events.kafka import ensure_topics, make_consumer, make_producer
    from events.types import AccountEvent, RateEvent, RecommendationEvent, WatchEvent

    topic = f"demo-smoke-{uuid.uuid4().hex[:6]}"
    ensure_topics({topic: 1})
    now = time.time_ns() // 10**9 * 10**9
    sample = [
        format_line(AccountEvent(now, 1)),
        format_line(WatchEvent(now, 1, "the+green+mile+1999", 0)),
        format_line(RateEvent(now, 1, "the+green+mile+1999", 5)),
        format_line(RecommendationEvent(now, 1, "recsys:8082", 200, ("the+green+mile+1999",), 12)),
        "2026-11-25T17:04:05,1,GET /rate/the+green+mile+1999=99",
    ]
    producer = make_producer()
    for line in sample:
        producer.produce(topic, line.encode(), key=b"1")
    producer.flush(30)
    consumer = make_consumer(f"demo-{uuid.uuid4().hex[:6]}")
    consumer.subscribe([topic])
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while len(seen) < len(sample) and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        parsed = parse_line(msg.value() or b"")
        seen.append(f"{parsed.reason}" if isinstance(parsed, ParseError) else type(parsed).__name__)
    consumer.close()
    if len(seen) != len(sample):
        raise RuntimeError(f"read back {len(seen)} of {len(sample)} lines from {topic}")
    ctx.facts["smoke topic"] = f"{topic}: {', '.join(seen)}"


STEPS: list[tuple[str, Step]] = [
    ("start the local stack (Kafka, Redis)", _stack),
    ("produce and consume one line of each kind through Kafka", _smoke_events),
]
"""The demo's steps in order; each issue adds its own."""


def run_demo(users: int, movies: int) -> None:
    """Run every step with timings, then print the facts gathered and where to look."""
    ctx = DemoContext(users=users, movies=movies)
    started = time.monotonic()
    for i, (title, step) in enumerate(STEPS, 1):
        t0 = time.monotonic()
        console.rule(f"[bold]{i}/{len(STEPS)} {title}")
        step(ctx)
        console.print(f"[green]done[/green] in {time.monotonic() - t0:.1f} s")
    facts = "\n".join(f"[bold]{k}[/bold]: {v}" for k, v in ctx.facts.items())
    where = "\n".join(f"[bold]{k}[/bold]: {v}" for k, v in ctx.where.items())
    console.print(Panel(facts, title=f"demo finished in {time.monotonic() - started:.0f} s"))
    console.print(Panel(where, title="where to look"))
