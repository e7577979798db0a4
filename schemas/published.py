"""The record of published schema versions (``avro/published.json``), and the checks that guard it.

Once a version is published its bytes may sit in some log forever, so its fingerprint must never
change and the file must never disappear. New versions are added with ``ledgerflow schemas publish``
after they pass the compatibility check against the previous version of the same event.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from ledgerflow.schemas.catalog import AVRO_DIR, Catalog, EventSchema
from ledgerflow.schemas.examples import example_record

PUBLISHED_FILE = AVRO_DIR / "published.json"


def read_published(path: Path = PUBLISHED_FILE) -> dict[str, dict[str, dict[str, str]]]:
    """event name -> version (as a string) -> {"fingerprint": hex, "sha256": hex}."""
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def _entry(schema: EventSchema) -> dict[str, str]:
    return {"fingerprint": schema.fingerprint.hex(), "sha256": schema.source_sha256}


def check_published(catalog: Catalog, published: dict[str, dict[str, dict[str, str]]]) -> list[str]:
    """Problems that make the catalog unsafe to ship: a published version changed, vanished, or a new
    version that cannot exchange data with its predecessor. Unpublished new versions are listed too."""
    problems = []
    for name, versions in sorted(published.items()):
        for version, recorded in sorted(versions.items(), key=lambda kv: int(kv[0])):
            found = [s for s in catalog.versions.get(name, ()) if s.version == int(version)]
            if not found:
                problems.append(f"{name} v{version} was published but its .avsc file is gone")
                continue
            if found[0].fingerprint.hex() != recorded["fingerprint"]:
                problems.append(
                    f"{name} v{version}: fingerprint changed from {recorded['fingerprint']} to "
                    f"{found[0].fingerprint.hex()}; published schemas are frozen, add a new version instead"
                )
            elif found[0].source_sha256 != recorded["sha256"]:
                problems.append(f"{name} v{version}: the published .avsc was edited (docs or logical types); revert it")
    for name, schemas in sorted(catalog.versions.items()):
        for older, newer in zip(schemas, schemas[1:], strict=False):
            problems += compatibility_problems(older, newer)
        for schema in schemas:
            if str(schema.version) not in published.get(name, {}):
                problems.append(f"{schema.label} is not published yet: run `ledgerflow schemas publish`")
    return problems


def _round_trip(record: dict[str, Any], writer: EventSchema, reader: EventSchema) -> None:
    buffer = io.BytesIO()
    schemaless_writer(buffer, writer.parsed, record)
    buffer.seek(0)
    schemaless_reader(buffer, writer.parsed, reader.parsed)


def compatibility_problems(older: EventSchema, newer: EventSchema) -> list[str]:
    """Full compatibility: data of each version is readable with the other (Avro schema resolution)."""
    problems = []
    for writer, reader, direction in ((older, newer, "backward"), (newer, older, "forward")):
        for variant in ("minimal", "full"):
            try:
                _round_trip(example_record(writer, variant), writer, reader)
            except Exception as e:  # fastavro reports resolution failures with several types
                problems.append(f"{newer.name}: {writer.label} data is not readable as {reader.label} ({direction}): {e}")
                break
    return problems


def publish_new_versions(catalog: Catalog, path: Path = PUBLISHED_FILE) -> list[str]:
    """Record every not yet published version; refuses while any check fails. Returns what was added."""
    published = read_published(path)
    blocking = [p for p in check_published(catalog, published) if "is not published yet" not in p]
    if blocking:
        raise ValueError("cannot publish:\n  " + "\n  ".join(blocking))
    added = []
    for name, schemas in sorted(catalog.versions.items()):
        for schema in schemas:
            if str(schema.version) not in published.setdefault(name, {}):
                published[name][str(schema.version)] = _entry(schema)
                added.append(schema.label)
    path.write_text(json.dumps(published, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return added
