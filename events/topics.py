"""Kafka topic names: the course stream, its dead-letter queue, provenance records and alerts."""

from typing import Final

MOVIELOG: Final = "movielog"
"""The streaming service's log lines in the MLiP course format (keyed by user id)."""
DLQ: Final = "movielog.dlq"
"""Lines that did not parse, with the reason and their origin in headers."""
PROVENANCE: Final = "recsys.provenance"
"""One JSON record per answered recommendation request, written by serving."""
ALERTS: Final = "recsys.alerts"
"""Alerts forwarded from Alertmanager's webhook sink, and experiment guard-rail stops."""
EXPERIMENTS: Final = "recsys.experiments"
"""One JSON record per experiment change (start, stop): who, when, what (`recsys experiment`)."""

ALL_TOPICS: Final = (MOVIELOG, DLQ, PROVENANCE, ALERTS, EXPERIMENTS)
