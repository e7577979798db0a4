"""MLflow tracking service, part 1: experiments and the run lifecycle (create, get, update, delete, restore).

Every write becomes events in one atomic batch (ExperimentCreated, RunStarted, RunStatusChanged ...);
reads come from the projection with read-your-writes. Logging into runs is in ``run_logging``,
search and metric history in ``run_search``. Semantics follow MLflow's server with its SQL store:
a deleted experiment's name stays taken, deleting an experiment deletes its runs and restoring it
restores them, a deleted run is still readable by id, writes to it are refused.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, Response

from ledgerflow.api.mlflow import checks
from ledgerflow.api.mlflow.protocol import (
    TRACKING_PREFIXES,
    bad_state,
    does_not_exist,
    int64_field,
    invalid,
    list_field,
    request_fields,
    run_id_field,
    string_field,
    wrong_type,
)
from ledgerflow.api.mlflow.run_cache import run_cache_of
from ledgerflow.api.mlflow.run_facts import (
    ExperimentFacts,
    experiment_not_found,
    projection_cursor,
    run_not_found,
)
from ledgerflow.api.mlflow.shapes import json_text_response, load_experiments, load_runs_json, run_info_json
from ledgerflow.api.mlflow.state import State, TrackingState
from ledgerflow.api.responses import FastJSONResponse
from ledgerflow.ingest.sdk.entities import friendly_run_name
from ledgerflow.schemas.limits import MAX_TAG_VALUE_LENGTH

PREFIXES = TRACKING_PREFIXES
router = APIRouter(tags=["mlflow"])
Fields = Annotated[dict[str, Any], Depends(request_fields)]

RUN_NAME_TAG = "mlflow.runName"
PARENT_RUN_TAG = "mlflow.parentRunId"
RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")  # proto enum values 1..5


def now_millis() -> int:
    return time.time_ns() // 1_000_000


def tag_pairs(values: list[Any], field: str) -> list[dict[str, str]]:
    """``[{key, value}]`` of a request's ``tags`` field, keys checked and values bounded as MLflow does."""
    pairs = []
    for index, tag in enumerate(values):
        if not isinstance(tag, dict):
            raise checks.invalid_value(f"{field}[{index}]", tag, "it must be an object with key and value")
        key = checks.check_name(tag.get("key"), f"{field}[{index}].key", f"{field}[{index}].key")
        value = checks.bounded_value(tag.get("value"), f"{field}[{index}].value", "Tag value",
                                     MAX_TAG_VALUE_LENGTH)
        pairs.append({"key": key, "value": value})
    return pairs


def run_status(value: Any) -> str:
    """A RunStatus given by name ("FINISHED") or by proto number (3)."""
    if isinstance(value, str) and value.upper() in RUN_STATUSES:
        return value.upper()
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= len(RUN_STATUSES):
        return RUN_STATUSES[value - 1]
    raise wrong_type("status", value)


def local_location(location: str) -> str:
    """MLflow keeps a scheme-less artifact location as an absolute path, resolved where the server runs."""
    if location.startswith("runs:"):
        raise invalid(f"Artifact location cannot be a runs:/ URI. Given: '{location}'")
    if urlsplit(location).scheme in ("", "file") and not location.startswith("file:"):
        return os.path.abspath(location)
    return location


# ---- experiments -------------------------------------------------------------------------------

@router.post("/experiments/create")
def create_experiment(request: Request, fields: Fields, state: State) -> FastJSONResponse:
    name = checks.experiment_name(string_field(fields, "name", required=True))
    location = string_field(fields, "artifact_location")
    tags = []
    for tag in list_field(fields, "tags"):
        if not isinstance(tag, dict):
            raise wrong_type("tags", fields["tags"])
        key, value = checks.experiment_tag(tag.get("key"), tag.get("value"))
        tags.append({"key": key, "value": value})
    experiment_id = state.create_experiment(request, name, local_location(location) if location else None, tags)
    return FastJSONResponse({"experiment_id": experiment_id})


