"""The event contract: typed MLiP log events, the line codec, topic names and Kafka client factories.

This package imports nothing else of ours; everything else may import it.
"""

from events.codec import MAX_LINE_BYTES, format_line, parse_line
from events.topics import ALERTS, ALL_TOPICS, DLQ, EXPERIMENTS, MOVIELOG, PROVENANCE
from events.types import (
    AccountEvent,
    Event,
    ParseError,
    ParseReason,
    RateEvent,
    RecommendationEvent,
    WatchEvent,
)

__all__ = [
    "ALERTS",
    "ALL_TOPICS",
    "DLQ",
    "EXPERIMENTS",
    "MAX_LINE_BYTES",
    "MOVIELOG",
    "PROVENANCE",
    "AccountEvent",
    "Event",
    "ParseError",
    "ParseReason",
    "RateEvent",
    "RecommendationEvent",
    "WatchEvent",
    "format_line",
    "parse_line",
]
