"""The tracking service's artifact endpoints: a run's (or a model version's) artifacts by id, not by path.

- ``GET /api/2.0/mlflow/artifacts/list?run_id=&path=``: the run's artifact directory, paths relative to
  the run's root, plus ``root_uri`` (the UI's artifact browser);
- ``GET /api/2.0/mlflow/logged-models/<model_id>/artifacts/directories?artifact_directory_path=`` and
  ``.../artifacts/files?artifact_file_path=``: the same for an MLflow 3 logged model;
- ``GET /get-artifact?run_id=&path=`` and ``GET /model-versions/get-artifact?name=&version=&path=``: one
  file, for the UI's previews and downloads (MLflow serves both at the site root);
- ``POST /api/2.0/mlflow/artifacts/presigned-upload-url`` and ``presigned-download-url``: answered as MLflow
  answers for proxied and local stores, which cannot presign;
- ``POST /ajax-api/2.0/mlflow/upload-artifact?run_uuid=&path=``: the UI's small upload (the body, at most
  10 MB, as MLflow) into a run's artifacts.

All of them read the run's artifact URI from the projection and serve it from the same store as the
proxied artifact service (artifacts.py), when that URI points into it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from ledgerflow.api.artifact_store import ArtifactPathError, check_relative_path
from ledgerflow.api.errors import ApiError
from ledgerflow.api.mlflow.artifact_files import (
    file_response,
    join,
    listing_json,
    load_logged_model_location,
    load_run,
    not_served,
    read,
    record_upload,
    store_errors,
    store_of,
    store_path_of_uri,
)
from ledgerflow.api.mlflow.protocol import does_not_exist, integer, invalid, request_fields, text
from ledgerflow.api.runtime import Runtime

router = APIRouter(tags=["mlflow-artifacts"])
file_router = APIRouter(tags=["mlflow-artifacts"])
ui_router = APIRouter(tags=["mlflow-artifacts"])
#: MLflow serves get-artifact at the site root, beside the UI
FILE_PREFIXES = ("",)
#: and the UI's upload only under the ajax-api root
UI_PREFIXES = ("/ajax-api/2.0/mlflow",)
UI_UPLOAD_MAX_BYTES = 10 * 1024 * 1024  # MLflow's limit for the UI's upload
_log = logging.getLogger(__name__)
PRESIGNED_EXPIRATION_MAX = 604_800  # seconds: the longest lifetime cloud stores sign


def _run_id(fields: dict) -> str:
    run_id = text(fields, "run_id", required=False) or text(fields, "run_uuid", required=False)
    if not run_id:
        raise invalid("Missing value for required parameter 'run_id'. See the API docs for more information about "
                      "request parameters.")
    return run_id


def _relative(raw: str | None, *, allow_root: bool) -> str:
    """A safe path relative to a run's (or model's) root; refused with MLflow's exact "Invalid path"
    (clients and MLflow's own tests compare the whole message), the reason goes to the server log."""
    try:
        return check_relative_path(raw or "", allow_root=allow_root)
    except ArtifactPathError as e:
        _log.info("refused artifact path %r: %s", raw, e)
        raise invalid("Invalid path") from None


@router.get("/artifacts/list", summary="List a run's artifacts (paths relative to the run's artifact root)")
async def list_run_artifacts(request: Request) -> JSONResponse:
    fields = await request_fields(request)
    run_id = _run_id(fields)
    path = _relative(text(fields, "path", required=False), allow_root=True)
    run = await load_run(request.app.state.runtime, run_id)
    store = store_of(request)
    root = store_path_of_uri(run.artifact_uri, store)
    if root is None:
        raise not_served(run.artifact_uri, store)
    with store_errors():
        entries = await to_thread.run_sync(store.list_directory, join(root, path))
    return JSONResponse({"root_uri": run.artifact_uri, **listing_json(entries, prefix=path)})


@router.get("/logged-models/{model_id}/artifacts/directories",
            summary="List a logged model's artifacts (paths relative to its artifact location)")
async def list_logged_model_artifacts(model_id: str, request: Request) -> JSONResponse:
    fields = await request_fields(request)
    path = _relative(text(fields, "artifact_directory_path", required=False), allow_root=True)
    location = await load_logged_model_location(request.app.state.runtime, model_id)
    store = store_of(request)
    root = store_path_of_uri(location, store)
    if root is None:
        raise not_served(location, store)
    with store_errors():
        entries = await to_thread.run_sync(store.list_directory, join(root, path))
    return JSONResponse({"root_uri": location, **listing_json(entries, prefix=path)})


@router.get("/logged-models/{model_id}/artifacts/files", summary="One file of a logged model's artifacts (the UI's)")
async def get_logged_model_artifact(model_id: str, request: Request) -> FileResponse:
    fields = await request_fields(request)
    raw = text(fields, "artifact_file_path", required=False)
    if not raw:
        raise ApiError(400, "BAD_REQUEST", 'Request must include the "artifact_file_path" query parameter.')
    path = _relative(raw, allow_root=False)
    location = await load_logged_model_location(request.app.state.runtime, model_id)
    return await _send(request, location, path)


@file_router.get("/get-artifact", summary="One file of a run's artifacts (the UI's preview and download)")
async def get_run_artifact(request: Request) -> FileResponse:
    fields = await request_fields(request)
    run_id = _run_id(fields)
    path = _relative(text(fields, "path"), allow_root=False)
    run = await load_run(request.app.state.runtime, run_id)
    return await _send(request, run.artifact_uri, path)


@file_router.get("/model-versions/get-artifact", summary="One file of a model version's artifacts")
async def get_model_version_artifact(request: Request) -> FileResponse:
    fields = await request_fields(request)
    name = text(fields, "name")
    version = text(fields, "version")
    path = _relative(text(fields, "path"), allow_root=False)
    try:
        number = int(version)
    except ValueError:
        raise invalid(f"Parameter 'version' must be an integer, got '{version}'.") from None
    uri = await _model_version_download_uri(request.app.state.runtime, name, number)
    return await _send(request, uri, path)


async def _send(request: Request, artifact_uri: str, path: str) -> FileResponse:
    store = store_of(request)
    root = store_path_of_uri(artifact_uri, store)
    if root is None:
        raise not_served(artifact_uri, store)
    with store_errors():
        local = await to_thread.run_sync(store.file_to_send, join(root, path))
    return file_response(local, path)


async def _model_version_download_uri(runtime: Runtime, name: str, version: int) -> str:
    """Where a version's files are: its storage location, else its source (``runs:/`` resolved to the run)."""
    rows = await read(runtime, "SELECT artifact_uri, source FROM model_versions "
                               "WHERE name = ? AND version = ? AND lifecycle_stage = 'active'", [name, version])
    if not rows:
        raise does_not_exist(f"Model Version (name={name}, version={version}) not found")
    storage_location, source = rows[0]
    uri = storage_location or source
    if uri.startswith("runs:/"):
        run_id, _, sub_path = uri[len("runs:/"):].partition("/")
        run = await load_run(runtime, run_id)
        return f"{run.artifact_uri.rstrip('/')}/{sub_path}" if sub_path else run.artifact_uri
    model_id = uri[len("models:/"):].strip("/") if uri.startswith("models:/") else ""
    if model_id and "/" not in model_id and "@" not in model_id:  # models:/<model_id>, an MLflow 3 logged model
        return await load_logged_model_location(runtime, model_id)
    return uri


# ---- the UI's upload ------------------------------------------------------------------------------

@ui_router.post("/upload-artifact", summary="Upload one small file (the body, at most 10 MB) into a run's artifacts")
async def upload_run_artifact(request: Request) -> Response:
    run_id = request.query_params.get("run_uuid")
    if not run_id:
        raise invalid("Request must specify run_uuid.")
    raw_path = request.query_params.get("path")
    if not raw_path:
        raise invalid("Request must specify path.")
    path = _relative(raw_path, allow_root=False)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > UI_UPLOAD_MAX_BYTES:
        raise invalid("Artifact size is too large. Max size is 10MB.")
    data = await _bounded_body(request, UI_UPLOAD_MAX_BYTES)
    if not data:
        raise invalid("Request must specify data.")
    run = await load_run(request.app.state.runtime, run_id)
    store = store_of(request)
    root = store_path_of_uri(run.artifact_uri, store)
    if root is None:
        raise not_served(run.artifact_uri, store)

    async def body() -> AsyncIterator[bytes]:
        yield data

    with store_errors():
        stored = await store.receive(join(root, path), body(), declared_size=len(data))
    await record_upload(request, store, stored)
    return Response(status_code=200, media_type="application/json")


async def _bounded_body(request: Request, limit: int) -> bytes:
    """The request body, refused as MLflow refuses it once it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise invalid("Artifact size is too large. Max size is 10MB.")
        chunks.append(chunk)
    return b"".join(chunks)


# ---- presigned URLs: not for proxied or local stores (kept out of the OpenAPI schema, as their answer is 501) --

@router.post("/artifacts/presigned-upload-url", summary="Presigned upload URL: not available for this store",
              include_in_schema=False)
async def presigned_upload_url(request: Request) -> Response:
    fields = await request_fields(request)
    run_id = text(fields, "run_id", required=False)
    model_id = text(fields, "model_id", required=False)
    _relative(text(fields, "path"), allow_root=False)
    integer(fields, "expiration")
    if bool(run_id) == bool(model_id):
        raise invalid("Exactly one of run_id and model_id must be provided.")
    runtime = request.app.state.runtime
    if run_id:
        location = (await load_run(runtime, run_id)).artifact_uri
    else:
        location = await load_logged_model_location(runtime, model_id or "")
    _refuse_presigning(location, "upload")
    raise _presigning_unsupported("upload")


@router.post("/artifacts/presigned-download-url", summary="Presigned download URL: not available for this store",
              include_in_schema=False)
async def presigned_download_url(request: Request) -> Response:
    fields = await request_fields(request)
    run_id = text(fields, "run_id")
    _relative(text(fields, "path"), allow_root=False)
    expiration = integer(fields, "expiration", default=900)
    if not 1 <= expiration <= PRESIGNED_EXPIRATION_MAX:
        raise invalid(f"expiration must be between 1 and {PRESIGNED_EXPIRATION_MAX} seconds (got {expiration}).")
    run = await load_run(request.app.state.runtime, run_id)
    _refuse_presigning(run.artifact_uri, "download")
    raise _presigning_unsupported("download")


def _refuse_presigning(artifact_uri: str, action: str) -> None:
    scheme = artifact_uri.split(":", 1)[0] if ":" in artifact_uri else ""
    if scheme in ("http", "https", "mlflow-artifacts"):
        raise invalid(f"Presigned {action} is not supported for proxied artifact storage (artifact URI scheme: "
                      f"{scheme}): {action} through /api/2.0/mlflow-artifacts/artifacts instead.")


def _presigning_unsupported(action: str) -> ApiError:
    return ApiError(501, "NOT_IMPLEMENTED", f"Presigned {action} is not supported for the current artifact repository")