def _experiment_json(state: TrackingState, experiment_id: str) -> dict[str, Any]:
    with projection_cursor(state.runtime) as cursor:
        found = load_experiments(cursor, [experiment_id])
    if not found:
        raise experiment_not_found(experiment_id)
    return found[0]


@router.get("/experiments/get")
def get_experiment(fields: Fields, state: State) -> FastJSONResponse:
    experiment_id = string_field(fields, "experiment_id", required=True) or ""
    return FastJSONResponse({"experiment": _experiment_json(state, experiment_id)})


@router.get("/experiments/get-by-name")
def get_experiment_by_name(fields: Fields, state: State) -> FastJSONResponse:
    name = string_field(fields, "experiment_name", required=True)
    with projection_cursor(state.runtime) as cursor:
        row = cursor.execute("SELECT experiment_id FROM experiments WHERE name = ?", [name]).fetchone()
        found = load_experiments(cursor, [row[0]]) if row else []
    if not found:
        raise does_not_exist(f"Could not find experiment with name '{name}'")
    return FastJSONResponse({"experiment": found[0]})


def _experiment_runs(state: TrackingState, experiment_id: str, stage: str) -> tuple[str, list[str]]:
    """(the experiment's lifecycle stage, its runs in ``stage``), read consistently; 404 if unknown."""
    with projection_cursor(state.runtime) as cursor:
        row = cursor.execute("SELECT lifecycle_stage FROM experiments WHERE experiment_id = ?",
                             [experiment_id]).fetchone()
        if row is None:
            raise experiment_not_found(experiment_id)
        runs = [run_id for (run_id,) in cursor.execute(
            "SELECT run_id FROM runs WHERE experiment_id = ? AND lifecycle_stage = ? ORDER BY run_id",
            [experiment_id, stage]).fetchall()]
    return row[0], runs


@router.post("/experiments/delete")
def delete_experiment(request: Request, fields: Fields, state: State) -> FastJSONResponse:
    """Deletes the experiment and, as MLflow does, every run in it (restorable together)."""
    experiment_id = string_field(fields, "experiment_id", required=True) or ""
    stage, runs = _experiment_runs(state, experiment_id, "active")
    if stage != "active":
        raise experiment_not_found(experiment_id)
    state.emit(request, [("ExperimentDeleted", {"experiment_id": experiment_id}),
                         *(("RunDeleted", {"run_id": run_id}) for run_id in runs)])
    state.facts.forget_experiment(experiment_id)
    state.facts.runs_changed(runs, lifecycle_stage="deleted")
    return FastJSONResponse({})


@router.post("/experiments/restore")
def restore_experiment(request: Request, fields: Fields, state: State) -> FastJSONResponse:
    experiment_id = string_field(fields, "experiment_id", required=True) or ""
    stage, runs = _experiment_runs(state, experiment_id, "deleted")
    if stage != "deleted":
        raise experiment_not_found(experiment_id)
    state.emit(request, [("ExperimentRestored", {"experiment_id": experiment_id}),
                         *(("RunRestored", {"run_id": run_id}) for run_id in runs)])
    state.facts.forget_experiment(experiment_id)
    state.facts.runs_changed(runs, lifecycle_stage="active")
    return FastJSONResponse({})


