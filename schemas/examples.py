"""Example records for any event schema, built from the schema itself.

Used by the compatibility check and the round-trip tests, so adding an event type needs no
hand-written fixture: ``minimal`` leaves optional fields at their defaults, ``full`` fills them all.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from ledgerflow.schemas.catalog import EventSchema

_WHEN = datetime(2026, 11, 1, 9, 30, 15, 123456, tzinfo=UTC)


def _value(schema: Any, name: str, variant: str, named: dict[str, Any]) -> Any:
    """``named``: the named types (records, enums) seen so far; a later use refers to one by full name."""
    if isinstance(schema, list):  # a union: null first means optional
        if variant == "minimal" and "null" in schema:
            return None
        return _value(next(s for s in schema if s != "null"), name, variant, named)
    if isinstance(schema, dict):
        kind = schema["type"]
        if kind in ("record", "enum"):
            full_name = schema["name"] if "." in schema["name"] else f"{schema.get('namespace', '')}.{schema['name']}"
            named[full_name] = schema
        if kind == "record":
            return {f["name"]: _value(f["type"], f["name"], variant, named) for f in schema["fields"]}
        if kind == "enum":
            return schema["symbols"][-1 if variant == "full" else 0]
        if kind == "array":
            return [] if variant == "minimal" else [_value(schema["items"], name, variant, named) for _ in range(2)]
        if kind == "map":
            return {} if variant == "minimal" else {"k": _value(schema["values"], name, variant, named)}
        logical = schema.get("logicalType")
        if logical == "uuid":
            return uuid.UUID(int=0x1234)
        if logical == "timestamp-micros":
            return _WHEN
        return _value(kind, name, variant, named)
    if schema in named:
        return _value(named[schema], name, variant, named)
    return {
        "string": f"{name}-é-✓",
        "long": 2**40 + 7,
        "int": 42,
        "boolean": variant == "full",
        "double": 0.25,
        "float": 0.5,
        "bytes": bytes(range(24)),
        "null": None,
    }[schema]


def example_record(schema: EventSchema, variant: str = "full") -> dict[str, Any]:
    """A valid record for ``schema``; ``variant`` is "minimal" or "full"."""
    return _value(schema.schema, schema.name, variant, {})
