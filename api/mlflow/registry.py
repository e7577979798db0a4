"""MLflow's model registry REST API: registered models, model versions, tags, aliases, stages.

Every write becomes RegisteredModel* / ModelVersion* events under the ordering key ``registry``; every
read comes from the projection. A write that depends on state (does the model exist, which version
number is next) reads the projection with read-your-writes and appends under this server's registry
lock, so concurrent requests to one server never pick the same version number. Semantics follow
MLflow's SQL store: versions are numbered from 1 per model and numbers are not reused; an alias
moves when set on another version and disappears with its version; a deleted model takes its
versions along, and a model created again under that name starts over at version 1; renaming
carries versions, tags and aliases; versions are READY as soon as they exist.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
from fastapi import APIRouter

from ledgerflow.api.errors import ApiError
from ledgerflow.api.mlflow.protocol import (
    TRACKING_PREFIXES,
    already_exists,
    boolean,
    does_not_exist,
    int64_field,
    invalid,
    list_field,
    string_field,
    wrong_type,
)
from ledgerflow.api.mlflow.registry_reads import (
    alias_version,
    latest_version_number,
    latest_version_rows,
    model_json,
    model_row,
    models_json,
    next_version,
    require_model,
    require_version,
    version_json,
    version_rows,
    versions_json,
)
from ledgerflow.api.mlflow.registry_search import search_model_names, search_version_keys
from ledgerflow.api.mlflow.registry_sources import check_source_pattern, logged_model_location, resolve_source
from ledgerflow.api.mlflow.registry_validation import (
    ACTIVE_STAGES,
    LATEST_ALIAS,
    PROMPT_TAG,
    STAGE_SYMBOL,
    canonical_stage,
    check_alias,
    check_alias_settable,
    check_model_name,
    check_tag,
    parse_version,
    tag_list,
)
from ledgerflow.api.mlflow.service_calls import Call, route

PREFIXES = TRACKING_PREFIXES
router = APIRouter(tags=["mlflow model registry"])

MAX_MODELS_PER_PAGE = 1000
DEFAULT_MODELS_PER_PAGE = 100
MAX_VERSIONS_PER_PAGE = 200_000
#: the logged model tag listing the versions registered from it (MLflow's mlflow.modelVersions)
MODEL_VERSIONS_TAG = "mlflow.modelVersions"
REGISTRY = "registry"  # the write lock of this service
#: tries of create_model_version when another server process takes the version number first (MLflow: 3)
CREATE_VERSION_ATTEMPTS = 3


def _name(call: Call, field: str = "name") -> str:
    return check_model_name(string_field(call.fields, field, required=True), field)


def _version(call: Call) -> int:
    return parse_version(string_field(call.fields, "version", required=True))


def _page_size(call: Call, default: int, limit: int) -> int:
    """``max_results`` with MLflow's bounds and wording; 0 is kept (a registered-model search answers
    an empty page for it, as MLflow), the caller refuses it where MLflow does."""
    size = int64_field(call.fields, "max_results")
    size = default if size is None else size
    if size < 0:
        raise _not_positive(size)
    if size > limit:
        raise invalid(f"Invalid value for request parameter max_results. It must be at most {limit}, but got "
                      f"value {size}")
    return size


def _not_positive(size: int) -> ApiError:
    return invalid(f"Invalid value for max_results. It must be a positive integer, but got {size}")


# ---- registered models -----------------------------------------------------------------------

@route(router, "POST", "/registered-models/create")
def create_registered_model(call: Call) -> dict[str, Any]:
    """Create a registered model (RESOURCE_ALREADY_EXISTS if the name is taken)."""
    name = _name(call)
    tags = tag_list(list_field(call.fields, "tags"))
    description = string_field(call.fields, "description")
    with call.write_lock(REGISTRY):
        with call.read() as cursor:
            if model_row(cursor, name) is not None:
                raise already_exists(f"Registered Model (name={name}) already exists.")
        try:
            call.write([("RegisteredModelCreated", {"name": name, "description": description, "tags": tags})])
        except ApiError as e:  # another server process created it first: the same answer as if we had seen it
            if e.error_code == "RESOURCE_CONFLICT":
                raise already_exists(f"Registered Model (name={name}) already exists.") from None
            raise
    with call.read() as cursor:
        return {"registered_model": model_json(cursor, name)}


@route(router, "GET", "/registered-models/get")
def get_registered_model(call: Call) -> dict[str, Any]:
    """A registered model with its tags, aliases and latest version per stage."""
    name = _name(call)
    with call.read() as cursor:
        return {"registered_model": model_json(cursor, name)}


@route(router, "POST", "/registered-models/rename")
def rename_registered_model(call: Call) -> dict[str, Any]:
    """Rename a model; its versions, tags and aliases move along."""
    name, new_name = _name(call), _name(call, "new_name")
    with call.write_lock(REGISTRY):
        with call.read() as cursor:
            require_model(cursor, name)
            if new_name != name and model_row(cursor, new_name) is not None:
                raise already_exists(f"Registered Model (name={new_name}) already exists.")
        if new_name != name:
            call.write([("RegisteredModelRenamed", {"name": name, "new_name": new_name})])
    with call.read() as cursor:
        return {"registered_model": model_json(cursor, new_name)}


@route(router, "PATCH", "/registered-models/update")
def update_registered_model(call: Call) -> dict[str, Any]:
    """Replace a model's description (a missing description clears it, as MLflow)."""
    name = _name(call)
    description = string_field(call.fields, "description") or ""
    with call.write_lock(REGISTRY):
        with call.read() as cursor:
            require_model(cursor, name)
        call.write([("RegisteredModelUpdated", {"name": name, "description": description})])
    with call.read() as cursor:
        return {"registered_model": model_json(cursor, name)}


