"""Fault injection in the metadata API: latency, 5xx answers, missing and renamed fields, schema drift.

Static renames (`api_rename_fields`) apply to every record; scheduled `schema_change` drifts
apply from their simulated start time, read from the traffic's state file (the wall clock when
no traffic has run). A record's id field is never dropped or renamed, so clients can still
match answers to requests.
"""

from __future__ import annotations

import asyncio
import random

from simulator.api.errors import InjectedFaultError
from simulator.api.records import Record
from simulator.drift import SchemaChange
from simulator.settings import SimSettings
from simulator.state import SimTimeReader

ID_FIELDS = {"user": "user_id", "movie": "id"}


class ApiFaults:
    """Applies the configured faults to answers."""

    def __init__(self, settings: SimSettings, sim_time: SimTimeReader) -> None:
        self.s = settings
        self._sim_time = sim_time
        self._changes = [d for d in settings.drifts if isinstance(d, SchemaChange)]
        self._rnd = random.Random(settings.seed)

    async def before_answer(self) -> None:
        """Sleep the injected latency, then maybe fail with a 5xx."""
        delay_ms = self.s.api_latency_ms + self._rnd.random() * self.s.api_latency_jitter_ms
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000)
        if self.s.api_error_rate > 0 and self._rnd.random() < self.s.api_error_rate:
            raise InjectedFaultError("injected fault: service temporarily unavailable")

    def _active_changes(self, resource: str) -> list[SchemaChange]:
        if not self._changes:
            return []
        now = self._sim_time.now_ns()
        return [d for d in self._changes if d.resource == resource and d.active(now)]

    def shape(self, resource: str, records: list[Record]) -> list[Record]:
        """Records as the (possibly drifted or faulty) API sends them."""
        protected = ID_FIELDS[resource]
        renames = {k: v for k, v in self.s.api_rename_fields.items() if k != protected}
        drops: set[str] = set()
        for change in self._active_changes(resource):
            renames.update({k: v for k, v in change.rename.items() if k != protected})
            drops.update(f for f in change.drop if f != protected)
        if not renames and not drops and self.s.api_drop_field_rate <= 0:
            return records
        out = []
        for original in records:
            rec = {renames.get(k, k): v for k, v in original.items() if k not in drops}
            if self.s.api_drop_field_rate > 0 and self._rnd.random() < self.s.api_drop_field_rate:
                victims = [k for k in rec if k != protected]
                if victims:
                    rec.pop(self._rnd.choice(victims))
            out.append(rec)
        return out
