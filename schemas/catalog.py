"""The event catalog: every published version of every event type, loaded from the .avsc files.

The .avsc files under ``avro/`` are the single definition of each event. Shared named types
(``avro/types``) are inlined into each event schema before parsing, so an event's canonical
form, and therefore its fingerprint, covers everything its bytes depend on.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint as avro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from ledgerflow.schemas.errors import SchemaError

AVRO_DIR = Path(__file__).parent / "avro"
_EVENT_FILE = re.compile(r"^(?P<name>[A-Z][A-Za-z]+)\.v(?P<version>[1-9][0-9]*)\.avsc$")


@dataclass(frozen=True)
class EventSchema:
    """One published version of one event type."""

    name: str
    version: int
    path: Path
    schema: dict[str, Any]  # the JSON with shared types inlined
    parsed: Any  # fastavro's parsed form, ready for the reader/writer
    canonical_form: str
    fingerprint: bytes  # CRC-64-AVRO of the canonical form, 8 bytes little-endian
    source_sha256: str  # of the schema JSON as written, so doc or logicalType edits are caught too
    payload_fields: tuple[str, ...]  # every top-level field except the envelope
    required_fields: frozenset[str]  # payload fields without a default
    defaults: dict[str, Any] = field(repr=False)

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"


@dataclass(frozen=True)
class Catalog:
    """All event schemas, by fingerprint (for readers) and by name (latest version, for writers)."""

    by_fingerprint: dict[bytes, EventSchema]
    versions: dict[str, tuple[EventSchema, ...]]  # oldest first

    def latest(self, name: str) -> EventSchema:
        try:
            return self.versions[name][-1]
        except KeyError:
            raise SchemaError(f"unknown event type {name!r}; known types: {', '.join(sorted(self.versions))}") from None

    @property
    def event_types(self) -> tuple[str, ...]:
        return tuple(sorted(self.versions))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SchemaError(f"cannot read Avro schema {path}: {e}") from e


def _inline_named_types(node: Any, shared: dict[str, dict[str, Any]], seen: set[str]) -> Any:
    """Replace references to shared named types by their definition (first use only, as Avro requires)."""
    if isinstance(node, str):
        if node in shared and node not in seen:
            seen.add(node)
            return _inline_named_types(copy.deepcopy(shared[node]), shared, seen)
        return node
    if isinstance(node, list):
        return [_inline_named_types(item, shared, seen) for item in node]
    if isinstance(node, dict):
        out = dict(node)
        if "fields" in out:
            out["fields"] = [dict(f, type=_inline_named_types(f["type"], shared, seen)) for f in out["fields"]]
        for key in ("items", "values"):
            if key in out:
                out[key] = _inline_named_types(out[key], shared, seen)
        if out.get("type") in ("record", "enum", "fixed"):
            seen.add(f"{out.get('namespace', '')}.{out['name']}".lstrip(".") if "." not in out["name"] else out["name"])
        elif isinstance(out.get("type"), (dict, list, str)) and "fields" not in out:
            out["type"] = _inline_named_types(out["type"], shared, seen)
        return out
    return node


def _load_event(path: Path, name: str, version: int, shared: dict[str, dict[str, Any]]) -> EventSchema:
    raw_text = path.read_bytes()
    schema = _inline_named_types(_read_json(path), shared, set())
    if schema.get("name") != name:
        raise SchemaError(f"{path.name}: record name {schema.get('name')!r} does not match the file name")
    try:
        parsed = parse_schema(schema, _write_hint=False)
        canonical = to_parsing_canonical_form(parsed)
    except Exception as e:  # fastavro raises several types for bad schemas
        raise SchemaError(f"{path.name}: invalid Avro schema: {e}") from e
    fields = schema["fields"]
    if not fields or fields[0]["name"] != "envelope":
        raise SchemaError(f"{path.name}: the first field must be 'envelope'")
    payload = [f for f in fields[1:]]
    return EventSchema(
        name=name,
        version=version,
        path=path,
        schema=schema,
        parsed=parsed,
        canonical_form=canonical,
        fingerprint=bytes.fromhex(avro_fingerprint(canonical, "CRC-64-AVRO")),  # hex of the LE bytes
        source_sha256=hashlib.sha256(raw_text).hexdigest(),
        payload_fields=tuple(f["name"] for f in payload),
        required_fields=frozenset(f["name"] for f in payload if "default" not in f),
        defaults={f["name"]: f["default"] for f in payload if "default" in f},
    )


def load_catalog(avro_dir: Path = AVRO_DIR) -> Catalog:
    """Load every event schema version under ``avro_dir`` (``types/`` and ``events/``)."""
    shared: dict[str, dict[str, Any]] = {}
    for path in sorted((avro_dir / "types").glob("*.avsc")):
        schema = _read_json(path)
        full_name = f"{schema['namespace']}.{schema['name']}"
        if path.stem != full_name:
            raise SchemaError(f"{path.name}: shared type file must be named {full_name}.avsc")
        shared[full_name] = schema
    versions: dict[str, list[EventSchema]] = {}
    for path in sorted((avro_dir / "events").glob("*.avsc")):
        match = _EVENT_FILE.match(path.name)
        if not match:
            raise SchemaError(f"{path.name}: event schema files are named <EventName>.v<N>.avsc")
        event = _load_event(path, match["name"], int(match["version"]), shared)
        versions.setdefault(event.name, []).append(event)
    by_fingerprint: dict[bytes, EventSchema] = {}
    for name, found in versions.items():
        found.sort(key=lambda e: e.version)
        numbers = [e.version for e in found]
        if numbers != list(range(1, len(found) + 1)):
            raise SchemaError(f"{name}: versions must be 1..N without gaps, found {numbers}")
        for event in found:
            clash = by_fingerprint.get(event.fingerprint)
            if clash is not None:
                raise SchemaError(f"{event.label} has the same fingerprint as {clash.label}")
            by_fingerprint[event.fingerprint] = event
    if not versions:
        raise SchemaError(f"no event schemas found under {avro_dir}")
    return Catalog(by_fingerprint, {name: tuple(found) for name, found in versions.items()})


@functools.cache
def default_catalog() -> Catalog:
    """The catalog shipped with this ledgerflow installation (loaded once per process)."""
    return load_catalog()
