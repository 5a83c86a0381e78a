"""Codec throughput: parse and format lines/s over 1,000,000 mixed MLiP lines on one core.

The mix follows the stream's shape: mostly watch minutes, some ratings, account creations and
recommendation requests (20-item answers and failures). Lines arrive as Kafka delivers them
(bytes) in batches of 10,000. `parse_lines_per_s` is the columnar `parse_batch` that
ingestion uses; `parse_line_events_per_s` is the one-event-object-per-line `parse_line`.
A baseline in the same process (`bytes.split` of each line, the least any Python parser
must do) puts the figures in proportion to this machine.

    python benchmarks/codec.py [--lines N]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import time
from pathlib import Path

import events.codec as codec
from events import (
    AccountEvent,
    Event,
    ParseError,
    RateEvent,
    RecommendationEvent,
    WatchEvent,
    format_line,
    parse_line,
)
from events.batch import parse_batch

RESULTS = Path(__file__).parent / "results" / "codec.json"
BATCH = 10_000
TARGET_PARSE = 300_000


def make_events(n: int, seed: int = 7) -> list[Event]:
    """A deterministic mixed stream over a 20K-movie catalogue, one second every 100 lines."""
    rng = random.Random(seed)
    movies = [f"movie+{i}+{1950 + i % 70}" for i in range(20_000)]
    start = 1_795_600_000 * 10**9
    out: list[Event] = []
    for i in range(n):
        ts = start + (i // 100) * 10**9
        user = rng.randrange(1_000_000)
        r = rng.random()
        if r < 0.90:
            out.append(WatchEvent(ts, user, rng.choice(movies), rng.randrange(150), 0))
        elif r < 0.95:
            out.append(RateEvent(ts, user, rng.choice(movies), rng.randint(1, 5), 0))
        elif r < 0.96:
            out.append(AccountEvent(ts, user, 0))
        elif r < 0.995:
            items = tuple(rng.sample(movies, 20))
            out.append(
                RecommendationEvent(
                    ts + 123_000_000, user, "recsys:8082", 200, items, rng.randrange(300), None, 3
                )
            )
        else:
            err = (
                "java.util.concurrent.TimeoutException: Request timeout to recsys/127.0.0.1:8082 after 600 ms"
            )
            out.append(RecommendationEvent(ts, user, "recsys:8082", 0, (), 615, err, 0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="Lines in the mixed stream.")
    args = parser.parse_args()
    events = make_events(args.lines)

    t0 = time.perf_counter()
    lines = [format_line(e) for e in events]
    format_s = time.perf_counter() - t0
    del events
    gc.collect()

    raw = [line.encode() for line in lines]
    t0 = time.perf_counter()
    for i in range(0, len(raw), BATCH):
        _ = [line.split(b",", 2) for line in raw[i : i + BATCH]]
    split_s = time.perf_counter() - t0

    parse_batch(raw[:BATCH])  # warm the caches the way a running consumer has them
    t0 = time.perf_counter()
    rows = errors = 0
    for i in range(0, len(raw), BATCH):
        parsed = parse_batch(raw[i : i + BATCH])
        rows += len(parsed)
        errors += len(parsed.errors)
    parse_s = time.perf_counter() - t0
    assert rows == len(raw) and errors == 0, f"{errors} generated lines did not parse"

    t0 = time.perf_counter()
    for i in range(0, len(raw), BATCH):
        batch = [parse_line(line) for line in raw[i : i + BATCH]]
        assert not any(isinstance(e, ParseError) for e in batch)
    parse_line_s = time.perf_counter() - t0

    compiled = codec.__file__.endswith(".so")
    result = {
        "lines": len(lines),
        "parse_lines_per_s": round(len(lines) / parse_s),
        "parse_line_events_per_s": round(len(lines) / parse_line_s),
        "format_lines_per_s": round(len(lines) / format_s),
        "baseline_split_lines_per_s": round(len(lines) / split_s),
        "parse_cost_vs_split": round(parse_s / split_s, 2),
        "batch": BATCH,
        "parse_target_lines_per_s": TARGET_PARSE,
        "meets_target": len(lines) / parse_s >= TARGET_PARSE,
        "codec_compiled_with_mypyc": compiled,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
    }
    print(f"codec ({'mypyc' if compiled else 'pure Python'}), {len(lines):,} mixed lines, one core")
    print(
        f"  parse (parse_batch, columns): {result['parse_lines_per_s']:>10,} lines/s  (target {TARGET_PARSE:,})"
    )
    print(f"  parse (parse_line, events)  : {result['parse_line_events_per_s']:>10,} lines/s")
    print(f"  format (format_line)        : {result['format_lines_per_s']:>10,} lines/s")
    print(
        f"  baseline bytes.split: {result['baseline_split_lines_per_s']:,} lines/s; "
        f"parse costs {result['parse_cost_vs_split']}x a bare split"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  wrote {RESULTS}")


if __name__ == "__main__":
    main()
