"""Avro single-object encoding of events: ``C3 01``, the writer schema's 8-byte fingerprint, the body.

Any reader finds the writer's schema by fingerprint and resolves it to the newest version of
that event type it knows, so old events stay readable forever (docs/events.md).
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from ledgerflow.schemas.catalog import Catalog, EventSchema, default_catalog
from ledgerflow.schemas.errors import EventDecodeError, EventEncodeError, UnknownFingerprintError

MARKER = b"\xc3\x01"
HEADER_SIZE = len(MARKER) + 8


@dataclass(slots=True)
class Event:
    """One event: its type name and its Avro record (``envelope`` plus the payload fields).

    ``envelope["event_id"]`` is a :class:`uuid.UUID` and ``envelope["occurred_at"]`` an aware
    UTC :class:`datetime`, both when built and when decoded, so a round trip compares equal.
    """

    type: str
    body: dict[str, Any]
    schema_version: int | None = field(default=None, compare=False)  # set when decoded

    @property
    def envelope(self) -> dict[str, Any]:
        return self.body["envelope"]

    @property
    def event_id(self) -> uuid.UUID:
        return self.body["envelope"]["event_id"]

    @property
    def entity_key(self) -> str:
        return self.body["envelope"]["entity_key"]

    @property
    def occurred_at(self) -> datetime:
        return self.body["envelope"]["occurred_at"]


def make_envelope(
    *, actor: str, producer_id: str, sequence: int, entity_key: str,
    event_id: uuid.UUID | None = None, occurred_at: datetime | None = None,
) -> dict[str, Any]:
    """An envelope with a fresh event id and the current time unless given."""
    return {
        "event_id": event_id or uuid.uuid4(),
        "occurred_at": occurred_at or datetime.now(UTC),
        "actor": actor,
        "producer_id": producer_id,
        "sequence": sequence,
        "entity_key": entity_key,
    }


def encode(event: Event, catalog: Catalog | None = None) -> bytes:
    """Single-object encode ``event`` with the newest schema of its type.

    Raises :class:`EventEncodeError` naming the event type when a field is missing,
    unknown or of the wrong type.
    """
    schema = (catalog or default_catalog()).latest(event.type)
    buffer = io.BytesIO()
    buffer.write(MARKER)
    buffer.write(schema.fingerprint)
    # fields added in a newer version carry defaults; a producer written against the older version
    # leaves them out (fastavro's strict_allow_default does not cover a null default, so fill them here)
    body = {**schema.defaults, **event.body} if schema.defaults.keys() - event.body.keys() else event.body
    try:
        schemaless_writer(buffer, schema.parsed, body, strict=True, strict_allow_default=True)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as e:
        raise EventEncodeError(f"{event.type}: the event does not match {schema.label}: {e}") from e
    return buffer.getvalue()


def writer_schema_of(data: bytes, catalog: Catalog | None = None) -> EventSchema:
    """The schema an encoded event was written with, found by its fingerprint; the body is not read."""
    if len(data) < HEADER_SIZE or data[:2] != MARKER:
        raise EventDecodeError(
            f"not an Avro single-object encoded event: starts with {bytes(data[:2]).hex() or 'nothing'}, "
            f"expected c301 and at least {HEADER_SIZE} bytes (got {len(data)})"
        )
    fingerprint = bytes(data[2:HEADER_SIZE])
    try:
        return (catalog or default_catalog()).by_fingerprint[fingerprint]
    except KeyError:
        raise UnknownFingerprintError(
            f"unknown writer schema fingerprint {fingerprint.hex()}: the event was written by a newer "
            "or foreign producer; upgrade ledgerflow to read it"
        ) from None


def decode(data: bytes, catalog: Catalog | None = None) -> Event:
    """Decode one single-object encoded event, resolved to the newest schema of its type."""
    catalog = catalog or default_catalog()
    writer = writer_schema_of(data, catalog)
    reader = catalog.latest(writer.name)
    stream = io.BytesIO(data)
    stream.seek(HEADER_SIZE)
    try:
        body = schemaless_reader(stream, writer.parsed, None if reader is writer else reader.parsed)
    except Exception as e:  # truncated or corrupt bodies surface as many exception types
        raise EventDecodeError(f"{writer.label}: corrupt event body: {type(e).__name__}: {e}") from e
    if stream.tell() != len(data):
        raise EventDecodeError(f"{writer.label}: {len(data) - stream.tell()} unexpected bytes after the event body")
    return Event(writer.name, body, writer.version)
