"""MLflow 3 logged models and run outputs: what ``mlflow.<flavor>.log_model`` calls in MLflow 3.

``log_model`` creates a logged model (status PENDING, files at
``<experiment artifact location>/models/<model_id>/artifacts``), links it to the run
(``runs/outputs``), uploads the files through the artifact proxy, and finalizes it READY (or
UPLOAD_FAILED); ``register_model`` then registers ``models:/<model_id>``. Each write becomes a
LoggedModel* event under the ordering key ``model/<model_id>``, or RunOutputsLogged under
``run/<run_id>``. Writes that check state (the model exists, a param is not changed) hold this
server's logged-model lock between the check and the append. The artifact listing endpoints of a
logged model are served with the other artifact endpoints (run_artifacts.py).
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from fastapi import APIRouter, Depends

from ledgerflow.api.mlflow.logged_model_reads import (
    logged_model_json,
    logged_models_json,
    require_logged_model,
    search_logged_model_ids,
    status_of,
)
from ledgerflow.api.mlflow.protocol import (
    TRACKING_PREFIXES,
    boolean,
    does_not_exist,
    int64_field,
    invalid,
    list_field,
    missing_parameter,
    string_field,
    wrong_type,
)
from ledgerflow.api.mlflow.service_calls import Call, route
from ledgerflow.api.mlflow.state import tracking_state

PREFIXES = TRACKING_PREFIXES
#: ``mlflow.<flavor>.log_model`` outside any run creates a logged model in experiment "0" first thing on
#: a fresh server, so these calls make sure the Default experiment exists, as the tracking calls do
router = APIRouter(tags=["mlflow logged models"], dependencies=[Depends(tracking_state)])

LOGGED_MODELS = "logged_models"  # the write lock of this service
DEFAULT_MODELS_PER_PAGE = 50
MAX_MODELS_PER_PAGE = 1000
_BAD_NAME_CHARACTERS = ("/", ":", ".", "%", '"', "'")
_NAME_WORDS = (("able", "bold", "calm", "deft", "eager", "fair", "glad", "keen", "lucid", "merry", "noble", "quick"),
               ("otter", "heron", "lynx", "finch", "badger", "marten", "ibis", "wren", "bison", "crane", "gecko"))


def _model_id(call: Call) -> str:
    return call.path["model_id"]


def _pairs(call: Call, field: str) -> list[dict[str, str]]:
    """``[{key, value}]`` with string keys and values (a missing value is ""), the last value of a key winning."""
    pairs: dict[str, str] = {}
    for item in list_field(call.fields, field):
        if not isinstance(item, dict):
            raise wrong_type(field, item)
        key, value = item.get("key"), item.get("value", "")
        if not isinstance(key, str) or not key:
            raise missing_parameter(f"{field}.key")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise wrong_type(f"{field}.value", value)
        pairs[key] = value
    return [{"key": k, "value": v} for k, v in pairs.items()]


def _params(call: Call, field: str = "params") -> list[dict[str, str]]:
    """Params as given; a key given twice with different values is refused (params are immutable)."""
    seen: dict[str, str] = {}
    for item in list_field(call.fields, field):
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            value = item.get("value", "") or ""
            if seen.setdefault(item["key"], value) != value:
                raise invalid(f"param {item['key']!r} is given twice with different values ({seen[item['key']]!r} and "
                              f"{value!r}); params are immutable")
    return _pairs(call, field)


def _conflicts(call: Call, model_id: str, params: list[dict[str, str]]) -> None:
    """Refuse changing a param the model already has (400, nothing appended)."""
    if not params:
        return
    with call.read() as cursor:
        logged = dict(cursor.execute("SELECT key, value FROM logged_model_params WHERE model_id = ? AND key IN "
                                     "(SELECT unnest(?))", [model_id, [p["key"] for p in params]]).fetchall())
    for pair in params:
        if pair["key"] in logged and logged[pair["key"]] != pair["value"]:
            raise invalid(f"param {pair['key']!r} of logged model {model_id!r} was logged as {logged[pair['key']]!r}; "
                          f"params are immutable, cannot change it to {pair['value']!r}")


def _check_name(name: str | None) -> str:
    if name is None or name == "":  # MLflow names an unnamed model for the user
        return f"{secrets.choice(_NAME_WORDS[0])}-{secrets.choice(_NAME_WORDS[1])}-{secrets.randbelow(1000)}"
    if any(c in name for c in _BAD_NAME_CHARACTERS):
        raise invalid(f"Invalid model name ({name!r}) provided. A logged model name must be a non-empty string "
                      f"without any of {' '.join(_BAD_NAME_CHARACTERS)}")
    return name


@route(router, "POST", "/logged-models")
def create_logged_model(call: Call) -> dict[str, Any]:
    """Create a logged model in an experiment (status PENDING) with its params and tags."""
    experiment_id = string_field(call.fields, "experiment_id", required=True) or ""
    name = _check_name(string_field(call.fields, "name"))
    model_type, source_run_id = string_field(call.fields, "model_type"), string_field(call.fields, "source_run_id")
    params, tags = _params(call), _pairs(call, "tags")
    with call.read() as cursor:
        experiment = cursor.execute("SELECT artifact_location, lifecycle_stage FROM experiments WHERE experiment_id = ?",
                                    [experiment_id]).fetchone()
    if experiment is None:
        raise does_not_exist(f"No Experiment with id={experiment_id} exists")
    if experiment[1] != "active":
        raise invalid(f"The experiment {experiment_id} must be in the 'active' state. Current state is {experiment[1]}.")
    model_id = f"m-{uuid.uuid4().hex}"
    root = (experiment[0] or f"mlflow-artifacts:/{experiment_id}").rstrip("/")
    call.write([("LoggedModelCreated", {
        "model_id": model_id, "experiment_id": experiment_id, "name": name,
        "artifact_location": f"{root}/models/{model_id}/artifacts", "model_type": model_type or None,
        "source_run_id": source_run_id or None, "params": params, "tags": tags})])
    with call.read() as cursor:
        return {"model": logged_model_json(cursor, model_id)}


@route(router, "GET", "/logged-models/{model_id}")
def get_logged_model(call: Call) -> dict[str, Any]:
    """A logged model with its tags and params (deleted ones only with allow_deleted=true)."""
    allow_deleted = boolean(call.fields, "allow_deleted")
    with call.read() as cursor:
        return {"model": logged_model_json(cursor, _model_id(call), allow_deleted=allow_deleted)}


@route(router, "PATCH", "/logged-models/{model_id}")
def finalize_logged_model(call: Call) -> dict[str, Any]:
    """Set the outcome of the model's upload: LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED."""
    model_id = _model_id(call)
    if call.fields.get("status") in (None, ""):
        raise missing_parameter("status")
    status = status_of(call.fields["status"])
    with call.write_lock(LOGGED_MODELS):
        with call.read() as cursor:
            require_logged_model(cursor, model_id, allow_deleted=True)
        call.write([("LoggedModelFinalized", {"model_id": model_id, "status": status,
                                             "status_message": string_field(call.fields, "status_message")})])
    with call.read() as cursor:
        return {"model": logged_model_json(cursor, model_id, allow_deleted=True)}


