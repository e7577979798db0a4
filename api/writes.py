"""The server's one way into the log: events built or received by any endpoint are appended here.

Both write surfaces use it: POST /api/v1/events (clients send whole events) and the MLflow REST
endpoints (the server turns each MLflow call into events). The server is a producer like any SDK
process: one producer id per server process, sequence numbers handed out under a lock, one entity
key per event (docs/consistency.md), and an answer only once ``append_batch`` returned, i.e. once
the events are durable.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fastapi import Request

from ledgerflow.api.errors import ApiError, bad_request
from ledgerflow.api.runtime import Runtime
from ledgerflow.ingest.log import Entry, LogError, Position, RecordTooLargeError
from ledgerflow.schemas import Event, EventEncodeError, count_points, default_catalog, encode, make_envelope


class Producer:
    """The server as a producer: one producer id per process, sequence numbers under a lock."""

    def __init__(self) -> None:
        self.producer_id = f"server-{uuid.uuid4().hex}"
        self.lock = threading.Lock()
        self.sequence = 0

    def take(self, count: int) -> int:
        with self.lock:
            first, self.sequence = self.sequence, self.sequence + count
            return first


_producer_lock = threading.Lock()


def producer_of(request: Request) -> Producer:
    """The app's producer, created on first use."""
    return producer_of_app(request.app)


def producer_of_app(app: Any) -> Producer:
    with _producer_lock:
        producer = getattr(app.state, "ingest_producer", None)
        if producer is None:
            producer = app.state.ingest_producer = Producer()
        return producer


def entity_key_of(event_type: str, body: dict[str, Any]) -> str:
    """The ordering key docs/consistency.md assigns to an event: experiment/<id>, run/<id> or registry."""
    if event_type.startswith(("RegisteredModel", "ModelVersion")):
        return "registry"
    if event_type.startswith("LoggedModel"):
        value = body.get("model_id")
        if not isinstance(value, str) or not value:
            raise ValueError(f"{event_type} needs model_id (a non-empty string)")
        return f"model/{value}"
    field = "experiment_id" if event_type.startswith("Experiment") else "run_id"
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{event_type} needs {field} (a non-empty string)")
    return f"{field.split('_')[0]}/{value}"


def append_entries(runtime: Runtime, events: Sequence[tuple[Entry, int]]) -> dict[str, Any]:
    """Append (entry, metric points) pairs as one batch; map log failures to API errors."""
    if not events:
        raise bad_request("the batch holds no events")
    try:
        positions = runtime.log.append_batch([entry for entry, _ in events])
        end: Position = runtime.log.end_position()
    except RecordTooLargeError as e:
        raise ApiError(413, "REQUEST_TOO_LARGE", f"the log refused the batch, nothing was appended: {e}") from None
    except LogError as e:
        raise ApiError(503, "TEMPORARILY_UNAVAILABLE",
                       f"the event log cannot take the write, nothing is acknowledged; retry: {e}") from None
    counters = runtime.counters
    with _producer_lock:
        counters.ingested_events += len(events)
        counters.ingested_points += sum(points for _, points in events)
    return {"positions": [[p, o] for p, o in positions], "end_position": {str(p): o for p, o in end.items()}}


def emit(runtime: Runtime, producer: Producer, actor: str,
         events: Sequence[tuple[str, dict[str, Any]]], *, occurred_at: datetime | None = None) -> dict[str, Any]:
    """Build, encode and append events the server itself creates (payload fields without envelope).

    All events of one call form one atomic batch. An event that does not match its schema is a
    bug in the calling endpoint, not client input: it raises before anything is appended.
    """
    catalog = default_catalog()
    first = producer.take(len(events))
    entries: list[tuple[Entry, int]] = []
    for index, (event_type, fields) in enumerate(events):
        schema = catalog.latest(event_type)
        body = {**copy.deepcopy(schema.defaults), **fields}
        envelope = make_envelope(actor=actor, producer_id=producer.producer_id, sequence=first + index,
                                 entity_key=entity_key_of(event_type, body), occurred_at=occurred_at)
        try:
            data = encode(Event(event_type, {"envelope": envelope, **body}), catalog)
        except EventEncodeError as e:
            raise ApiError(500, "INTERNAL_ERROR", f"the server built an invalid {event_type}: {e}") from e
        points = count_points(body["series"]) if event_type == "MetricsLogged" else 0
        entries.append((Entry(envelope["entity_key"], data), points))
    return append_entries(runtime, entries)