@route(router, "DELETE", "/registered-models/delete")
def delete_registered_model(call: Call) -> dict[str, Any]:
    """Delete a model with all its versions and aliases."""
    name = _name(call)
    with call.write_lock(REGISTRY):
        with call.read() as cursor:
            require_model(cursor, name)
        call.write([("RegisteredModelDeleted", {"name": name})])
    return {}


@route(router, "GET", "/registered-models/search")
def search_registered_models(call: Call) -> dict[str, Any]:
    """Models matching a filter (name, tags), ordered by name, timestamp or last_updated_timestamp."""
    size = _page_size(call, DEFAULT_MODELS_PER_PAGE, MAX_MODELS_PER_PAGE)
    if size == 0:
        return {}
    filter_text = string_field(call.fields, "filter")
    order_by = list_field(call.fields, "order_by", query=True)
    with call.read() as cursor:
        page = search_model_names(cursor, filter_text, order_by, size, string_field(call.fields, "page_token"))
        answer: dict[str, Any] = {"registered_models": models_json(cursor, page.keys)}
    if page.next_page_token:
        answer["next_page_token"] = page.next_page_token
    return answer


def _latest_versions(call: Call) -> dict[str, Any]:
    """The newest version in each of the given stages (all four when none are given)."""
    name = _name(call)
    stages = list_field(call.fields, "stages", query=call.request.method == "GET")
    for stage in stages:
        if not isinstance(stage, str):
            raise wrong_type("stages", stage)
    symbols = [STAGE_SYMBOL[canonical_stage(stage)] for stage in stages] or None
    with call.read() as cursor:
        require_model(cursor, name)
        return {"model_versions": versions_json(cursor, latest_version_rows(cursor, [name], symbols)[name])}


route(router, "POST", "/registered-models/get-latest-versions")(_latest_versions)
route(router, "GET", "/registered-models/get-latest-versions")(_latest_versions)


@route(router, "POST", "/registered-models/set-tag")
def set_registered_model_tag(call: Call) -> dict[str, Any]:
    """Set (or overwrite) a tag of a model."""
    name = _name(call)
    key, value = check_tag(string_field(call.fields, "key", required=True), string_field(call.fields, "value"))
    with call.write_lock(REGISTRY):
        with call.read() as cursor:
            require_model(cursor, name)
        call.write([("RegisteredModelTagSet", {"name": name, "key": key, "value": value})])
    return {}


@route(router, "DELETE", "/registered-models/delete-tag")
def delete_registered_model_tag(call: Call) -> dict[str, Any]:
    """Remove a tag of a model (no error when the model has no such tag, as MLflow)."""
    name = _name(call)
    key, _ = check_tag(string_field(call.fields, "key", required=True), "")
    with call.write_lock(REGISTRY):
        with call.read() as cursor:
            require_model(cursor, name)
            present = cursor.execute("SELECT 1 FROM registered_model_tags WHERE name = ? AND key = ?",
                                     [name, key]).fetchone()
        if present:
            call.write([("RegisteredModelTagDeleted", {"name": name, "key": key})])
    return {}


# ---- aliases ---------------------------------------------------------------------------------

