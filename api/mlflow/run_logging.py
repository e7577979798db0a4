"""MLflow tracking service, part 2: logging into a run (metrics, params, tags, inputs, the model history tag).

Each call is checked against the run's write-side facts (run_facts.py) under the run's lock, then
appended as one batch: MetricsLogged (points packed per key; points that name an MLflow 3 logged
model also go into a LoggedModelMetricsLogged for it), ParamsLogged, RunTagsSet, RunRenamed (setting
``mlflow.runName`` renames the run, as in MLflow), DatasetInputLogged, RunModelInputsLogged. Only
then are the facts updated, so a failed append leaves them as they were.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from ledgerflow.api.mlflow import checks
from ledgerflow.api.mlflow.protocol import (
    TRACKING_PREFIXES,
    does_not_exist,
    double_field,
    int64_field,
    invalid,
    list_field,
    missing_parameter,
    request_fields,
    run_id_field,
    string_field,
)
from ledgerflow.api.mlflow.run_facts import RunFacts, projection_cursor
from ledgerflow.api.mlflow.state import State, TrackingState
from ledgerflow.api.mlflow.tracking import RUN_NAME_TAG, tag_pairs
from ledgerflow.api.responses import FastJSONResponse
from ledgerflow.schemas import pack_series
from ledgerflow.schemas.limits import MAX_PARAM_VALUE_LENGTH, MAX_TAG_VALUE_LENGTH

PREFIXES = TRACKING_PREFIXES
router = APIRouter(tags=["mlflow"])
Fields = Annotated[dict[str, Any], Depends(request_fields)]

MODEL_HISTORY_TAG = "mlflow.log-model.history"
DATASET_CONTEXT_TAG = "mlflow.data.context"
_MODEL_FIELDS = ("run_id", "utc_time_created", "artifact_path", "model_uuid")

Event = tuple[str, dict[str, Any]]


def metrics_event(run_id: str, points: list[tuple[str, float, int, int]]) -> Event:
    """One MetricsLogged for (key, value, timestamp, step) points: one packed series per key."""
    by_key: dict[str, tuple[list[int], list[int], list[float]]] = {}
    for key, value, timestamp, step in points:
        columns = by_key.get(key)
        if columns is None:
            columns = by_key[key] = ([], [], [])
        columns[0].append(step)
        columns[1].append(timestamp)
        columns[2].append(value)
    return ("MetricsLogged", {"run_id": run_id, "series": [pack_series(key, steps, timestamps, values)
                                                            for key, (steps, timestamps, values) in by_key.items()]})


ModelPoint = tuple[str, str, float, int, int, str | None, str | None]  # model_id, key, value, ts, step, dataset


def model_metric_events(run_id: str, points: list[ModelPoint]) -> list[Event]:
    """MLflow 3 metrics that carry a model_id also belong to that logged model: one event per model."""
    by_model: dict[str, list[dict[str, Any]]] = {}
    for model_id, key, value, timestamp, step, dataset_name, dataset_digest in points:
        by_model.setdefault(model_id, []).append({"key": key, "value": value, "timestamp": timestamp, "step": step,
                                                  "dataset_name": dataset_name, "dataset_digest": dataset_digest})
    return [("LoggedModelMetricsLogged", {"model_id": model_id, "run_id": run_id, "metrics": metrics})
            for model_id, metrics in by_model.items()]


def _optional_string(metric: dict[str, Any], name: str, path: str) -> str | None:
    value = metric.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise checks.invalid_value(path, value, "it must be a string")
    return value


def tag_events(run: RunFacts, tags: list[dict[str, str]]) -> list[Event]:
    """RunTagsSet, plus RunRenamed when ``mlflow.runName`` is among them (the last value wins)."""
    if not tags:
        return []
    latest = {tag["key"]: tag for tag in tags}
    events: list[Event] = [("RunTagsSet", {"run_id": run.run_id, "tags": list(latest.values())})]
    if RUN_NAME_TAG in latest:
        events.append(("RunRenamed", {"run_id": run.run_id, "new_name": latest[RUN_NAME_TAG]["value"]}))
    return events


def tags_applied(run: RunFacts, tags: list[dict[str, str]]) -> None:
    for tag in tags:
        run.tag_keys.add(tag["key"])
        if tag["key"] == RUN_NAME_TAG:
            run.info["run_name"] = tag["value"]


def new_params(run: RunFacts, params: list[dict[str, str]]) -> list[dict[str, str]]:
    """Params not logged before; a key logged before with another value is refused (params are immutable)."""
    changed = [{"key": p["key"], "old_value": run.params[p["key"]], "new_value": p["value"]}
               for p in params if p["key"] in run.params and run.params[p["key"]] != p["value"]]
    if changed:
        raise invalid(f"Changing param values is not allowed. Params were already logged='{changed}' "
                      f"for run ID='{run.run_id}'.")
    return [p for p in params if p["key"] not in run.params]


def _append(state: TrackingState, request: Request, run: RunFacts, events: list[Event]) -> None:
    if events:
        state.emit(request, events, actor_fallback=run.info["user_id"] or None)


# ---- metrics, params, tags ---------------------------------------------------------------------

@router.post("/runs/log-metric")
def log_metric(request: Request, fields: Fields, state: State) -> FastJSONResponse:
    run_id = run_id_field(fields)
    key = checks.check_name(string_field(fields, "key", required=True), "key", "Metric name")
    value = double_field(fields, "value", required=True)
    timestamp = int64_field(fields, "timestamp", required=True)
    step = int64_field(fields, "step") or 0
    model_id = string_field(fields, "model_id") or None
    dataset = (string_field(fields, "dataset_name") or None, string_field(fields, "dataset_digest") or None)
    assert value is not None and timestamp is not None
    if timestamp < 0:
        raise checks.invalid_value("timestamp", timestamp, f"metric '{key}' (value={value}). Timestamp must be a "
                                                           f"nonnegative long (64-bit integer) ")
    events = [metrics_event(run_id, [(key, value, timestamp, step)])]
    if model_id:
        events += model_metric_events(run_id, [(model_id, key, value, timestamp, step, *dataset)])
    with state.facts.writing(run_id) as run:
        run.check_active()
        _append(state, request, run, events)
    return FastJSONResponse({})


def _batch_metrics(values: list[Any]) -> tuple[list[tuple[str, float, int, int]], list[ModelPoint]]:
    points, model_points = [], []
    for index, metric in enumerate(values):
        if not isinstance(metric, dict):
            raise checks.invalid_value(f"metrics[{index}]", metric, "it must be an object")
        for name in ("key", "value", "timestamp"):
            if metric.get(name) is None or metric.get(name) == "":
                raise missing_parameter(f"metrics[{index}].{name}")
        key = checks.check_name(metric["key"], f"metrics[{index}].name", "Metric name")
        value = checks.metric_number(metric["value"], f"metrics[{index}].value", key, metric["timestamp"])
        timestamp = checks.metric_integer(metric["timestamp"], f"metrics[{index}].timestamp", key, value, "timestamp")
        step = 0 if metric.get("step") is None else checks.metric_integer(metric["step"], f"metrics[{index}].step",
                                                                          key, value, "step")
        points.append((key, value, timestamp, step))
        model_id = _optional_string(metric, "model_id", f"metrics[{index}].model_id")
        if model_id:
            model_points.append((model_id, key, value, timestamp, step,
                                 _optional_string(metric, "dataset_name", f"metrics[{index}].dataset_name"),
                                 _optional_string(metric, "dataset_digest", f"metrics[{index}].dataset_digest")))
    return points, model_points


def _batch_params(values: list[Any]) -> list[dict[str, str]]:
    params, seen, duplicates = [], set(), []
    for index, param in enumerate(values):
        if not isinstance(param, dict):
            raise checks.invalid_value(f"params[{index}]", param, "it must be an object with key and value")
        if param.get("key") in (None, ""):
            raise missing_parameter(f"params[{index}].key")
        key = checks.check_name(param["key"], f"params[{index}].key", "Param key")
        value = checks.bounded_value(param.get("value"), f"params[{index}].value", "Param value",
                                     MAX_PARAM_VALUE_LENGTH)
        if key in seen:
            duplicates.append(key)
        seen.add(key)
        params.append({"key": key, "value": value})
    if duplicates:
        raise invalid(f"Duplicate parameter keys have been submitted: {duplicates}. Please ensure the request "
                      f"contains only one param value per param key.")
    return params


@router.post("/runs/log-batch")
def log_batch(request: Request, fields: Fields, state: State) -> FastJSONResponse:
    """Up to 1000 metrics, 100 params and 100 tags (1000 in all), appended together or not at all."""
    run_id = checks.check_run_id(string_field(fields, "run_id", required=True) or "")
    raw_metrics, raw_params, raw_tags = (list_field(fields, "metrics"), list_field(fields, "params"),
                                         list_field(fields, "tags"))
    checks.check_batch_limits(len(raw_metrics), len(raw_params), len(raw_tags))
    for index, tag in enumerate(raw_tags):
        if isinstance(tag, dict) and tag.get("key") in (None, ""):
            raise missing_parameter(f"tags[{index}].key")
    points, model_points = _batch_metrics(raw_metrics)
    params = _batch_params(raw_params)
    tags = tag_pairs(raw_tags, "tags")
    if not (points or params or tags):
        with state.facts.writing(run_id) as run:
            run.check_active()
        return FastJSONResponse({})
    with state.facts.writing(run_id) as run:
        run.check_active()
        fresh = new_params(run, params)
        events: list[Event] = []
        if fresh:
            events.append(("ParamsLogged", {"run_id": run_id, "params": fresh}))
        if points:
            events.append(metrics_event(run_id, points))
            events += model_metric_events(run_id, model_points)
        events += tag_events(run, tags)
        _append(state, request, run, events)
        run.params.update((p["key"], p["value"]) for p in fresh)
        tags_applied(run, tags)
    return FastJSONResponse({})


@router.post("/runs/log-parameter")
def log_param(request: Request, fields: Fields, state: State) -> FastJSONResponse:
    run_id = run_id_field(fields)
    key = checks.check_name(string_field(fields, "key", required=True), "key", "Param key")
    value = checks.bounded_value(string_field(fields, "value"), "value", "Param value", MAX_PARAM_VALUE_LENGTH)
    with state.facts.writing(run_id) as run:
        run.check_active()
        if key in run.params:
            if run.params[key] != value:
                raise invalid(f"Changing param values is not allowed. Param with key='{key}' was already logged with "
                              f"value='{run.params[key]}' for run ID='{run_id}'. Attempted logging new value "
                              f"'{value}'.")
            return FastJSONResponse({})
        _append(state, request, run, [("ParamsLogged", {"run_id": run_id, "params": [{"key": key, "value": value}]})])
        run.params[key] = value
    return FastJSONResponse({})


@router.post("/runs/set-tag")
def set_tag(request: Request, fields: Fields, state: State) -> FastJSONResponse:
    run_id = run_id_field(fields)
    key = checks.check_name(string_field(fields, "key", required=True), "key", "key")
    value = checks.bounded_value(string_field(fields, "value"), "value", "Tag value", MAX_TAG_VALUE_LENGTH)
    tags = [{"key": key, "value": value}]
    with state.facts.writing(run_id) as run:
        run.check_active()
        _append(state, request, run, tag_events(run, tags))
        tags_applied(run, tags)
    return FastJSONResponse({})


@router.post("/runs/delete-tag")
def delete_tag(request: Request, fields: Fields, state: State) -> FastJSONResponse:
    run_id = run_id_field(fields)
    key = string_field(fields, "key", required=True) or ""
    with state.facts.writing(run_id) as run:
        run.check_active()
        if key not in run.tag_keys:
            raise does_not_exist(f"No tag with name: {key} in run with id {run_id}")
        _append(state, request, run, [("RunTagDeleted", {"run_id": run_id, "key": key})])
        run.tag_keys.discard(key)
    return FastJSONResponse({})


# ---- inputs and the model history ------------------------------------------------------------------

@router.post("/runs/log-inputs")
def log_inputs(request: Request, fields: Fields, state: State) -> FastJSONResponse:
    """Dataset and logged-model inputs; one already an input of the run is not added again."""
    run_id = checks.check_run_id(string_field(fields, "run_id", required=True) or "")
    datasets = []
    for index, dataset_input in enumerate(list_field(fields, "datasets")):
        if not isinstance(dataset_input, dict):
            raise checks.invalid_value(f"datasets[{index}]", dataset_input, "it must be an object")
        record = checks.dataset_record(dataset_input.get("dataset"), index)
        tags = checks.input_tags(dataset_input.get("tags"), index)
        datasets.append((record, tags))
    models = []
    for index, model in enumerate(list_field(fields, "models")):
        model_id = model.get("model_id") if isinstance(model, dict) else None
        if not isinstance(model_id, str) or not model_id:
            raise checks.invalid_value(f"models[{index}]", model, "it must be an object with a model_id")
        models.append(model_id)
    with state.facts.writing(run_id) as run:
        run.check_active()
        events: list[Event] = []
        added: set[tuple[str, str]] = set()
        for record, tags in datasets:
            identity = (record["name"], record["digest"])
            if identity in run.inputs or identity in added:
                continue
            added.add(identity)
            context = next((t["value"] for t in tags if t["key"] == DATASET_CONTEXT_TAG), None)
            events.append(("DatasetInputLogged", {"run_id": run_id, "dataset": record, "context": context,
                                                  "tags": tags}))
        new_models = [m for m in dict.fromkeys(models) if m not in run.model_inputs]
        if new_models:  # the models are keyed model/<id>: recorded, never required to exist (as MLflow)
            events.append(("RunModelInputsLogged", {"run_id": run_id,
                                                    "models": [{"model_id": m} for m in new_models]}))
        _append(state, request, run, events)
        run.inputs |= added
        run.model_inputs.update(new_models)
    return FastJSONResponse({})


@router.post("/runs/log-model")
def log_model(request: Request, fields: Fields, state: State) -> FastJSONResponse:
    """Appends a logged model's summary to the run's ``mlflow.log-model.history`` tag (a JSON list)."""
    run_id = string_field(fields, "run_id", required=True) or ""
    model_json = string_field(fields, "model_json", required=True) or ""
    try:
        model = json.loads(model_json)
    except ValueError:
        raise invalid(f"Malformed model info. \n {model_json} \n is not a valid JSON.") from None
    if not isinstance(model, dict):
        raise invalid(f"Malformed model info. \n {model_json} \n is not a valid JSON object.")
    missing = {"artifact_path", "flavors", "utc_time_created", "run_id"} - set(model)
    if missing:
        raise invalid(f"Model json is missing mandatory fields: {missing}")
    summary = {key: model[key] for key in _MODEL_FIELDS if key in model}
    flavors = model.get("flavors") or {}
    if not isinstance(flavors, dict):
        raise invalid(f"Malformed model info: flavors must be an object, got {json.dumps(flavors)[:200]}")
    summary["flavors"] = {name: ({k: v for k, v in config.items() if k != "config"} if isinstance(config, dict)
                                 else config) for name, config in flavors.items()}
    with state.facts.writing(run_id) as run:
        run.check_active()
        with projection_cursor(state.runtime) as cursor:
            row = cursor.execute("SELECT value FROM tags WHERE run_id = ? AND key = ?",
                                 [run_id, MODEL_HISTORY_TAG]).fetchone()
        try:
            history = json.loads(row[0]) if row else []
        except ValueError:
            history = []
        if not isinstance(history, list):
            history = []
        tags = [{"key": MODEL_HISTORY_TAG, "value": json.dumps([*history, summary])}]
        _append(state, request, run, tag_events(run, tags))
        tags_applied(run, tags)
    return FastJSONResponse({})
