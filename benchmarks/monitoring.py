"""Monitoring on this machine: online job throughput, fault -> alert time, drift on injected vs clean runs, report time.

1. Throughput (`stream_events_per_s`, target >= 20,000): a simulated history (the simulator's
   mix of watch, rating, account and recommendation lines) goes to a fresh 3-partition topic,
   and one provenance record per recommendation line (what serving writes: user, list, arm,
   model, path) to a fresh 2-partition topic, neither timed. `recsys monitor stream`'s job then
   drains both: messages / wall seconds until the last message was consumed (the idle tail that
   ends the run is not counted). Baseline in the same script: a bare consumer reading the same
   two topics without doing anything (`raw_consume_per_s`), so the ratio says what the join costs.
2. Alerting (`alert_seconds`, target <= 120): tests/integration/alert_path.py kills the Redis
   of a real API process under load; seconds from the kill until the alert is on `recsys.alerts`
   (real Prometheus and Alertmanager, the repository's rules), and until it resolves.
3. Drift (`drift_detected`, `drift_false_alarm`): two histories of one world, with and without a
   Horror surge in their second half, through Kafka and ingestion; `run_drift` on each
   (tests/integration/test_drift_alert.py's path).
4. Report (`report_seconds`): `recsys monitor report` over the windows of step 1.

    flock /tmp/recsys-bench.lock .venv/bin/python benchmarks/monitoring.py [--hours H] [--users N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).parent / "results" / "monitoring.json"
IDLE_S = 3.0


def _fill(work: Path, users: int, movies: int, hours: float) -> tuple[str, str, int, int]:
    """Write the history and its provenance records to fresh topics; (topic, provenance topic, lines, records)."""
    from confluent_kafka import Producer

    from events import RecommendationEvent, parse_line
    from events.kafka import ensure_topics, make_producer
    from serving.provenance_record import ProvenanceRecord
    from simulator.history import backfill
    from simulator.settings import SimSettings
    from simulator.world import generate_world

    tag = uuid.uuid4().hex[:8]
    topic, prov = f"bench-monitor-{tag}", f"bench-provenance-{tag}"
    ensure_topics({topic: 3, prov: 2})
    world = generate_world(users, movies, seed=5)
    settings = SimSettings(var_dir=work / "var", topic=topic, sessions_per_hour=20_000)  # type: ignore[call-arg]
    backfill(world, settings, hours / 24, to_kafka=False, out_dir=work / "logs", compress=False,
             save_state=False, progress=False)  # fmt: skip
    producer: Producer = make_producer(extra={"linger.ms": 50, "batch.num.messages": 10_000})
    lines = records = 0
    for path in sorted((work / "logs").glob("*.log")):
        with path.open("rb") as f:
            for raw in f:
                line = raw.rstrip(b"\n")
                user = line.split(b",", 2)[1]
                producer.produce(topic, line, key=user)
                lines += 1
                if b"recommendation request" in line:
                    event = parse_line(line.decode())
                    if isinstance(event, RecommendationEvent) and event.ok:
                        record = ProvenanceRecord(user_id=event.user_id, experiment=None, arm="control",
                                                  model_name="recsys-ranker", model_version=3, model_ref="champion",
                                                  result=list(event.results), latency_ms=float(event.response_ms))  # fmt: skip
                        producer.produce(prov, record.to_json(), key=record.request_id.encode())
                        records += 1
                if lines % 50_000 == 0:
                    producer.poll(0)
    producer.flush(60)
    return topic, prov, lines, records


def _raw_consume(topics: list[str], expected: int) -> float:
    """Messages per second a bare consumer reads from the start of `topics` (the baseline)."""
    from confluent_kafka import TopicPartition

    from events.kafka import make_consumer

    consumer = make_consumer(f"bench-raw-{uuid.uuid4().hex[:8]}", extra={"fetch.max.bytes": 8 << 20})
    parts = [
        TopicPartition(t, p, 0)
        for t in topics
        for p in consumer.list_topics(t, timeout=10).topics[t].partitions
    ]
    consumer.assign(parts)
    seen, t0 = 0, time.perf_counter()
    while seen < expected:
        seen += sum(1 for m in consumer.consume(20_000, timeout=1.0) if not m.error())
    seconds = time.perf_counter() - t0
    consumer.close()
    return seen / seconds


def _throughput(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    from monitoring.layout import MonitorLayout
    from monitoring.report import write_report
    from monitoring.settings import MonitorSettings
    from monitoring.stream import run_stream
    from monitoring.tables import read_windows

    topic, prov, lines, records = _fill(work, args.users, args.movies, args.hours)
    print(f"history: {lines:,} lines, {records:,} provenance records")
    raw = _raw_consume([topic, prov], lines + records)
    settings = MonitorSettings(  # type: ignore[call-arg]
        var_dir=work / "var", topic=topic, provenance_topic=prov, group_id=f"bench-{topic}", metrics_port=0
    )
    summary = run_stream(settings, until_idle_s=IDLE_S, serve_metrics=False)
    busy = summary.seconds - IDLE_S
    total = sum(summary.messages.values())
    windows = read_windows(MonitorLayout(settings.var_dir))
    t0 = time.perf_counter()
    write_report(settings)
    report_s = time.perf_counter() - t0
    out = {
        "stream_messages": total,
        "stream_seconds": round(busy, 2),
        "stream_events_per_s": round(total / busy),
        "raw_consume_per_s": round(raw),
        "stream_vs_raw_consume": round(total / busy / raw, 3),
        "unattributed_lists": summary.unattributed,
        "window_rows": len(windows),
        "hit_rate": round(float(windows["hits"].sum() / max(1, windows["ok"].sum())), 4),
        "report_seconds": round(report_s, 2),
    }
    print(f"stream: {total:,} messages in {busy:.1f} s = {out['stream_events_per_s']:,}/s "
          f"(bare consumer {out['raw_consume_per_s']:,}/s, ratio {out['stream_vs_raw_consume']}); "
          f"{summary.unattributed} lists without provenance")  # fmt: skip
    print(f"report: {report_s:.2f} s")
    return out


def _alert(work: Path) -> dict[str, Any]:
    from tests.integration.alert_path import run_redis_outage

    times = run_redis_outage(work / "alert")
    print(f"alert: {times.alertname} on recsys.alerts {times.alert_seconds:.1f} s after Redis was killed; "
          f"resolved {times.resolve_seconds:.1f} s after it came back")  # fmt: skip
    return {"alert_name": times.alertname, "alert_seconds": round(times.alert_seconds, 1),
            "resolve_seconds": round(times.resolve_seconds, 1)}  # fmt: skip


def _drift(work: Path) -> dict[str, Any]:
    from recsys.services import metadata_api
    from simulator.store import save_world
    from simulator.world import generate_world
    from tests.integration.conftest import free_port
    from tests.integration.test_drift_alert import SURGE, Sim, _history

    var = work / "drift-world"
    world = generate_world(400, 150, seed=21)
    save_world(world, var / "sim")
    port = free_port()
    api = metadata_api(var, port=port)
    api.up(env={"RECSYS_VAR_DIR": str(var)}, timeout_s=120)
    try:
        sim = Sim(world, var, f"http://127.0.0.1:{port}")
        clean = _history(sim, work / "drift-clean", [])
        surged = _history(sim, work / "drift-surged", [SURGE])
    finally:
        api.down()

    def genre(result: Any) -> tuple[bool, float]:
        rows = [r for r in result.rows if r.feature == "genre"]
        return any(r.drifted for r in rows), max((r.score for r in rows), default=float("nan"))

    (surge_flag, surge_score), (clean_flag, clean_score) = genre(surged), genre(clean)
    print(f"drift: genre Hellinger {surge_score:.3f} with a Horror surge (drifted: {surge_flag}), "
          f"{clean_score:.3f} without (drifted: {clean_flag}); any column drifted in the clean run: "
          f"{bool(clean.drifted)}")  # fmt: skip
    return {
        "drift_detected": surge_flag,
        "drift_false_alarm": bool(clean.drifted),
        "drift_genre_score_injected": round(surge_score, 4),
        "drift_genre_score_clean": round(clean_score, 4),
    }


def main() -> None:
    from core.noise import quiet_third_party
    from recsys.stack.manager import CORE, Stack

    quiet_third_party()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000, help="Users in the world of the throughput run.")
    parser.add_argument("--movies", type=int, default=5_000, help="Movies in its catalogue.")
    parser.add_argument(
        "--hours",
        type=float,
        default=2.0,
        help="Simulated hours of history streamed (20,000 sessions an hour).",
    )
    args = parser.parse_args()
    Stack().up(list(CORE))
    work = Path(tempfile.mkdtemp(prefix="recsys-bench-monitor-"))
    result: dict[str, Any] = {"users": args.users, "movies": args.movies, "hours": args.hours}
    result |= _throughput(work, args)
    result |= _alert(work)
    result |= _drift(work)
    result["targets"] = {
        "stream_events_per_s>=20000": result["stream_events_per_s"] >= 20_000,
        "alert_seconds<=120": result["alert_seconds"] <= 120,
        "drift_detected": result["drift_detected"],
        "no_drift_false_alarm": not result["drift_false_alarm"],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["targets"]))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
