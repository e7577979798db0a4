"""MLflow records -> ledgerflow events: a pure translation, no I/O.

Each event comes with the time it happened in MLflow (the envelope's ``occurred_at``, so
``ledgerflow replay --until`` sees the history as it was) and a deterministic id, so re-running an
import recognises what is already in the log:

- the event that creates an entity (ExperimentCreated, RunStarted, LoggedModelCreated,
  RegisteredModelCreated, ModelVersionCreated) has an id derived from the entity's identity, so a source that changed
  since cannot create it twice; it carries no tags;
- every other event's id is derived from its content (tags, params, metric ranges, stages,
  deletions ...), so a change in the source (a new tag value, a run that finished, a deletion)
  becomes a new event on the next import, and an unchanged one does not.

Where MLflow keeps no time for a change (params, tags, inputs), the entity's own time is used:
the run's start, the experiment's or model's creation.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ledgerflow.ingest.importers.records import (
    ExperimentRecord,
    LoggedModelRecord,
    MetricHistory,
    ModelVersionRecord,
    RegisteredModelRecord,
    RunRecord,
)
from ledgerflow.schemas import pack_series

#: namespace of every imported event id (uuid5)
IMPORT_NAMESPACE = uuid.UUID("8d2f4c51-6a0e-4b7d-9c3e-6d6c666d6c66")
#: points per MetricsLogged event: ~240 KB, well under every log's record limit
MAX_POINTS_PER_EVENT = 10_000
#: params or tags per event, and their total size, so no event nears a record limit
MAX_PAIRS_PER_EVENT = 1_000
MAX_PAIR_BYTES_PER_EVENT = 512 * 1024
_STAGES = {"none": "NONE", "staging": "STAGING", "production": "PRODUCTION", "archived": "ARCHIVED"}
_TERMINAL = ("FINISHED", "FAILED", "KILLED")
_RUN_ID = re.compile(r"[0-9a-f]{32}")
_LOGGED_MODEL_SOURCE = re.compile(r"models:/(m-[0-9a-f]{32})")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EARLIEST_MS = (datetime(1, 1, 2, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
_LATEST_MS = (datetime(9999, 12, 30, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class PlannedEvent:
    """One event to append: type, payload fields (no envelope), ordering key, when it happened, its id."""

    event_type: str
    entity_key: str
    fields: dict[str, Any]
    occurred_at: datetime
    event_id: uuid.UUID

    @property
    def points(self) -> int:
        if self.event_type != "MetricsLogged":
            return 0
        return sum(len(s["values"]) // 8 for s in self.fields["series"])


@dataclass(frozen=True, slots=True)
class ArtifactReference:
    """A run's artifact as the log records it, resolved by the importer (hashed, maybe copied)."""

    path: str
    uri: str
    size: int
    sha256: str
    logged_at: int  # ms


def moment(millis: int) -> datetime:
    """An MLflow time (ms) as the envelope's datetime; times outside what a datetime holds (a metric logged
    with a timestamp in microseconds, say) are clamped to its range rather than failing the import."""
    return _EPOCH + timedelta(milliseconds=min(max(millis, _EARLIEST_MS), _LATEST_MS))


def identity_id(*parts: object) -> uuid.UUID:
    return uuid.uuid5(IMPORT_NAMESPACE, "\x1f".join(str(p) for p in parts))


def content_id(event_type: str, entity_key: str, fields: Mapping[str, Any], occurred_at: datetime) -> uuid.UUID:
    """An id over everything the event says: the same change imported again gets the same id."""
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True, default=_bytes_digest).encode()).hexdigest()
    return identity_id(event_type, entity_key, digest, occurred_at.isoformat())


def _bytes_digest(value: Any) -> str:
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


def artifact_event_id(run_id: str, path: str, uri: str, size: int) -> uuid.UUID:
    """The id of an artifact reference, known before the file is hashed so a re-run skips the hashing."""
    return identity_id("ArtifactLogged", run_id, path, uri, size)


# The ids of the events that create entities, which the conflict check looks for in the target.

def _created_at(creation_time: int | None, fallback: int | None = None) -> int:
    return creation_time if creation_time is not None else (fallback or 0)