@router.post("/experiments/update")
def update_experiment(request: Request, fields: Fields, state: State) -> FastJSONResponse:
    """Renames an experiment; the new name must be free (deleted experiments keep theirs)."""
    experiment_id = string_field(fields, "experiment_id", required=True) or ""
    new_name = checks.experiment_name(string_field(fields, "new_name", required=True), "new_name")
    with state.names_lock, projection_cursor(state.runtime) as cursor:
        row = cursor.execute("SELECT name, lifecycle_stage FROM experiments WHERE experiment_id = ?",
                             [experiment_id]).fetchone()
        if row is None:
            raise experiment_not_found(experiment_id)
        if row[1] != "active":
            raise bad_state("Cannot rename a non-active experiment.")
        if row[0] == new_name:
            return FastJSONResponse({})
        if cursor.execute("SELECT 1 FROM experiments WHERE name = ?", [new_name]).fetchone():
            raise checks.invalid_value("new_name", new_name, f"an experiment named {new_name!r} already exists")
        state.emit(request, [("ExperimentRenamed", {"experiment_id": experiment_id, "new_name": new_name})])
    state.facts.forget_experiment(experiment_id)
    return FastJSONResponse({})


def _active_experiment(state: TrackingState, experiment_id: str) -> None:
    with projection_cursor(state.runtime) as cursor:
        row = cursor.execute("SELECT lifecycle_stage FROM experiments WHERE experiment_id = ?",
                             [experiment_id]).fetchone()
    if row is None:
        raise experiment_not_found(experiment_id)
    ExperimentFacts({"experiment_id": experiment_id, "lifecycle_stage": row[0]}).check_active()


@router.post("/experiments/set-experiment-tag")
def set_experiment_tag(request: Request, fields: Fields, state: State) -> FastJSONResponse:
    experiment_id = string_field(fields, "experiment_id", required=True) or ""
    key, value = checks.experiment_tag(string_field(fields, "key", required=True), string_field(fields, "value"))
    _active_experiment(state, experiment_id)
    state.emit(request, [("ExperimentTagSet", {"experiment_id": experiment_id, "key": key, "value": value})])
    return FastJSONResponse({})


@router.post("/experiments/delete-experiment-tag")
def delete_experiment_tag(request: Request, fields: Fields, state: State) -> FastJSONResponse:
    experiment_id = string_field(fields, "experiment_id", required=True) or ""
    key = string_field(fields, "key", required=True) or ""
    _active_experiment(state, experiment_id)
    with projection_cursor(state.runtime) as cursor:
        present = cursor.execute("SELECT 1 FROM experiment_tags WHERE experiment_id = ? AND key = ?",
                                 [experiment_id, key]).fetchone()
    if not present:
        raise does_not_exist(f"No tag with name: {key} in experiment with id {experiment_id}")
    state.emit(request, [("ExperimentTagDeleted", {"experiment_id": experiment_id, "key": key})])
    return FastJSONResponse({})


# ---- the run lifecycle ---------------------------------------------------------------------------

@router.post("/runs/create")
def create_run(request: Request, fields: Fields, state: State) -> FastJSONResponse:
    """Starts a run (RUNNING) in an active experiment; "0" (Default) when no experiment is named."""
    experiment_id = string_field(fields, "experiment_id") or "0"
    user_id = string_field(fields, "user_id") or ""
    run_name = string_field(fields, "run_name") or ""
    start_time = int64_field(fields, "start_time")
    tags = tag_pairs(list_field(fields, "tags"), "tags")
    experiment = state.facts.experiment(experiment_id)
    experiment.check_active()
    named = {tag["key"]: tag["value"] for tag in tags}
    if run_name and named.get(RUN_NAME_TAG) and named[RUN_NAME_TAG] != run_name:
        raise invalid(f"Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different values "
                      f"(run_name='{run_name}', mlflow.runName='{named[RUN_NAME_TAG]}').")
    run_name = run_name or named.get(RUN_NAME_TAG) or friendly_run_name()
    if RUN_NAME_TAG not in named:
        tags.append({"key": RUN_NAME_TAG, "value": run_name})
        named[RUN_NAME_TAG] = run_name
    run_id = uuid.uuid4().hex
    location = (experiment.info["artifact_location"] or "").rstrip("/")
    info = {"run_id": run_id, "experiment_id": experiment_id, "run_name": run_name, "user_id": user_id,
            "status": "RUNNING", "start_time": now_millis() if start_time is None else start_time, "end_time": None,
            "lifecycle_stage": "active", "artifact_uri": f"{location}/{run_id}/artifacts"}
    state.emit(request, [("RunStarted", {
        "run_id": run_id, "experiment_id": experiment_id, "run_name": run_name,
        "parent_run_id": named.get(PARENT_RUN_TAG) or None, "start_time": info["start_time"], "status": "RUNNING",
        "user_id": user_id, "artifact_uri": info["artifact_uri"], "tags": list({t["key"]: t for t in tags}.values()),
    })], actor_fallback=user_id or None)
    state.facts.new_run(dict(info), {}, set(named))
    data = {"tags": sorted(({"key": k, "value": v} for k, v in named.items()), key=lambda t: t["key"])}
    return FastJSONResponse({"run": {"info": run_info_json(info), "data": data, "inputs": {}, "outputs": {}}})


