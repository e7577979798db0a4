"""The write path: POST /api/v1/events (JSON or Avro single-object events), durable before it answers.

Every event is validated against the catalog before anything is appended, so a batch is
all-or-nothing: one bad event answers 400 naming its index and the log is not touched. The answer
comes only after ``EventLog.append_batch`` returned (fsync'd, or acks=all on Kafka), so a client that
got 200 can rely on the events being stored and, through read-your-writes, on seeing them in its
next read (docs/server.md).
"""

from __future__ import annotations

import copy
import json
import math
import struct
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from ledgerflow.api.deps import RuntimeDep
from ledgerflow.api.errors import ApiError, bad_request
from ledgerflow.api.runtime import Runtime
from ledgerflow.api.writes import Producer, append_entries, entity_key_of, producer_of
from ledgerflow.ingest.log import Entry, LogError
from ledgerflow.schemas import (
    Event,
    EventDecodeError,
    EventEncodeError,
    check_series,
    count_points,
    decode,
    default_catalog,
    encode,
    make_envelope,
    pack_series,
)

router = APIRouter(prefix="/api/v1", tags=["ingest"])

AVRO_CONTENT_TYPE = "application/vnd.ledgerflow.events+avro"
MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_EVENTS = 10_000
ENVELOPE_FIELDS = ("actor", "event_id", "occurred_at")  # what a JSON client may set; the rest is the server's
_FRAME = struct.Struct("<I")
_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class _Invalid(Exception):
    """One event of a batch is invalid; carries its index for the 400 message."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(f"event {index}: {message}")


# ---- JSON -------------------------------------------------------------------------------------

def _occurred_at(value: Any) -> datetime:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError("envelope.occurred_at must be an ISO 8601 string or milliseconds since the epoch")
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"envelope.occurred_at {value!r} is not an ISO 8601 timestamp") from None
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"envelope.occurred_at {value!r} is out of range") from None


def _column(series: dict[str, Any], name: str, length: int | None, default: Callable[[int], list]) -> list:
    values = series.get(name)
    if values is None:
        if length is None:
            raise ValueError(f"series {series.get('key')!r}: {name} is required")
        return default(length)
    if not isinstance(values, list):
        raise ValueError(f"series {series.get('key')!r}: {name} must be a list")
    if name == "values":
        out = []
        for v in values:
            if isinstance(v, str) and v in _FLOATS:
                out.append(_FLOATS[v])
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                out.append(float(v))
            else:
                raise ValueError(f"series {series.get('key')!r}: value {v!r} is not a number "
                                 '(NaN and infinities travel as "NaN", "Infinity", "-Infinity")')
        return out
    if not all(isinstance(v, int) and not isinstance(v, bool) and -2**63 <= v < 2**63 for v in values):
        raise ValueError(f"series {series.get('key')!r}: {name} must hold int64 integers")
    return values


def _json_series(raw: Any) -> list[dict[str, Any]]:
    """MetricsLogged series as JSON lists -> packed columns. steps default 0..n-1, timestamps now."""
    if not isinstance(raw, list):
        raise ValueError("MetricsLogged.series must be a list of {key, values, steps?, timestamps?}")
    packed = []
    now = time.time_ns() // 1_000_000
    for series in raw:
        if not isinstance(series, dict) or not isinstance(series.get("key"), str):
            raise ValueError("each series must be an object with a string key")
        extra = set(series) - {"key", "values", "steps", "timestamps"}
        if extra:
            raise ValueError(f"series {series['key']!r}: unknown fields {sorted(extra)}")
        values = _column(series, "values", None, list)
        steps = _column(series, "steps", len(values), lambda n: list(range(n)))
        timestamps = _column(series, "timestamps", len(values), lambda n: [now] * n)
        if not len(values) == len(steps) == len(timestamps):
            raise ValueError(f"series {series['key']!r}: values, steps and timestamps differ in length "
                             f"({len(values)}, {len(steps)}, {len(timestamps)})")
        packed.append(pack_series(series["key"], steps, timestamps, values))
    return packed


def _json_events(body: Any, actor: str, producer: Producer) -> list[tuple[Entry, int]]:
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise bad_request('the body must be a JSON object {"events": [{"type", "fields", "envelope"?}, ...]}')
    extra = set(body) - {"events", "actor"}
    if extra:
        raise bad_request(f"unknown top-level fields {sorted(extra)}: expected events and actor")
    if body.get("actor") is not None:
        if not isinstance(body["actor"], str) or not body["actor"]:
            raise bad_request("actor must be a non-empty string")
        actor = body["actor"]
    raw_events: list[Any] = body["events"]
    _check_count(len(raw_events))
    catalog = default_catalog()
    first = producer.take(len(raw_events))
    out = []
    for index, raw in enumerate(raw_events):
        try:
            if not isinstance(raw, dict):
                raise ValueError("must be an object {type, fields, envelope?}")
            unknown = set(raw) - {"type", "fields", "envelope"}
            if unknown:
                raise ValueError(f"unknown fields {sorted(unknown)}: expected type, fields and envelope")
            event_type, fields, given = raw.get("type"), raw.get("fields", {}), raw.get("envelope") or {}
            if not isinstance(event_type, str) or event_type not in catalog.versions:
                raise ValueError(f"unknown event type {event_type!r}; known types: {', '.join(catalog.event_types)}")
            if not isinstance(fields, dict) or "envelope" in fields:
                raise ValueError("fields must be an object of payload fields (the envelope goes in envelope)")
            if not isinstance(given, dict) or set(given) - set(ENVELOPE_FIELDS):
                raise ValueError(f"envelope may only set {', '.join(ENVELOPE_FIELDS)}; the server fills the rest")
            schema = catalog.latest(event_type)
            unknown, missing = set(fields) - set(schema.payload_fields), schema.required_fields - set(fields)
            if unknown or missing:
                raise ValueError(f"{event_type}: " + "; ".join(
                    f"{what} field(s) {', '.join(sorted(names))}"
                    for what, names in (("unknown", unknown), ("missing required", missing)) if names)
                    + f" (fields of {schema.label}: {', '.join(schema.payload_fields)})")
            fields = {**copy.deepcopy(schema.defaults), **fields}
            if event_type == "MetricsLogged" and "series" in fields:
                fields["series"] = _json_series(fields["series"])
            event_actor = given.get("actor", actor)
            if not isinstance(event_actor, str) or not event_actor:
                raise ValueError("envelope.actor must be a non-empty string")
            try:
                event_id = uuid.UUID(given["event_id"]) if given.get("event_id") is not None else None
            except (ValueError, TypeError, AttributeError):
                raise ValueError(f"envelope.event_id {given['event_id']!r} is not a UUID") from None
            occurred = _occurred_at(given["occurred_at"]) if given.get("occurred_at") is not None else None
            envelope = make_envelope(actor=event_actor, producer_id=producer.producer_id, sequence=first + index,
                                     entity_key=entity_key_of(event_type, fields), event_id=event_id,
                                     occurred_at=occurred)
            event = Event(event_type, {"envelope": envelope, **fields})
            data = encode(event, catalog)
        except (ValueError, TypeError, OverflowError, EventEncodeError) as e:
            raise _Invalid(index, str(e)) from None
        points = count_points(fields["series"]) if event_type == "MetricsLogged" else 0
        out.append((Entry(envelope["entity_key"], data), points))
    return out


# ---- Avro ---------------------------------------------------------------------------------------

def _avro_events(body: bytes) -> list[tuple[Entry, int]]:
    """Frames [u32 LE length][single-object event]; each decoded to validate it, kept byte for byte."""
    catalog = default_catalog()
    out: list[tuple[Entry, int]] = []
    view, at = memoryview(body), 0
    while at < len(body):
        index = len(out)
        if index >= MAX_EVENTS:
            _check_count(index + 1)
        if len(body) - at < _FRAME.size:
            raise _Invalid(index, f"truncated frame: {len(body) - at} bytes left where a 4-byte length was expected")
        (length,) = _FRAME.unpack_from(view, at)
        at += _FRAME.size
        if length == 0 or length > len(body) - at:
            raise _Invalid(index, f"frame length {length} does not fit the {len(body) - at} bytes left in the body")
        data = bytes(view[at:at + length])
        at += length
        try:
            event = decode(data, catalog)
            points = 0
            if event.type == "MetricsLogged":
                points = sum(check_series(series) for series in event.body["series"])
            key = entity_key_of(event.type, event.body)
        except (EventDecodeError, ValueError) as e:
            raise _Invalid(index, str(e)) from None
        if event.entity_key != key:
            raise _Invalid(index, f"{event.type} must carry entity_key {key!r}, not {event.entity_key!r}")
        out.append((Entry(key, data), points))
    return out


# ---- the endpoints ------------------------------------------------------------------------------

def _check_count(count: int) -> None:
    if count > MAX_EVENTS:
        raise ApiError(413, "REQUEST_TOO_LARGE", f"{count} events in one request; at most {MAX_EVENTS} are accepted")


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, "REQUEST_TOO_LARGE", f"the body has {declared} bytes; at most {MAX_BODY_BYTES} are accepted")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, "REQUEST_TOO_LARGE", f"the body exceeds {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _ingest(runtime: Runtime, parse: Callable[[], list[tuple[Entry, int]]]) -> dict[str, Any]:
    try:
        events = parse()
    except _Invalid as e:
        raise bad_request(f"nothing was appended: {e}") from None
    return append_entries(runtime, events)


_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {
                "type": "object", "required": ["events"],
                "properties": {
                    "actor": {"type": "string", "description": "actor of events that do not name one"},
                    "events": {"type": "array", "maxItems": MAX_EVENTS, "items": {
                        "type": "object", "required": ["type"],
                        "properties": {
                            "type": {"type": "string", "description": "event type, e.g. RunStarted (docs/events.md)"},
                            "fields": {"type": "object", "description": "payload fields of the event type"},
                            "envelope": {"type": "object", "properties": {
                                "actor": {"type": "string"}, "event_id": {"type": "string", "format": "uuid"},
                                "occurred_at": {"type": "string", "description": "ISO 8601, or ms since the epoch"}}},
                        }}},
                }}},
            AVRO_CONTENT_TYPE: {"schema": {"type": "string", "format": "binary",
                                           "description": "[u32 little-endian length][single-object event] frames"}},
        },
    },
}


@router.post(
    "/events", openapi_extra=_OPENAPI,
    summary="Append events (JSON or Avro frames), all-or-nothing; answers once they are durable",
    responses={400: {"description": "an invalid event (its index is named); nothing appended"},
               413: {"description": "body over 64 MiB or more than 10,000 events"},
               503: {"description": "the log cannot take the write right now; nothing acknowledged"}},
)
async def post_events(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    body = await _read_body(request)
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    producer = producer_of(request)
    if content_type == AVRO_CONTENT_TYPE:
        return await run_in_threadpool(_ingest, runtime, lambda: _avro_events(body))
    if content_type not in ("application/json", "") and not content_type.endswith("+json"):
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE",
                       f"content type {content_type!r}: send application/json or {AVRO_CONTENT_TYPE}")
    actor = request.headers.get("x-ledgerflow-actor") or "anonymous"
    return await run_in_threadpool(_ingest, runtime, lambda: _json_events(_parse_json(body), actor, producer))


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as e:
        raise bad_request(f"the body is not valid JSON: {e}") from None


@router.get("/log/position", summary="The log's end position (and how far this server's projection is)")
def log_position(runtime: RuntimeDep) -> dict[str, Any]:
    try:
        end = runtime.log.end_position()
    except LogError as e:
        raise ApiError(503, "TEMPORARILY_UNAVAILABLE", f"the event log cannot be reached: {e}") from None
    return {"log": runtime.log.uri, "end_position": {str(p): o for p, o in end.items()},
            "projected_position": {str(p): o for p, o in runtime.committed_position.items()}}