@route(router, "DELETE", "/logged-models/{model_id}")
def delete_logged_model(call: Call) -> dict[str, Any]:
    """Soft-delete a logged model: searches and gets no longer show it."""
    model_id = _model_id(call)
    with call.write_lock(LOGGED_MODELS):
        with call.read() as cursor:
            require_logged_model(cursor, model_id, allow_deleted=True)
        call.write([("LoggedModelDeleted", {"model_id": model_id})])
    return {}


@route(router, "POST", "/logged-models/search")
def search_logged_models(call: Call) -> dict[str, Any]:
    """Logged models of some experiments, filtered and ordered with MLflow's syntax, one page."""
    experiment_ids = list_field(call.fields, "experiment_ids", required=True)
    if not all(isinstance(e, str) for e in experiment_ids):
        raise wrong_type("experiment_ids", experiment_ids)
    size = int64_field(call.fields, "max_results")
    size = DEFAULT_MODELS_PER_PAGE if size is None or size == 0 else size
    if not 0 < size <= MAX_MODELS_PER_PAGE:
        raise invalid(f"Invalid value for max_results: it must be between 1 and {MAX_MODELS_PER_PAGE}, got {size}")
    with call.read() as cursor:
        ids, token = search_logged_model_ids(cursor, experiment_ids, string_field(call.fields, "filter"),
                                             list_field(call.fields, "datasets"), list_field(call.fields, "order_by"),
                                             size, string_field(call.fields, "page_token"))
        answer: dict[str, Any] = {"models": logged_models_json(cursor, ids)}
    if token:
        answer["next_page_token"] = token
    return answer