def experiment_created_id(experiment: ExperimentRecord) -> uuid.UUID:
    created = _created_at(experiment.creation_time, experiment.last_update_time)
    return identity_id("ExperimentCreated", experiment.experiment_id, created)


def run_started_id(run_id: str) -> uuid.UUID:
    return identity_id("RunStarted", run_id)


def logged_model_created_id(model_id: str) -> uuid.UUID:
    return identity_id("LoggedModelCreated", model_id)


def registered_model_created_id(model: RegisteredModelRecord) -> uuid.UUID:
    return identity_id("RegisteredModelCreated", model.name, _created_at(model.creation_time))


def _event(event_type: str, entity_key: str, at: int, fields: dict[str, Any],
           event_id: uuid.UUID | None = None) -> PlannedEvent:
    occurred_at = moment(at)
    return PlannedEvent(event_type, entity_key, fields, occurred_at,
                        event_id or content_id(event_type, entity_key, fields, occurred_at))


def _key_values(pairs: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": pairs[key]} for key in sorted(pairs)]


def _chunks(pairs: Mapping[str, str]) -> Iterator[list[dict[str, str]]]:
    """Sorted key/value pairs in groups small enough for one event each."""
    chunk: list[dict[str, str]] = []
    size = 0
    for pair in _key_values(pairs):
        grown = size + len(pair["key"]) + len(pair["value"])
        if chunk and (len(chunk) >= MAX_PAIRS_PER_EVENT or grown > MAX_PAIR_BYTES_PER_EVENT):
            yield chunk
            chunk, grown = [], len(pair["key"]) + len(pair["value"])
        chunk.append(pair)
        size = grown
    if chunk:
        yield chunk


# ---- experiments -----------------------------------------------------------------------------

def experiment_events(experiment: ExperimentRecord) -> list[PlannedEvent]:
    """Created (tags as separate events, so merging into an existing same-named experiment keeps them),
    then deleted, or for an active one updated since creation: its name recorded at its last-update time."""
    experiment_id = experiment.experiment_id
    key = f"experiment/{experiment_id}"
    created = _created_at(experiment.creation_time, experiment.last_update_time)
    updated = experiment.last_update_time if experiment.last_update_time is not None else created
    events = [_event("ExperimentCreated", key, created,
                     {"experiment_id": experiment_id, "name": experiment.name,
                      "artifact_location": experiment.artifact_location, "tags": []},
                     experiment_created_id(experiment))]
    events += [_event("ExperimentTagSet", key, created, {"experiment_id": experiment_id, **pair})
               for pair in _key_values(experiment.tags)]
    if experiment.lifecycle_stage == "deleted":
        events.append(_event("ExperimentDeleted", key, max(updated, created), {"experiment_id": experiment_id}))
    elif updated > created:
        # ledgerflow derives last_update_time from events; MLflow moves it on rename and restore
        events.append(_event("ExperimentRenamed", key, updated, {"experiment_id": experiment_id,
                                                                  "new_name": experiment.name}))
    return events


# ---- runs ------------------------------------------------------------------------------------

def _order_key(timestamp: int, step: int, value: float) -> tuple[int, int, bool, float]:
    nan = value != value
    return timestamp, step, nan, 0.0 if nan else value


def canonical(history: MetricHistory) -> MetricHistory:
    """The points in the order the import writes them: by time, then step, then value (NaN last).

    Stores mostly hand them over in that order already (sqlite sorts, files are appended in time),
    so the check runs first and the sort only when needed.
    """
    moments = list(zip(history.timestamps, history.steps, strict=True))
    if all(earlier < later for earlier, later in itertools.pairwise(moments)):
        return history
    order = sorted(range(len(history)), key=lambda i: _order_key(history.timestamps[i], history.steps[i],
                                                                 history.values[i]))
    return MetricHistory([history.steps[i] for i in order], [history.timestamps[i] for i in order],
                         [history.values[i] for i in order])


def metric_events(run_id: str, metrics: Mapping[str, MetricHistory], imported: Mapping[str, int]) -> list[PlannedEvent]:
    """The points not imported yet (per key, those after the first ``imported[key]`` in canonical order),
    packed into events of at most MAX_POINTS_PER_EVENT points."""
    key = f"run/{run_id}"
    events: list[PlannedEvent] = []
    series: list[dict[str, Any]] = []
    ranges: list[str] = []
    room, latest = MAX_POINTS_PER_EVENT, None

    def close() -> None:
        nonlocal series, ranges, room, latest
        if series:
            events.append(_event("MetricsLogged", key, latest or 0, {"run_id": run_id, "series": series},
                                 identity_id("MetricsLogged", run_id, *ranges)))
        series, ranges, room, latest = [], [], MAX_POINTS_PER_EVENT, None

    for metric in sorted(metrics):
        history = canonical(metrics[metric])
        start = min(imported.get(metric, 0), len(history))
        while start < len(history):
            end = min(start + room, len(history))
            timestamps = history.timestamps[start:end]
            series.append(pack_series(metric, history.steps[start:end], timestamps, history.values[start:end]))
            ranges.append(f"{metric}:{start}:{end}")
            latest = max(timestamps) if latest is None else max(latest, max(timestamps))
            room -= end - start
            start = end
            if room == 0:
                close()
    close()
    return events


def run_events(run: RunRecord, *, imported_points: Mapping[str, int] | None = None,
               artifacts: Sequence[ArtifactReference] = (), outputs: bool = True) -> list[PlannedEvent]:
    """A run's whole history in an order the projector accepts: started, tags, params, metrics,
    inputs, outputs (``outputs``: the log knows RunOutputsLogged) and artifacts while it is active,
    then its end, then its deletion."""
    key, run_id = f"run/{run.run_id}", run.run_id
    terminal = run.status in _TERMINAL
    events = [_event("RunStarted", key, run.start_time, {
        "run_id": run_id, "experiment_id": run.experiment_id, "run_name": run.run_name,
        "parent_run_id": run.parent_run_id, "start_time": run.start_time,
        "status": "RUNNING" if terminal else run.status, "user_id": run.user_id,
        "artifact_uri": run.artifact_uri, "tags": []}, run_started_id(run_id))]
    events += [_event("RunTagsSet", key, run.start_time, {"run_id": run_id, "tags": chunk}) for chunk in _chunks(run.tags)]
    events += [_event("ParamsLogged", key, run.start_time, {"run_id": run_id, "params": chunk})
               for chunk in _chunks(run.params)]
    events += metric_events(run_id, run.metrics, imported_points or {})
    for dataset_input in run.inputs:
        events.append(_event("DatasetInputLogged", key, run.start_time, {
            "run_id": run_id, "context": dataset_input.context, "tags": _key_values(dataset_input.tags),
            "dataset": {"name": dataset_input.name, "digest": dataset_input.digest,
                        "source_type": dataset_input.source_type, "source": dataset_input.source,
                        "schema": dataset_input.schema, "profile": dataset_input.profile}}))
    if outputs and run.outputs:
        events.append(_event("RunOutputsLogged", key, run.start_time, {
            "run_id": run_id, "models": [{"model_id": o.model_id, "step": o.step} for o in run.outputs]}))
    for artifact in artifacts:
        events.append(_event("ArtifactLogged", key, artifact.logged_at, {
            "run_id": run_id, "path": artifact.path, "uri": artifact.uri, "size": artifact.size,
            "sha256": artifact.sha256}, artifact_event_id(run_id, artifact.path, artifact.uri, artifact.size)))
    ended = run.end_time if run.end_time is not None else run.start_time
    if terminal:
        events.append(_event("RunStatusChanged", key, ended, {"run_id": run_id, "status": run.status,
                                                              "end_time": run.end_time}))
    if run.lifecycle_stage == "deleted":
        deleted = run.deleted_time if run.deleted_time is not None else max(ended, run.start_time)
        events.append(_event("RunDeleted", key, deleted, {"run_id": run_id}))
    return events


def run_last_time(run: RunRecord) -> int:
    """The latest moment a run's history mentions, the time given to references MLflow keeps no time for."""
    times = [run.start_time, run.end_time or 0]
    times += [max(history.timestamps) for history in run.metrics.values() if len(history)]
    return max(times)


# ---- logged models (MLflow 3) ----------------------------------------------------------------

def logged_model_events(model: LoggedModelRecord) -> list[PlannedEvent]:
    """Created, its params and tags, finalized (READY or UPLOAD_FAILED) and deleted at its last update."""
    key, model_id = f"model/{model.model_id}", model.model_id
    created = model.creation_time or 0
    updated = model.last_updated_time if model.last_updated_time is not None else created
    source_run = model.source_run_id if model.source_run_id and _RUN_ID.fullmatch(model.source_run_id) else None
    events = [_event("LoggedModelCreated", key, created, {
        "model_id": model_id, "experiment_id": model.experiment_id, "name": model.name,
        "artifact_location": model.artifact_location, "model_type": model.model_type, "source_run_id": source_run,
        "params": [], "tags": []}, logged_model_created_id(model_id))]
    events += [_event("LoggedModelParamsLogged", key, created, {"model_id": model_id, "params": chunk})
               for chunk in _chunks(model.params)]
    events += [_event("LoggedModelTagsSet", key, created, {"model_id": model_id, "tags": chunk})
               for chunk in _chunks(model.tags)]
    if model.status in ("READY", "UPLOAD_FAILED"):
        events.append(_event("LoggedModelFinalized", key, updated, {
            "model_id": model_id, "status": model.status, "status_message": model.status_message}))
    if model.lifecycle_stage == "deleted":
        events.append(_event("LoggedModelDeleted", key, updated, {"model_id": model_id}))
    return events


# ---- registry --------------------------------------------------------------------------------

def _model_id_of(version: ModelVersionRecord) -> str | None:
    """The logged model a version came from: recorded, or named by a ``models:/m-...`` source."""
    if version.model_id:
        return version.model_id
    match = _LOGGED_MODEL_SOURCE.fullmatch(version.source or "")
    return match.group(1) if match else None


def _stage(version: ModelVersionRecord) -> str:
    return _STAGES.get(version.stage.lower(), "NONE")


def model_events(model: RegisteredModelRecord) -> list[PlannedEvent]:
    """A registered model, its versions (deleted ones created then deleted, so their numbers stay
    taken as in MLflow), stages, aliases, and its last update time."""
    name = model.name
    created = _created_at(model.creation_time)
    events = [_event("RegisteredModelCreated", "registry", created,
                     {"name": name, "description": model.description, "tags": []},
                     registered_model_created_id(model))]
    events += [_event("RegisteredModelTagSet", "registry", created, {"name": name, **pair})
               for pair in _key_values(model.tags)]
    touched = created  # the model's last_updated_time as the projector will derive it
    deleted_versions = set()
    for version in model.versions:
        number = version.version
        version_created = version.creation_time if version.creation_time is not None else created
        version_updated = version.last_updated_time if version.last_updated_time is not None else version_created
        run_id = version.run_id if version.run_id and _RUN_ID.fullmatch(version.run_id) else None
        events.append(_event("ModelVersionCreated", "registry", version_created, {
            "name": name, "version": number, "source": version.source or "", "run_id": run_id,
            "artifact_uri": version.storage_location, "signature": None, "description": version.description,
            "tags": [], "model_id": _model_id_of(version), "run_link": version.run_link},
            identity_id("ModelVersionCreated", name, number, version_created)))
        touched = max(touched, version_created)
        events += [_event("ModelVersionTagSet", "registry", version_created, {"name": name, "version": number, **pair})
                   for pair in _key_values(version.tags)]
        if version.deleted:
            deleted_versions.add(number)
            events.append(_event("ModelVersionDeleted", "registry", version_updated, {"name": name, "version": number}))
            continue
        if _stage(version) != "NONE":
            events.append(_event("ModelVersionStageChanged", "registry", version_updated, {
                "name": name, "version": number, "stage": _stage(version), "archive_existing_versions": False}))
        if version_updated > version_created and (_stage(version) == "NONE" or version.description is not None):
            # the version's last update time, and its description as of then (MLflow moves the time on updates)
            events.append(_event("ModelVersionUpdated", "registry", version_updated,
                                 {"name": name, "version": number, "description": version.description}))
    last = model.last_updated_time if model.last_updated_time is not None else touched
    for alias in sorted(model.aliases):
        if model.aliases[alias] not in deleted_versions:
            events.append(_event("ModelVersionAliasSet", "registry", max(last, touched),
                                 {"name": name, "alias": alias, "version": model.aliases[alias]}))
    if last > touched:
        events.append(_event("RegisteredModelUpdated", "registry", last, {"name": name, "description": model.description}))
    return events
