"""What the target log already holds, read once before an import writes anything.

Only envelopes are decoded for most records (the envelope is the first field of every event, so
it can be read without the rest). Full bodies are decoded where the importer needs them: names of
experiments and registered models, to find conflicts, and the metric events of earlier imports,
to know how many points of each series are already in.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from fastavro import parse_schema, schemaless_reader

from ledgerflow.ingest.log import EventLog
from ledgerflow.schemas import HEADER_SIZE, EventDecodeError, decode, default_catalog, writer_schema_of

#: producer ids of importer processes start with this, so a later import recognises their events
IMPORT_PRODUCER_PREFIX = "mlflow-import-"
_NAMED = ("ExperimentCreated", "ExperimentRenamed", "RegisteredModelCreated", "RegisteredModelRenamed",
          "RegisteredModelDeleted")


@dataclass
class TargetIndex:
    """The parts of the target's history an import must respect."""

    event_ids: set[uuid.UUID] = field(default_factory=set)
    experiments: dict[str, str] = field(default_factory=dict)  # experiment id -> current name
    runs: set[str] = field(default_factory=set)  # ids of runs with any event
    logged_models: set[str] = field(default_factory=set)  # ids of MLflow 3 logged models with any event
    active_models: set[str] = field(default_factory=set)  # registered model names now active
    #: run id -> metric key -> points earlier imports wrote
    imported_points: dict[str, dict[str, int]] = field(default_factory=dict)
    records: int = 0
    unreadable: int = 0

    def experiment_ids_by_name(self) -> dict[str, str]:
        return {name: experiment_id for experiment_id, name in self.experiments.items()}

    def points_of(self, run_id: str) -> dict[str, int]:
        return self.imported_points.get(run_id, {})


def _envelope_reader() -> Callable[[bytes], dict]:
    envelope_schema = parse_schema(default_catalog().latest("RunStarted").schema["fields"][0]["type"])

    def read(data: bytes) -> dict:
        stream = io.BytesIO(data)
        stream.seek(HEADER_SIZE)
        return schemaless_reader(stream, envelope_schema)

    return read


def scan_target(log: EventLog, progress: Callable[[int], None] | None = None) -> TargetIndex:
    """Read the whole target log into a :class:`TargetIndex`."""
    index = TargetIndex()
    read_envelope = _envelope_reader()
    catalog = default_catalog()
    for record in log.read_all():
        index.records += 1
        if progress and index.records % 10_000 == 0:
            progress(index.records)
        if record.damage is not None:
            index.unreadable += 1
            continue
        try:
            event_type = writer_schema_of(record.value, catalog).name
            envelope = read_envelope(record.value)
        except Exception:  # fastavro raises many types; what the projector would dead-letter, the import skips
            index.unreadable += 1
            continue
        event_id = envelope["event_id"]
        event_id = event_id if isinstance(event_id, uuid.UUID) else uuid.UUID(str(event_id))
        if event_id in index.event_ids:
            continue  # a redelivered duplicate: the projector applied only the first
        index.event_ids.add(event_id)
        entity_key = envelope["entity_key"]
        if entity_key.startswith("run/"):
            index.runs.add(entity_key[4:])
        elif entity_key.startswith("model/"):
            index.logged_models.add(entity_key[6:])
        imported_metrics = event_type == "MetricsLogged" and envelope["producer_id"].startswith(IMPORT_PRODUCER_PREFIX)
        if event_type not in _NAMED and not imported_metrics:
            continue
        try:
            body = decode(record.value, catalog).body
        except EventDecodeError:
            index.unreadable += 1
            continue
        _observe(index, event_type, body)
    return index


def _observe(index: TargetIndex, event_type: str, body: dict) -> None:
    if event_type == "ExperimentCreated":
        index.experiments.setdefault(body["experiment_id"], body["name"])
    elif event_type == "ExperimentRenamed":
        if body["experiment_id"] in index.experiments:
            index.experiments[body["experiment_id"]] = body["new_name"]
    elif event_type == "RegisteredModelCreated":
        index.active_models.add(body["name"])
    elif event_type == "RegisteredModelRenamed":
        if body["name"] in index.active_models:
            index.active_models.discard(body["name"])
            index.active_models.add(body["new_name"])
    elif event_type == "RegisteredModelDeleted":
        index.active_models.discard(body["name"])
    elif event_type == "MetricsLogged":
        counts = index.imported_points.setdefault(body["run_id"], {})
        for series in body["series"]:
            counts[series["key"]] = counts.get(series["key"], 0) + len(series["values"]) // 8
