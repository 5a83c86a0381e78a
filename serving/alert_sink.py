"""The alert sink's Kafka side: validated Alertmanager alerts to `recsys.alerts`, one message each."""

from __future__ import annotations

import json
from typing import Any

from events.topics import ALERTS


class AlertForwarder:
    """Produces alerts to `recsys.alerts`; the producer is made on first use (no broker needed to start)."""

    def __init__(self) -> None:
        self._producer: Any = None

    def forward(self, alerts: list[dict[str, Any]]) -> int:
        """Send alerts (`serving.api.alert_payload.Alert` dumps) keyed by fingerprint; how many were sent."""
        from events.kafka import make_producer

        if self._producer is None:
            self._producer = make_producer()
        for alert in alerts:
            key = str(alert.get("fingerprint") or alert.get("labels", {}).get("alertname", "alert"))
            self._producer.produce(ALERTS, json.dumps(alert).encode(), key=key.encode())
        self._producer.poll(0)
        return len(alerts)

    def flush(self, timeout_s: float) -> None:
        """Deliver what is queued (at shutdown)."""
        if self._producer is not None:
            self._producer.flush(timeout_s)