@route(router, "POST", "/registered-models/alias")
def set_registered_model_alias(call: Call) -> dict[str, Any]:
    """Point an alias at a version; it leaves the version it pointed at before."""
    name = _name(call)
    alias = check_alias(string_field(call.fields, "alias", required=True))
    check_alias_settable(alias)
    version = _version(call)
    with call.write_lock(REGISTRY):
        with call.read() as cursor:
            require_version(cursor, name, version)
        call.write([("ModelVersionAliasSet", {"name": name, "alias": alias, "version": version})])
    return {}


@route(router, "DELETE", "/registered-models/alias")
def delete_registered_model_alias(call: Call) -> dict[str, Any]:
    """Remove an alias (no error when the model has no such alias, as MLflow)."""
    name = _name(call)
    alias = check_alias(string_field(call.fields, "alias", required=True))
    with call.write_lock(REGISTRY):
        with call.read() as cursor:
            require_model(cursor, name)
            present = alias_version(cursor, name, alias) is not None
        if present:
            call.write([("ModelVersionAliasDeleted", {"name": name, "alias": alias})])
    return {}


@route(router, "GET", "/registered-models/alias")
def get_model_version_by_alias(call: Call) -> dict[str, Any]:
    """The version an alias points at; 'latest' is the highest version."""
    name = _name(call)
    alias = check_alias(string_field(call.fields, "alias", required=True))
    with call.read() as cursor:
        require_model(cursor, name)
        if alias.lower() == LATEST_ALIAS:
            version = latest_version_number(cursor, name)
            if version is None:
                raise does_not_exist(f"Latest version not found for model {name}.")
        else:
            version = alias_version(cursor, name, alias)
            if version is None:  # MLflow answers INVALID_PARAMETER_VALUE here, not RESOURCE_DOES_NOT_EXIST
                raise invalid(f"Registered model alias {alias} not found.")
        return {"model_version": version_json(cursor, name, version)}


# ---- model versions --------------------------------------------------------------------------

def _versions_tag(cursor: duckdb.DuckDBPyConnection, model_id: str, name: str,
                  version: int) -> tuple[str, dict[str, Any]] | None:
    """The logged model's mlflow.modelVersions tag with this version added (None if the model is gone)."""
    if logged_model_location(cursor, model_id) is None:
        return None
    found = cursor.execute("SELECT value FROM logged_model_tags WHERE model_id = ? AND key = ?",
                           [model_id, MODEL_VERSIONS_TAG]).fetchone()
    entry = {"name": name, "version": version}
    try:
        listed = json.loads(found[0]) if found else []
    except ValueError:
        listed = []
    listed = listed if isinstance(listed, list) else []
    if entry not in listed:
        listed.append(entry)
    return "LoggedModelTagsSet", {"model_id": model_id, "tags": [{"key": MODEL_VERSIONS_TAG, "value": json.dumps(listed)}]}


@route(router, "POST", "/model-versions/create")
def create_model_version(call: Call) -> dict[str, Any]:
    """Register a new version of a model from a source (a run's artifacts, a logged model, another version)."""
    name = _name(call)
    source = string_field(call.fields, "source", required=True) or ""
    check_source_pattern(source)
    run_id, model_id = string_field(call.fields, "run_id"), string_field(call.fields, "model_id")
    tags = tag_list(list_field(call.fields, "tags"))
    prompt = any(t["key"] == PROMPT_TAG and t["value"].lower() == "true" for t in tags)
    description = string_field(call.fields, "description")
    with call.write_lock(REGISTRY):
        for attempt in range(1, CREATE_VERSION_ATTEMPTS + 1):
            with call.read() as cursor:
                resolved = resolve_source(cursor, source, run_id, model_id, prompt=prompt)
                require_model(cursor, name)
                version = next_version(cursor, name)
            try:
                call.write([("ModelVersionCreated", {
                    "name": name, "version": version, "source": resolved.source, "run_id": resolved.run_id,
                    "artifact_uri": resolved.storage_location, "signature": None, "description": description or "",
                    "tags": tags, "model_id": resolved.model_id, "run_link": string_field(call.fields, "run_link")})])
                break
            except ApiError as e:  # another server process took the number first: take the next one
                if e.error_code != "RESOURCE_CONFLICT" or attempt == CREATE_VERSION_ATTEMPTS:
                    raise
        if resolved.model_id and not prompt:  # only once the version is certain, so the list never names a loser
            with call.read() as cursor:
                listing = _versions_tag(cursor, resolved.model_id, name, version)
            if listing:
                call.write([listing])
    with call.read() as cursor:
        return {"model_version": version_json(cursor, name, version)}


