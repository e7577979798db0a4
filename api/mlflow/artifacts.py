"""MLflow's proxied artifact service (``mlflow server --serve-artifacts``) over the server's artifact store.

Runs get artifact URIs ``mlflow-artifacts:/<experiment>/<run_id>/artifacts``; the ``mlflow`` client turns
them into requests under /api/2.0/mlflow-artifacts/artifacts/<path>: PUT uploads a file, GET downloads
it, GET without a path lists a directory (``?path=``), DELETE removes a file or a directory. Paths are
relative to the store root (``runtime.artifact_root``, see api/artifact_store.py for the guarantees).

An upload that lands in an active run's artifact directory also appends ``ArtifactLogged`` (path in
the run, URI, size, SHA-256) once the file is durable, so artifacts show in the audit trail and the
``artifacts`` table. Multipart upload and presigned downloads answer as MLflow does for a store
without them (501 NOT_IMPLEMENTED with MLflow's message, which the client recognises and falls back
to a plain upload or download).

``ROUTERS`` also mounts the tracking-service artifact endpoints of ``run_artifacts``.
"""

from __future__ import annotations

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.requests import ClientDisconnect

from ledgerflow.api.artifact_store import check_relative_path
from ledgerflow.api.errors import ApiError
from ledgerflow.api.mlflow import run_artifacts
from ledgerflow.api.mlflow.artifact_files import (
    file_response,
    listing_json,
    record_upload,
    store_errors,
    store_of,
)
from ledgerflow.api.mlflow.protocol import TRACKING_PREFIXES, integer, request_fields, text

PREFIXES = ("/api/2.0/mlflow-artifacts", "/ajax-api/2.0/mlflow-artifacts")
router = APIRouter(tags=["mlflow-artifacts"])

#: the client matches these messages to fall back to plain transfers; keep them verbatim
MULTIPART_UPLOAD_UNSUPPORTED = "Multipart upload is not supported for the current artifact repository"
MULTIPART_DOWNLOAD_UNSUPPORTED = "Multipart download is not supported for the current artifact repository"


@router.put("/artifacts/{artifact_path:path}", summary="Upload one artifact file (the request body, streamed)",
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
async def upload_artifact(artifact_path: str, request: Request) -> Response:
    store = store_of(request)
    declared = request.headers.get("content-length")
    with store_errors():
        try:
            stored = await store.receive(artifact_path, request.stream(),
                                         declared_size=int(declared) if declared and declared.isdigit() else None)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody reads it; the partial upload was discarded
    await record_upload(request, store, stored)
    return JSONResponse({})


@router.get("/artifacts/{artifact_path:path}", summary="Download one artifact file (streamed)")
async def download_artifact(artifact_path: str, request: Request) -> FileResponse:
    store = store_of(request)
    with store_errors():
        local = await to_thread.run_sync(store.file_to_send, artifact_path)
    return file_response(local, artifact_path)


@router.get("/artifacts", summary="List a directory of the artifact store (?path=, default the root)")
async def list_artifacts(request: Request) -> JSONResponse:
    store = store_of(request)
    path = text(await request_fields(request), "path", required=False) or ""
    with store_errors():
        entries = await to_thread.run_sync(store.list_directory, path)
    return JSONResponse(listing_json(entries))


@router.delete("/artifacts/{artifact_path:path}", summary="Delete an artifact file or directory")
async def delete_artifact(artifact_path: str, request: Request) -> JSONResponse:
    store = store_of(request)
    with store_errors():
        await to_thread.run_sync(store.delete, artifact_path)
    return JSONResponse({})


# ---- what a local store does not offer (kept out of the OpenAPI schema: a 501 is their answer by design) --

@router.post("/mpu/create/{artifact_path:path}", summary="Multipart upload: not supported by a local store (501)",
              include_in_schema=False)
async def create_multipart_upload(artifact_path: str, request: Request) -> Response:
    fields = await _multipart_fields(artifact_path, request)
    integer(fields, "num_parts")
    raise _multipart_unsupported()


@router.post("/mpu/complete/{artifact_path:path}", summary="Multipart upload: not supported by a local store (501)",
              include_in_schema=False)
async def complete_multipart_upload(artifact_path: str, request: Request) -> Response:
    fields = await _multipart_fields(artifact_path, request)
    text(fields, "upload_id", required=False)
    if fields.get("parts") is None:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'parts'. See the API "
                                                       "docs for more information about request parameters.")
    raise _multipart_unsupported()


@router.post("/mpu/abort/{artifact_path:path}", summary="Multipart upload: not supported by a local store (501)",
              include_in_schema=False)
async def abort_multipart_upload(artifact_path: str, request: Request) -> Response:
    fields = await _multipart_fields(artifact_path, request)
    text(fields, "upload_id", required=False)
    raise _multipart_unsupported()


@router.get("/presigned/{artifact_path:path}", summary="Presigned download: not supported by a local store (501)",
              include_in_schema=False)
async def presigned_download_url(artifact_path: str) -> Response:
    with store_errors():
        check_relative_path(artifact_path, allow_root=True)
    raise ApiError(501, "NOT_IMPLEMENTED", MULTIPART_DOWNLOAD_UNSUPPORTED)


async def _multipart_fields(artifact_path: str, request: Request) -> dict:
    with store_errors():
        check_relative_path(artifact_path, allow_root=True)
    fields = await request_fields(request)
    text(fields, "path")
    return fields


def _multipart_unsupported() -> ApiError:
    return ApiError(501, "NOT_IMPLEMENTED", MULTIPART_UPLOAD_UNSUPPORTED)


#: (router, prefixes) pairs api/mlflow/__init__.py mounts for this module
ROUTERS = (
    (router, PREFIXES),
    (run_artifacts.router, TRACKING_PREFIXES),
    (run_artifacts.file_router, run_artifacts.FILE_PREFIXES),
    (run_artifacts.ui_router, run_artifacts.UI_PREFIXES),
)
