"""The simulator's ground truth of the lists an experiment served: what each arm's lists were truly worth.

Benchmarks only (the platform never sees this). Serving's provenance records hold each answer's
user, arm and list; the simulated users' own rule (`simulator.behaviour`: scan top-down, take
item j with probability `simulator.behaviour.take_probability`, movies not out never) gives
each list's exact chance of being taken and which item would be. From that, per arm:

- `take_rate`: expected share of lists a user takes a movie from (the truth behind the hit rate;
  the measured hit rate is higher by the users whose own choice happened to be listed);
- `cost_per_watch`: expected licence USD of the taken movie per take;
- `rating`: expected stars (`expected_rating` of the affinity) of the taken movie;
- `affinity`: mean true affinity of the listed movies.

An interleaved list also gives `take_share_b`: of the expected takes, the share of team B's movies.
The time is one instant per experiment (the middle of its simulated window): release hype moves
over days, the loops last hours. Records of users outside the world (probes) are left out.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from simulator.affinity import expected_rating
from simulator.behaviour import take_probability
from simulator.truth import Truth

F64 = npt.NDArray[np.float64]


def first_take(aff: F64, log_m: F64, usable: npt.NDArray[np.bool_]) -> F64:
    """(lists, width) probability that position j is the first taken, under the simulated users' rule."""
    p = take_probability(aff, np.where(usable, log_m, 0.0), usable)
    # Not taken before j: the product of (1 - p_i) over i < j.
    before = np.cumprod(np.concatenate([np.ones((len(p), 1)), 1.0 - p[:, :-1]], axis=1), axis=1)
    out: F64 = p * before
    return out


@dataclass(frozen=True)
class ArmTruth:
    """The ground truth of one arm's lists."""

    arm: str
    lists: int
    users: int
    take_rate: float
    cost_per_watch: float
    rating: float
    affinity: float
    take_share_b: float | None = None
    """Interleaved lists only: share of expected takes that are team B's movies."""


def arm_truth(
    truth: Truth, arm: str, records: Sequence[dict[str, Any]], at_ns: int, batch: int = 512
) -> ArmTruth:
    """Ground truth of the lists in `records` (provenance JSON of one arm), at simulated time `at_ns`."""
    index = {m: j for j, m in enumerate(truth.movie_ids)}
    n_users = len(truth.world.population)
    cost = np.asarray(truth.world.catalog.cost, dtype=np.float64)
    log_m = np.asarray(truth.temporal.log_attractiveness(at_ns), dtype=np.float64)
    rows = [r for r in records if 1 <= int(r["user_id"]) <= n_users and r.get("result")]
    width = max((len(r["result"]) for r in rows), default=1)
    takes = costs = stars = aff_sum = listed = take_b = 0.0
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        cols = np.zeros((len(chunk), width), dtype=np.int64)
        known = np.zeros((len(chunk), width), dtype=bool)
        team_b = np.zeros((len(chunk), width), dtype=bool)
        for i, r in enumerate(chunk):
            teams = (r.get("interleave") or {}).get("teams") or ""
            for j, movie in enumerate(r["result"][:width]):
                col = index.get(movie)
                if col is not None:
                    cols[i, j], known[i, j] = col, True
                team_b[i, j] = j < len(teams) and teams[j] == "B"
        users = np.asarray([int(r["user_id"]) for r in chunk], dtype=np.int64)
        aff = np.take_along_axis(truth.affinity(users).astype(np.float64), cols, axis=1)
        lm = log_m[cols]
        usable = known & np.isfinite(lm)
        first = first_take(aff, np.where(usable, lm, 0.0), usable)
        takes += float(first.sum())
        costs += float((first * cost[cols]).sum())
        stars += float((first * expected_rating(aff.astype(np.float32)).astype(np.float64)).sum())
        take_b += float((first * team_b).sum())
        aff_sum += float(aff[known].sum())
        listed += float(known.sum())
    interleaved = any((r.get("interleave") or {}).get("teams") for r in rows)
    return ArmTruth(
        arm, len(rows), len({int(r["user_id"]) for r in rows}), takes / len(rows) if rows else float("nan"),
        costs / takes if takes else float("nan"), stars / takes if takes else float("nan"),
        aff_sum / listed if listed else float("nan"), take_b / takes if interleaved and takes else None,
    )  # fmt: skip


def by_arm(records: Iterable[dict[str, Any]], path: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Records grouped by arm; with `path="cold_start"` only cold-start answers, `"model"` only the model's."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        cold = bool(r.get("cold_start"))
        if path == "cold_start" and not cold:
            continue
        if path == "model" and (cold or r.get("fallback")):
            continue
        out.setdefault(str(r.get("arm")), []).append(r)
    return out


def read_provenance(experiment: str, limit_s: float = 300.0) -> list[dict[str, Any]]:
    """Every provenance record of `experiment` now on the topic: each partition read from its start to its end."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from events.kafka import make_consumer
    from events.topics import PROVENANCE

    consumer = make_consumer(f"bench-truth-{uuid.uuid4().hex[:8]}")
    out: list[dict[str, Any]] = []
    try:
        parts = consumer.list_topics(PROVENANCE, timeout=10).topics[PROVENANCE].partitions
        # Assigned, not subscribed: no group rebalance to wait for, and the end is known up front.
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(PROVENANCE, p), timeout=10)[1] for p in parts
        }
        left = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(PROVENANCE, p, OFFSET_BEGINNING) for p in left])
        deadline = time.monotonic() + limit_s
        while left and time.monotonic() < deadline:
            for msg in consumer.consume(5000, timeout=0.5):
                if msg.error() is not None:
                    continue
                record = json.loads(msg.value() or b"{}")
                if record.get("experiment") == experiment:
                    out.append(record)
                if (msg.offset() or 0) >= ends[msg.partition()] - 1:
                    left.discard(msg.partition())
    finally:
        consumer.close()
    return out