@route(router, "PATCH", "/logged-models/{model_id}/tags")
def set_logged_model_tags(call: Call) -> dict[str, Any]:
    """Set (or overwrite) tags of a logged model."""
    model_id, tags = _model_id(call), _pairs(call, "tags")
    with call.write_lock(LOGGED_MODELS):
        with call.read() as cursor:
            require_logged_model(cursor, model_id, allow_deleted=True)
        if tags:
            call.write([("LoggedModelTagsSet", {"model_id": model_id, "tags": tags})])
    return {}


@route(router, "DELETE", "/logged-models/{model_id}/tags/{tag_key:path}")
def delete_logged_model_tag(call: Call) -> dict[str, Any]:
    """Remove a tag of a logged model (RESOURCE_DOES_NOT_EXIST when it has no such tag, as MLflow)."""
    model_id, key = _model_id(call), call.path["tag_key"]
    with call.write_lock(LOGGED_MODELS):
        with call.read() as cursor:
            require_logged_model(cursor, model_id, allow_deleted=True)
            present = cursor.execute("SELECT 1 FROM logged_model_tags WHERE model_id = ? AND key = ?",
                                     [model_id, key]).fetchone()
        if not present:
            raise does_not_exist(f"No tag with key {key!r} found for model with ID {model_id!r}.")
        call.write([("LoggedModelTagDeleted", {"model_id": model_id, "key": key})])
    return {}


@route(router, "POST", "/logged-models/{model_id}/params")
def log_logged_model_params(call: Call) -> dict[str, Any]:
    """Log params of a logged model; logging a param again with the same value is a no-op."""
    model_id, params = _model_id(call), _params(call)
    with call.write_lock(LOGGED_MODELS):
        with call.read() as cursor:
            require_logged_model(cursor, model_id, allow_deleted=True)
        _conflicts(call, model_id, params)
        if params:
            call.write([("LoggedModelParamsLogged", {"model_id": model_id, "params": params})])
    return {}


@route(router, "POST", "/runs/outputs")
def log_outputs(call: Call) -> dict[str, Any]:
    """Record logged models as outputs of a run (at a step)."""
    run_id = string_field(call.fields, "run_id", required=True) or ""
    outputs = []
    for item in list_field(call.fields, "models", required=True):
        if not isinstance(item, dict):
            raise wrong_type("models", item)
        model_id = item.get("model_id")
        if not isinstance(model_id, str) or not model_id:
            raise missing_parameter("models.model_id")
        step = int64_field(item, "step")
        outputs.append({"model_id": model_id, "step": step or 0})
    with call.read() as cursor:
        run = cursor.execute("SELECT lifecycle_stage FROM runs WHERE run_id = ?", [run_id]).fetchone()
    if run is None:
        raise does_not_exist(f"Run with id={run_id} not found")
    if run[0] != "active":
        raise invalid(f"The run {run_id} must be in the 'active' state. Current state is {run[0]}.")
    call.write([("RunOutputsLogged", {"run_id": run_id, "models": outputs})])
    return {}
