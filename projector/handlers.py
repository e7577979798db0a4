"""Applying one event: a pure function from (event, current state) to row effects.

Determinism rule: a handler may only consult state written by events with the same ordering key
(``run/<id>``, ``experiment/<id>``, ``registry``), because only those are ordered before it in
every replay; references across keys (a run's experiment, a version's source run, a parent run)
are recorded, never checked.

No I/O and no duckdb here (an import-linter contract checks it): the loop in ``runner.py`` reads
the log, keeps the state view and writes the effects in transactions. A handler raises
:class:`Rejected` when the event contradicts the state (unknown run, conflicting param ...).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ledgerflow.projector.effects import Append, AppendMetrics, Effect, Put, Rejected, Remove, StateView
from ledgerflow.projector.tables import TABLES_BY_NAME
from ledgerflow.schemas import Event, count_points

Handler = Callable[[Event, StateView], list[Effect]]
HANDLERS: dict[str, Handler] = {}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DATASET_NAMESPACE = uuid.UUID("4f6c0b1e-1e7d-4d4e-9a53-6c6564676572")


def handles(event_type: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        HANDLERS[event_type] = handler
        return handler

    return register


def apply(event: Event, state: StateView) -> list[Effect]:
    """The effects of ``event`` on ``state``; raises :class:`Rejected` if it cannot apply."""
    handler = HANDLERS.get(event.type)
    if handler is None:
        raise Rejected(f"no projection for event type {event.type}")
    return handler(event, state)


def millis(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _at(event: Event) -> int:
    return millis(event.occurred_at)


# ---- lookups that reject ---------------------------------------------------------------------

def _experiment(state: StateView, experiment_id: str, *, active: bool = True) -> dict[str, Any]:
    row = state.row("experiments", (experiment_id,))
    if row is None:
        raise Rejected(f"experiment {experiment_id!r} does not exist")
    if active and row["lifecycle_stage"] != "active":
        raise Rejected(f"experiment {experiment_id!r} is deleted")
    return row


def _run(state: StateView, run_id: str, *, active: bool = True) -> dict[str, Any]:
    row = state.row("runs", (run_id,))
    if row is None:
        raise Rejected(f"run {run_id!r} does not exist")
    if active and row["lifecycle_stage"] != "active":
        raise Rejected(f"run {run_id!r} is deleted; restore it before logging to it")
    return row


def _model(state: StateView, name: str) -> dict[str, Any]:
    row = state.row("registered_models", (name,))
    if row is None or row["lifecycle_stage"] != "active":
        raise Rejected(f"registered model {name!r} does not exist")
    return row


def _version(state: StateView, name: str, version: int) -> dict[str, Any]:
    _model(state, name)
    row = state.row("model_versions", (name, version))
    if row is None or row["lifecycle_stage"] != "active":
        raise Rejected(f"model version {name!r} v{version} does not exist")
    return row


def _tags(table: str, owner: dict[str, Any], pairs: list[dict[str, str]]) -> list[Effect]:
    return [Put(table, {**owner, "key": p["key"], "value": p["value"]}) for p in pairs]


# ---- experiments -----------------------------------------------------------------------------

@handles("ExperimentCreated")
def _experiment_created(event: Event, state: StateView) -> list[Effect]:
    body = event.body
    existing = state.row("experiments", (body["experiment_id"],))
    if existing is not None:
        if existing["name"] == body["name"]:
            return []  # an identical re-creation (several SDK processes) is idempotent
        raise Rejected(f"experiment id {body['experiment_id']!r} already exists with name {existing['name']!r}")
    row = {"experiment_id": body["experiment_id"], "name": body["name"], "artifact_location": body["artifact_location"],
           "lifecycle_stage": "active", "creation_time": _at(event), "last_update_time": _at(event), "deleted_time": None}
    return [Put("experiments", row), *_tags("experiment_tags", {"experiment_id": body["experiment_id"]}, body["tags"])]


def _experiment_update(event: Event, state: StateView, active: bool = True, **changes: Any) -> list[Effect]:
    row = _experiment(state, event.body["experiment_id"], active=active)
    return [Put("experiments", {**row, **changes, "last_update_time": _at(event)})]


@handles("ExperimentRenamed")
def _experiment_renamed(event: Event, state: StateView) -> list[Effect]:
    return _experiment_update(event, state, name=event.body["new_name"])


@handles("ExperimentDeleted")
def _experiment_deleted(event: Event, state: StateView) -> list[Effect]:
    return _experiment_update(event, state, lifecycle_stage="deleted", deleted_time=_at(event))


@handles("ExperimentRestored")
def _experiment_restored(event: Event, state: StateView) -> list[Effect]:
    if _experiment(state, event.body["experiment_id"], active=False)["lifecycle_stage"] == "active":
        raise Rejected(f"experiment {event.body['experiment_id']!r} is not deleted")
    return _experiment_update(event, state, active=False, lifecycle_stage="active", deleted_time=None)


@handles("ExperimentTagSet")
def _experiment_tag_set(event: Event, state: StateView) -> list[Effect]:
    body = event.body
    _experiment(state, body["experiment_id"])
    return [Put("experiment_tags", {"experiment_id": body["experiment_id"], "key": body["key"], "value": body["value"]})]


@handles("ExperimentTagDeleted")
def _experiment_tag_deleted(event: Event, state: StateView) -> list[Effect]:
    key = (event.body["experiment_id"], event.body["key"])
    _experiment(state, key[0])
    if state.row("experiment_tags", key) is None:
        raise Rejected(f"experiment {key[0]!r} has no tag {key[1]!r}")
    return [Remove("experiment_tags", key)]


# ---- runs ------------------------------------------------------------------------------------

@handles("RunStarted")
def _run_started(event: Event, state: StateView) -> list[Effect]:
    # The experiment is NOT checked: its events are keyed by experiment, the run's by run, so on
    # Kafka they may sit in different partitions and arrive in either order. Checking would make
    # the state depend on polling order; a handler only ever checks its own key's history.
    body = event.body
    if state.row("runs", (body["run_id"],)) is not None:
        raise Rejected(f"run {body['run_id']!r} already exists")
    row = {"run_id": body["run_id"], "experiment_id": body["experiment_id"], "run_name": body["run_name"],
           "user_id": body["user_id"], "status": body["status"], "start_time": body["start_time"], "end_time": None,
           "lifecycle_stage": "active", "artifact_uri": body["artifact_uri"], "parent_run_id": body["parent_run_id"],
           "deleted_time": None}
    effects: list[Effect] = [Put("runs", row), *_tags("tags", {"run_id": body["run_id"]}, body["tags"])]
    if body["parent_run_id"]:
        effects.append(Append("lineage", {"source_type": "run", "source_id": body["parent_run_id"], "target_type": "run",
                                          "target_id": body["run_id"], "relation": "parent_of",
                                          "event_id": event.event_id}))
    return effects


@handles("RunStatusChanged")
def _run_status_changed(event: Event, state: StateView) -> list[Effect]:
    row = _run(state, event.body["run_id"], active=False)
    return [Put("runs", {**row, "status": event.body["status"], "end_time": event.body["end_time"]})]


@handles("RunRenamed")
def _run_renamed(event: Event, state: StateView) -> list[Effect]:
    row = _run(state, event.body["run_id"], active=False)
    return [Put("runs", {**row, "run_name": event.body["new_name"]})]


@handles("RunDeleted")
def _run_deleted(event: Event, state: StateView) -> list[Effect]:
    row = _run(state, event.body["run_id"])
    return [Put("runs", {**row, "lifecycle_stage": "deleted", "deleted_time": _at(event)})]


@handles("RunRestored")
def _run_restored(event: Event, state: StateView) -> list[Effect]:
    row = _run(state, event.body["run_id"], active=False)
    if row["lifecycle_stage"] == "active":
        raise Rejected(f"run {row['run_id']!r} is not deleted")
    return [Put("runs", {**row, "lifecycle_stage": "active", "deleted_time": None})]


@handles("ParamsLogged")
def _params_logged(event: Event, state: StateView) -> list[Effect]:
    run_id = event.body["run_id"]
    _run(state, run_id)
    effects: list[Effect] = []
    seen: dict[str, str] = {}
    for pair in event.body["params"]:
        key, value = pair["key"], pair["value"]
        logged = state.row("params", (run_id, key))
        previous = logged["value"] if logged else seen.get(key)
        if previous is not None and previous != value:
            raise Rejected(f"param {key!r} of run {run_id!r} was logged as {previous!r}; params are immutable, "
                           f"cannot change it to {value!r}")
        if previous is None:
            seen[key] = value
            effects.append(Put("params", {"run_id": run_id, "key": key, "value": value}))
    return effects


@handles("RunTagsSet")
def _run_tags_set(event: Event, state: StateView) -> list[Effect]:
    _run(state, event.body["run_id"])
    return _tags("tags", {"run_id": event.body["run_id"]}, event.body["tags"])


@handles("RunTagDeleted")
def _run_tag_deleted(event: Event, state: StateView) -> list[Effect]:
    key = (event.body["run_id"], event.body["key"])
    _run(state, key[0])
    if state.row("tags", key) is None:
        raise Rejected(f"run {key[0]!r} has no tag {key[1]!r}")
    return [Remove("tags", key)]


@handles("MetricsLogged")
def _metrics_logged(event: Event, state: StateView) -> list[Effect]:
    _run(state, event.body["run_id"])
    return [AppendMetrics(event.body["run_id"], event.body["series"])]


@handles("DatasetInputLogged")
def _dataset_input_logged(event: Event, state: StateView) -> list[Effect]:
    body, dataset = event.body, event.body["dataset"]
    _run(state, body["run_id"])
    dataset_id = uuid.uuid5(DATASET_NAMESPACE, f"{dataset['name']}\0{dataset['digest']}").hex
    return [
        Put("datasets", {"dataset_id": dataset_id, **{k: dataset.get(k) for k in
                                                       ("name", "digest", "source_type", "source", "schema", "profile")}}),
        Put("run_inputs", {"run_id": body["run_id"], "dataset_id": dataset_id, "context": body["context"] or "",
                           "tags": json.dumps({t["key"]: t["value"] for t in body["tags"]}, sort_keys=True)}),
        Append("lineage", {"source_type": "dataset", "source_id": dataset_id, "target_type": "run",
                           "target_id": body["run_id"], "relation": body["context"] or "input", "event_id": event.event_id}),
    ]


@handles("ArtifactLogged")
def _artifact_logged(event: Event, state: StateView) -> list[Effect]:
    body = event.body
    _run(state, body["run_id"])
    return [Put("artifacts", {"run_id": body["run_id"], "path": body["path"], "uri": body["uri"], "size": body["size"],
                              "sha256": body["sha256"], "logged_at": event.occurred_at})]


# ---- registry --------------------------------------------------------------------------------

@handles("RegisteredModelCreated")
def _model_created(event: Event, state: StateView) -> list[Effect]:
    body = event.body
    existing = state.row("registered_models", (body["name"],))
    if existing is not None and existing["lifecycle_stage"] == "active":
        raise Rejected(f"registered model {body['name']!r} already exists")
    row = {"name": body["name"], "description": body["description"], "lifecycle_stage": "active",
           "creation_time": _at(event), "last_updated_time": _at(event)}
    stale = _leftovers_of_deleted_model(state, body["name"])
    return [*stale, Put("registered_models", row), *_tags("registered_model_tags", {"name": body["name"]}, body["tags"])]


_MODEL_CHILD_TABLES = ("registered_model_tags", "model_versions", "model_version_tags", "model_aliases")


def _leftovers_of_deleted_model(state: StateView, name: str) -> list[Effect]:
    """Rows a deleted model left under its name: a model created (or renamed) onto that name starts
    clean, with version numbers from 1 again, as MLflow deletes a model with its versions."""
    return [Remove(table, _key_of(table, child)) for table in _MODEL_CHILD_TABLES for child in state.rows(table, (name,))]


def _model_touched(event: Event, row: dict[str, Any], **changes: Any) -> Put:
    return Put("registered_models", {**row, **changes, "last_updated_time": _at(event)})


@handles("RegisteredModelRenamed")
def _model_renamed(event: Event, state: StateView) -> list[Effect]:
    old, new = event.body["name"], event.body["new_name"]
    row = _model(state, old)
    taken = state.row("registered_models", (new,))
    if taken is not None and taken["lifecycle_stage"] == "active":
        raise Rejected(f"cannot rename {old!r}: registered model {new!r} already exists")
    effects: list[Effect] = [*_leftovers_of_deleted_model(state, new), Remove("registered_models", (old,)),
                             _model_touched(event, row, name=new)]
    for table in _MODEL_CHILD_TABLES:
        for child in state.rows(table, (old,)):
            table_key = _key_of(table, child)
            moved = {**child, "name": new}
            if table == "model_versions" and child["lifecycle_stage"] == "active":
                moved["last_updated_time"] = _at(event)  # MLflow stamps every version with the rename
            effects += [Remove(table, table_key), Put(table, moved)]
    return effects


def _key_of(table: str, row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[c] for c in TABLES_BY_NAME[table].key)


@handles("RegisteredModelUpdated")
def _model_updated(event: Event, state: StateView) -> list[Effect]:
    return [_model_touched(event, _model(state, event.body["name"]), description=event.body["description"])]


@handles("RegisteredModelDeleted")
def _model_deleted(event: Event, state: StateView) -> list[Effect]:
    name = event.body["name"]
    effects: list[Effect] = [_model_touched(event, _model(state, name), lifecycle_stage="deleted")]
    for version in state.rows("model_versions", (name,)):
        effects.append(Put("model_versions", {**version, "lifecycle_stage": "deleted", "last_updated_time": _at(event)}))
    for alias in state.rows("model_aliases", (name,)):
        effects += _alias_removed(event, alias)
    return effects


@handles("RegisteredModelTagSet")
def _model_tag_set(event: Event, state: StateView) -> list[Effect]:
    body = event.body
    _model(state, body["name"])
    return [Put("registered_model_tags", {"name": body["name"], "key": body["key"], "value": body["value"]})]


@handles("RegisteredModelTagDeleted")
def _model_tag_deleted(event: Event, state: StateView) -> list[Effect]:
    key = (event.body["name"], event.body["key"])
    _model(state, key[0])
    if state.row("registered_model_tags", key) is None:
        raise Rejected(f"registered model {key[0]!r} has no tag {key[1]!r}")
    return [Remove("registered_model_tags", key)]


@handles("ModelVersionCreated")
def _version_created(event: Event, state: StateView) -> list[Effect]:
    body = event.body
    model = _model(state, body["name"])
    existing = state.row("model_versions", (body["name"], body["version"]))
    if existing is not None and existing["lifecycle_stage"] == "active":
        raise Rejected(f"model version {body['name']!r} v{body['version']} already exists")
    row = {"name": body["name"], "version": body["version"], "source": body["source"], "run_id": body["run_id"],
           "artifact_uri": body["artifact_uri"], "signature": body["signature"], "description": body["description"],
           "stage": "NONE", "lifecycle_stage": "active", "creation_time": _at(event), "last_updated_time": _at(event),
           "model_id": body.get("model_id"), "run_link": body.get("run_link")}  # v2 fields: v1 audit payloads lack them
    effects: list[Effect] = [Put("model_versions", row), _model_touched(event, model)]
    effects += _tags("model_version_tags", {"name": body["name"], "version": body["version"]}, body["tags"])
    target = f"{body['name']}/{body['version']}"
    if body["run_id"]:
        effects.append(Append("lineage", {"source_type": "run", "source_id": body["run_id"], "target_type": "model_version",
                                          "target_id": target, "relation": "produced", "event_id": event.event_id}))
    if body.get("model_id"):  # the logged model is keyed model/<id>: recorded, never checked
        effects.append(Append("lineage", {"source_type": "logged_model", "source_id": body["model_id"],
                                          "target_type": "model_version", "target_id": target,
                                          "relation": "registered_as", "event_id": event.event_id}))
    return effects


@handles("ModelVersionUpdated")
def _version_updated(event: Event, state: StateView) -> list[Effect]:
    row = _version(state, event.body["name"], event.body["version"])
    return [Put("model_versions", {**row, "description": event.body["description"], "last_updated_time": _at(event)})]


def _alias_removed(event: Event, alias: dict[str, Any]) -> list[Effect]:
    return [Remove("model_aliases", (alias["name"], alias["alias"])),
            Append("model_alias_history", {"name": alias["name"], "alias": alias["alias"], "version": None,
                                           "action": "deleted", "event_id": event.event_id,
                                           "occurred_at": event.occurred_at, "actor": event.envelope["actor"]})]


@handles("ModelVersionAliasSet")
def _alias_set(event: Event, state: StateView) -> list[Effect]:
    body = event.body
    _version(state, body["name"], body["version"])
    return [Put("model_aliases", {"name": body["name"], "alias": body["alias"], "version": body["version"]}),
            Append("model_alias_history", {"name": body["name"], "alias": body["alias"], "version": body["version"],
                                           "action": "set", "event_id": event.event_id,
                                           "occurred_at": event.occurred_at, "actor": event.envelope["actor"]})]


@handles("ModelVersionAliasDeleted")
def _alias_deleted(event: Event, state: StateView) -> list[Effect]:
    alias = state.row("model_aliases", (event.body["name"], event.body["alias"]))
    _model(state, event.body["name"])
    if alias is None:
        raise Rejected(f"registered model {event.body['name']!r} has no alias {event.body['alias']!r}")
    return _alias_removed(event, alias)


@handles("ModelVersionStageChanged")
def _stage_changed(event: Event, state: StateView) -> list[Effect]:
    body = event.body
    row = _version(state, body["name"], body["version"])
    effects: list[Effect] = [Put("model_versions", {**row, "stage": body["stage"], "last_updated_time": _at(event)}),
                             _model_touched(event, _model(state, body["name"]))]
    if body["archive_existing_versions"] and body["stage"] in ("STAGING", "PRODUCTION"):
        for other in state.rows("model_versions", (body["name"],)):
            if other["version"] != body["version"] and other["stage"] == body["stage"] and other["lifecycle_stage"] == "active":
                effects.append(Put("model_versions", {**other, "stage": "ARCHIVED", "last_updated_time": _at(event)}))
    return effects


@handles("ModelVersionTagSet")
def _version_tag_set(event: Event, state: StateView) -> list[Effect]:
    body = event.body
    _version(state, body["name"], body["version"])
    return [Put("model_version_tags", {"name": body["name"], "version": body["version"], "key": body["key"], "value": body["value"]})]


@handles("ModelVersionTagDeleted")
def _version_tag_deleted(event: Event, state: StateView) -> list[Effect]:
    key = (event.body["name"], event.body["version"], event.body["key"])
    _version(state, key[0], key[1])
    if state.row("model_version_tags", key) is None:
        raise Rejected(f"model version {key[0]!r} v{key[1]} has no tag {key[2]!r}")
    return [Remove("model_version_tags", key)]


@handles("ModelVersionDeleted")
def _version_deleted(event: Event, state: StateView) -> list[Effect]:
    row = _version(state, event.body["name"], event.body["version"])
    effects: list[Effect] = [Put("model_versions", {**row, "lifecycle_stage": "deleted", "last_updated_time": _at(event)}),
                             _model_touched(event, _model(state, row["name"]))]
    for alias in state.rows("model_aliases", (row["name"],)):
        if alias["version"] == row["version"]:
            effects += _alias_removed(event, alias)
    return effects


# ---- MLflow 3 logged models (key model/<model_id>) and run outputs (key run/<run_id>) -----------

def _logged_model(state: StateView, model_id: str) -> dict[str, Any]:
    row = state.row("logged_models", (model_id,))
    if row is None:
        raise Rejected(f"logged model {model_id!r} does not exist")
    return row


def _new_params(state: StateView, model_id: str, pairs: list[dict[str, str]]) -> list[Effect]:
    """Params not logged before; a key logged again with another value rejects the event (immutable)."""
    effects: list[Effect] = []
    seen: dict[str, str] = {}
    for pair in pairs:
        key, value = pair["key"], pair["value"]
        logged = state.row("logged_model_params", (model_id, key))
        previous = logged["value"] if logged else seen.get(key)
        if previous is not None and previous != value:
            raise Rejected(f"param {key!r} of logged model {model_id!r} was logged as {previous!r}; params are "
                           f"immutable, cannot change it to {value!r}")
        if previous is None:
            seen[key] = value
            effects.append(Put("logged_model_params", {"model_id": model_id, "key": key, "value": value}))
    return effects


@handles("LoggedModelCreated")
def _logged_model_created(event: Event, state: StateView) -> list[Effect]:
    # the experiment is not checked (another ordering key); the server checked it when it wrote the event
    body = event.body
    if state.row("logged_models", (body["model_id"],)) is not None:
        raise Rejected(f"logged model {body['model_id']!r} already exists")
    row = {"model_id": body["model_id"], "experiment_id": body["experiment_id"], "name": body["name"],
           "artifact_location": body["artifact_location"], "model_type": body["model_type"],
           "source_run_id": body["source_run_id"], "status": "PENDING", "status_message": None,
           "lifecycle_stage": "active", "creation_time": _at(event), "last_updated_time": _at(event)}
    effects: list[Effect] = [Put("logged_models", row), *_new_params(state, body["model_id"], body["params"]),
                             *_tags("logged_model_tags", {"model_id": body["model_id"]}, body["tags"])]
    if body["source_run_id"]:
        effects.append(Append("lineage", {"source_type": "run", "source_id": body["source_run_id"],
                                          "target_type": "logged_model", "target_id": body["model_id"],
                                          "relation": "produced", "event_id": event.event_id}))
    return effects


@handles("LoggedModelFinalized")
def _logged_model_finalized(event: Event, state: StateView) -> list[Effect]:
    row = _logged_model(state, event.body["model_id"])
    return [Put("logged_models", {**row, "status": event.body["status"], "status_message": event.body["status_message"],
                                  "last_updated_time": _at(event)})]


@handles("LoggedModelTagsSet")
def _logged_model_tags_set(event: Event, state: StateView) -> list[Effect]:
    _logged_model(state, event.body["model_id"])
    return _tags("logged_model_tags", {"model_id": event.body["model_id"]}, event.body["tags"])


@handles("LoggedModelTagDeleted")
def _logged_model_tag_deleted(event: Event, state: StateView) -> list[Effect]:
    key = (event.body["model_id"], event.body["key"])
    _logged_model(state, key[0])
    if state.row("logged_model_tags", key) is None:
        raise Rejected(f"logged model {key[0]!r} has no tag {key[1]!r}")
    return [Remove("logged_model_tags", key)]


@handles("LoggedModelParamsLogged")
def _logged_model_params_logged(event: Event, state: StateView) -> list[Effect]:
    _logged_model(state, event.body["model_id"])
    return _new_params(state, event.body["model_id"], event.body["params"])


@handles("LoggedModelDeleted")
def _logged_model_deleted(event: Event, state: StateView) -> list[Effect]:
    row = _logged_model(state, event.body["model_id"])  # deleting again only moves last_updated_time, as MLflow
    return [Put("logged_models", {**row, "lifecycle_stage": "deleted", "last_updated_time": _at(event)})]


@handles("LoggedModelMetricsLogged")
def _logged_model_metrics_logged(event: Event, state: StateView) -> list[Effect]:
    body = event.body  # keyed model/<id>; the run is another key: recorded, never required to exist
    return [Append("logged_model_metrics", {"model_id": body["model_id"], "key": m["key"], "step": m["step"],
                                            "timestamp": m["timestamp"], "value": m["value"], "run_id": body["run_id"],
                                            "dataset_name": m["dataset_name"], "dataset_digest": m["dataset_digest"]})
            for m in body["metrics"]]


@handles("RunModelInputsLogged")
def _run_model_inputs_logged(event: Event, state: StateView) -> list[Effect]:
    run_id = event.body["run_id"]
    _run(state, run_id)  # the models are keyed model/<id>: recorded as inputs, never required to exist
    effects: list[Effect] = []
    for model in event.body["models"]:
        effects.append(Put("run_model_inputs", {"run_id": run_id, "model_id": model["model_id"]}))
        effects.append(Append("lineage", {"source_type": "logged_model", "source_id": model["model_id"],
                                          "target_type": "run", "target_id": run_id, "relation": "input",
                                          "event_id": event.event_id}))
    return effects


@handles("RunOutputsLogged")
def _run_outputs_logged(event: Event, state: StateView) -> list[Effect]:
    run_id = event.body["run_id"]
    _run(state, run_id)  # the models are keyed model/<id>: recorded as outputs, never required to exist
    effects: list[Effect] = []
    for output in event.body["models"]:
        effects.append(Put("run_outputs", {"run_id": run_id, "model_id": output["model_id"], "step": output["step"]}))
        effects.append(Append("lineage", {"source_type": "run", "source_id": run_id, "target_type": "logged_model",
                                          "target_id": output["model_id"], "relation": "output",
                                          "event_id": event.event_id}))
    return effects


# ---- the audit row ---------------------------------------------------------------------------

_ENTITY_FIELDS = {"experiment_id": "experiment_id", "run_id": "run_id", "name": "model_name", "version": "model_version"}


def audit_row(event: Event, partition: int, offset: int) -> dict[str, Any]:
    """The ``events`` row of an applied event: envelope, entity ids, position, payload as JSON."""
    envelope, body = event.envelope, event.body
    payload = {k: v for k, v in body.items() if k != "envelope"}
    if event.type == "MetricsLogged":
        payload["series"] = [{"key": s["key"], "points": count_points([s])} for s in body["series"]]
    row = {"event_id": envelope["event_id"], "event_type": event.type, "schema_version": event.schema_version or 0,
           "occurred_at": envelope["occurred_at"], "actor": envelope["actor"], "producer_id": envelope["producer_id"],
           "sequence": envelope["sequence"], "entity_key": envelope["entity_key"],
           "experiment_id": None, "run_id": None, "model_name": None, "model_version": None,
           "log_partition": partition, "log_offset": offset, "payload": json.dumps(payload, sort_keys=True, default=str)}
    for field, column in _ENTITY_FIELDS.items():
        if field in body and not (column == "model_name" and event.type.startswith("LoggedModel")):
            row[column] = body[field]
    return row