@router.get("/runs/get")
def get_run(fields: Fields, state: State) -> Response:
    run_id = run_id_field(fields)
    with projection_cursor(state.runtime) as cursor:
        position = state.runtime.committed_position  # before any row is read: what the cache is valid at
        found = load_runs_json(cursor, [run_id], cache=(run_cache_of(state.runtime), position))
    if not found:
        raise run_not_found(run_id)
    return json_text_response(f'{{"run":{found[0]}}}')


@router.post("/runs/update")
def update_run(request: Request, fields: Fields, state: State) -> FastJSONResponse:
    """Sets status, end time and/or name of an active run; answers the updated run info."""
    run_id = run_id_field(fields)
    status = run_status(fields["status"]) if fields.get("status") not in (None, "") else None
    end_time = int64_field(fields, "end_time")
    run_name = string_field(fields, "run_name")
    with state.facts.writing(run_id) as run:
        run.check_active()
        events: list[tuple[str, dict[str, Any]]] = []
        new_status = status or run.info["status"]
        new_end = run.info["end_time"] if end_time is None else end_time
        if (new_status, new_end) != (run.info["status"], run.info["end_time"]):  # the client resends both
            events.append(("RunStatusChanged", {"run_id": run_id, "status": new_status, "end_time": new_end}))
        if run_name and run_name != run.info["run_name"]:
            events += [("RunRenamed", {"run_id": run_id, "new_name": run_name}),
                       ("RunTagsSet", {"run_id": run_id, "tags": [{"key": RUN_NAME_TAG, "value": run_name}]})]
        if events:
            state.emit(request, events, actor_fallback=run.info["user_id"] or None)
            run.info["status"], run.info["end_time"] = new_status, new_end
            if run_name:
                run.info["run_name"] = run_name
                run.tag_keys.add(RUN_NAME_TAG)
        info = run_info_json(run.info)
    return FastJSONResponse({"run_info": info})


@router.post("/runs/delete")
def delete_run(request: Request, fields: Fields, state: State) -> FastJSONResponse:
    """Soft-deletes a run (search hides it, get_run still finds it); deleting a deleted run is a no-op."""
    run_id = string_field(fields, "run_id", required=True) or ""
    with state.facts.writing(run_id) as run:
        if run.info["lifecycle_stage"] == "active":
            state.emit(request, [("RunDeleted", {"run_id": run_id})], actor_fallback=run.info["user_id"] or None)
            run.info["lifecycle_stage"] = "deleted"
    return FastJSONResponse({})


@router.post("/runs/restore")
def restore_run(request: Request, fields: Fields, state: State) -> FastJSONResponse:
    run_id = string_field(fields, "run_id", required=True) or ""
    with state.facts.writing(run_id) as run:
        if run.info["lifecycle_stage"] != "active":
            state.emit(request, [("RunRestored", {"run_id": run_id})], actor_fallback=run.info["user_id"] or None)
            run.info["lifecycle_stage"] = "active"
    return FastJSONResponse({})

