"""Appending planned events to the target log in batches, skipping those already there.

The importer is a producer like any SDK process: one producer id per import (prefixed so a later
import recognises its events), sequence numbers 0, 1, 2 ... in append order, the actor
``mlflow-import``. Each batch is durable when ``append_batch`` returns, so an interrupted import
leaves whole batches behind and the next run writes only the rest.
"""

from __future__ import annotations

import copy
import uuid
from collections import Counter
from collections.abc import Iterable

from ledgerflow.ingest.importers.errors import SourceReadError
from ledgerflow.ingest.importers.target import IMPORT_PRODUCER_PREFIX
from ledgerflow.ingest.importers.translate import PlannedEvent
from ledgerflow.ingest.log import Entry, EventLog
from ledgerflow.schemas import Event, EventEncodeError, default_catalog, encode, make_envelope

IMPORT_ACTOR = "mlflow-import"
BATCH_EVENTS = 500
BATCH_BYTES = 4 * 1024 * 1024


class EventWriter:
    """Buffers encoded events and appends them in batches; ``flush`` makes everything added durable."""

    def __init__(self, log: EventLog, known_ids: set[uuid.UUID], *, actor: str = IMPORT_ACTOR) -> None:
        self.log = log
        self.known_ids = known_ids
        self.actor = actor
        self.producer_id = f"{IMPORT_PRODUCER_PREFIX}{uuid.uuid4().hex}"
        self.catalog = default_catalog()
        self.sequence = 0
        self.written: Counter[str] = Counter()
        self.points_written = 0
        self.already_present = 0
        self._pending: list[Entry] = []
        self._pending_types: list[tuple[str, int]] = []
        self._pending_bytes = 0

    def add_all(self, events: Iterable[PlannedEvent]) -> None:
        for event in events:
            self.add(event)

    def add(self, event: PlannedEvent) -> bool:
        """Queue ``event`` unless the log already holds its id; returns whether it was queued."""
        if event.event_id in self.known_ids:
            self.already_present += 1
            return False
        schema = self.catalog.latest(event.event_type)
        # an absent optional field (None) the schema does not have says nothing: leave it out rather than fail
        fields = {k: v for k, v in event.fields.items() if v is not None or k in schema.payload_fields}
        envelope = make_envelope(actor=self.actor, producer_id=self.producer_id, sequence=self.sequence,
                                 entity_key=event.entity_key, event_id=event.event_id, occurred_at=event.occurred_at)
        body = {**copy.deepcopy(schema.defaults), **fields, "envelope": envelope}
        try:
            data = encode(Event(event.event_type, body), self.catalog)
        except EventEncodeError as e:
            raise SourceReadError(f"{event.entity_key}: the source holds a value no {event.event_type} event can "
                                  f"carry; the import stopped there (what it wrote before stays, a re-run resumes): "
                                  f"{e}") from e
        self.sequence += 1
        self.known_ids.add(event.event_id)  # the same id twice in one source is written once
        self._pending.append(Entry(event.entity_key, data))
        self._pending_types.append((event.event_type, event.points))
        self._pending_bytes += len(data)
        if len(self._pending) >= BATCH_EVENTS or self._pending_bytes >= BATCH_BYTES:
            self.flush()
        return True

    def flush(self) -> None:
        if not self._pending:
            return
        self.log.append_batch(self._pending)
        for event_type, points in self._pending_types:
            self.written[event_type] += 1
            self.points_written += points
        self._pending, self._pending_types, self._pending_bytes = [], [], 0