@route(router, "GET", "/model-versions/get")
def get_model_version(call: Call) -> dict[str, Any]:
    """One version with its tags and aliases."""
    name, version = _name(call), _version(call)
    with call.read() as cursor:
        return {"model_version": version_json(cursor, name, version)}


@route(router, "PATCH", "/model-versions/update")
def update_model_version(call: Call) -> dict[str, Any]:
    """Replace a version's description (a missing description clears it, as MLflow)."""
    name, version = _name(call), _version(call)
    description = string_field(call.fields, "description")
    with call.write_lock(REGISTRY):
        with call.read() as cursor:
            require_version(cursor, name, version)
        call.write([("ModelVersionUpdated", {"name": name, "version": version, "description": description})])
    with call.read() as cursor:
        return {"model_version": version_json(cursor, name, version)}


@route(router, "POST", "/model-versions/transition-stage")
def transition_model_version_stage(call: Call) -> dict[str, Any]:
    """Move a version to None, Staging, Production or Archived (legacy stages)."""
    name, version = _name(call), _version(call)
    stage = canonical_stage(string_field(call.fields, "stage", required=True) or "")
    archive = boolean(call.fields, "archive_existing_versions")
    if archive and stage not in ACTIVE_STAGES:
        raise invalid(f"Model version transition cannot archive existing model versions because '{stage}' is not "
                      f"an active stage; only {' and '.join(ACTIVE_STAGES)} are.")
    with call.write_lock(REGISTRY):
        with call.read() as cursor:
            require_version(cursor, name, version)
        call.write([("ModelVersionStageChanged", {"name": name, "version": version, "stage": STAGE_SYMBOL[stage],
                                                 "archive_existing_versions": archive})])
    with call.read() as cursor:
        return {"model_version": version_json(cursor, name, version)}


@route(router, "DELETE", "/model-versions/delete")
def delete_model_version(call: Call) -> dict[str, Any]:
    """Delete a version; its aliases go with it; its number is not reused."""
    name, version = _name(call), _version(call)
    with call.write_lock(REGISTRY):
        with call.read() as cursor:
            require_version(cursor, name, version)
        call.write([("ModelVersionDeleted", {"name": name, "version": version})])
    return {}


@route(router, "GET", "/model-versions/get-download-uri")
def get_model_version_download_uri(call: Call) -> dict[str, Any]:
    """Where the version's files are: the logged model's or run's artifact location, or the source."""
    name, version = _name(call), _version(call)
    with call.read() as cursor:
        row = require_version(cursor, name, version)
    return {"artifact_uri": row["artifact_uri"] or row["source"]}


@route(router, "GET", "/model-versions/search")
def search_model_versions(call: Call) -> dict[str, Any]:
    """Versions matching a filter (name, run_id, source_path, version_number, tags); newest updates first."""
    size = _page_size(call, MAX_VERSIONS_PER_PAGE, MAX_VERSIONS_PER_PAGE)
    if size == 0:
        raise _not_positive(size)
    filter_text = string_field(call.fields, "filter")
    order_by = list_field(call.fields, "order_by", query=True)
    with call.read() as cursor:
        page = search_version_keys(cursor, filter_text, order_by, size, string_field(call.fields, "page_token"))
        answer: dict[str, Any] = {"model_versions": versions_json(cursor, version_rows(cursor, page.keys))}
    if page.next_page_token:
        answer["next_page_token"] = page.next_page_token
    return answer


@route(router, "POST", "/model-versions/set-tag")
def set_model_version_tag(call: Call) -> dict[str, Any]:
    """Set (or overwrite) a tag of a version."""
    name, version = _name(call), _version(call)
    key, value = check_tag(string_field(call.fields, "key", required=True), string_field(call.fields, "value"))
    with call.write_lock(REGISTRY):
        with call.read() as cursor:
            require_version(cursor, name, version)
        call.write([("ModelVersionTagSet", {"name": name, "version": version, "key": key, "value": value})])
    return {}


@route(router, "DELETE", "/model-versions/delete-tag")
def delete_model_version_tag(call: Call) -> dict[str, Any]:
    """Remove a tag of a version (no error when it has no such tag, as MLflow)."""
    name, version = _name(call), _version(call)
    key, _ = check_tag(string_field(call.fields, "key", required=True), "")
    with call.write_lock(REGISTRY):
        with call.read() as cursor:
            require_version(cursor, name, version)
            present = cursor.execute("SELECT 1 FROM model_version_tags WHERE name = ? AND version = ? AND key = ?",
                                     [name, version, key]).fetchone()
        if present:
            call.write([("ModelVersionTagDeleted", {"name": name, "version": version, "key": key})])
    return {}
