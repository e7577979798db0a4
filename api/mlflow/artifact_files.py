"""What the artifact endpoints share: the store of an app, artifact URIs, file responses, the audit event.

Artifact URIs name places in the store the way MLflow's ``--serve-artifacts`` server understands them:
``mlflow-artifacts:/<path>`` (or ``mlflow-artifacts://host:port/<path>``), an ``http(s)`` URL through
``/api/2.0/mlflow-artifacts/artifacts/<path>``, or a ``file:`` URI / absolute path inside the store's
root (what the ledgerflow SDK records when it writes to the same data home). Anything else (s3://, a
path outside the root) is a store this server cannot read.
"""

from __future__ import annotations

import errno
import mimetypes
import re
import string
import threading
import unicodedata
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import duckdb
from anyio import to_thread
from fastapi import Request
from fastapi.responses import FileResponse

from ledgerflow.api.artifact_store import (
    ArtifactNotFoundError,
    ArtifactPathError,
    ArtifactTooLargeError,
    Listed,
    LocalArtifactStore,
    StoredFile,
    check_relative_path,
)
from ledgerflow.api.errors import ApiError
from ledgerflow.api.mlflow.protocol import actor_of, does_not_exist, invalid
from ledgerflow.api.runtime import ProjectionLagError, Runtime
from ledgerflow.api.writes import emit, producer_of
from ledgerflow.settings import Settings

SERVICE_ANCHOR = "/api/2.0/mlflow-artifacts/artifacts"
RUN_ID = re.compile(r"[0-9a-f]{32}")
#: served as text/plain whatever the platform's MIME table says (MLflow's UI previews them); compared
#: case-sensitively, as MLflow does, with MLflow's file names "MLmodel" and "mlproject" for extension-less files
TEXT_EXTENSIONS = frozenset((
    "txt log err cfg conf cnf cf ini properties prop hocon toml yaml yml xml json js py py3 csv tsv md rst ipynb "
    "MLmodel mlproject"
).split())
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")
_store_lock = threading.Lock()


def store_of(request: Request) -> LocalArtifactStore:
    """The app's artifact store over ``runtime.artifact_root``, created on first use."""
    app = request.app
    with _store_lock:
        store = getattr(app.state, "artifact_store", None)
        if store is None:
            runtime: Runtime = app.state.runtime
            limit = Settings.from_env().artifact_max_upload_bytes
            store = app.state.artifact_store = LocalArtifactStore(runtime.artifact_root, max_upload_bytes=limit)
        return store


@contextmanager
def store_errors() -> Iterator[None]:
    """The store's errors as MLflow's error codes (a bad path is INVALID_PARAMETER_VALUE, as in MLflow)."""
    try:
        yield
    except ArtifactPathError as e:
        raise invalid(str(e)) from None
    except ArtifactNotFoundError as e:
        raise does_not_exist(str(e)) from None
    except ArtifactTooLargeError as e:
        raise ApiError(413, "REQUEST_TOO_LARGE", str(e)) from None
    except OSError as e:
        raise _os_error(e) from e


def _os_error(error: OSError) -> ApiError:
    if error.errno == errno.ENAMETOOLONG:
        return invalid(f"Invalid path: a name is longer than the file system allows ({error.strerror})")
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return ApiError(507, "RESOURCE_EXHAUSTED", f"the artifact store is full ({error.strerror}); nothing was "
                                                   f"stored under the name")
    return ApiError(500, "INTERNAL_ERROR", f"the artifact store failed: {error.strerror or error}")


# ---- responses ---------------------------------------------------------------------------------

def mime_type_of(name: str) -> str:
    """MLflow's choice: text/plain for known text extensions (and MLmodel, mlproject), the MIME table, else binary."""
    base = PurePosixPath(name).name
    extension = base.rsplit(".", 1)[1] if "." in base else base
    if extension in TEXT_EXTENSIONS:
        return "text/plain"
    guessed, _ = mimetypes.guess_type(base)
    return guessed or "application/octet-stream"


def content_disposition(name: str) -> str:
    """An RFC 6266 attachment header; non-ASCII names get an ASCII fallback plus ``filename*`` (RFC 5987)."""
    try:
        name.encode("ascii")
    except UnicodeEncodeError:
        fallback = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii") or "download"
        encoded = urllib.parse.quote(name, safe="!#$&+-.^_`|~")
        return f"attachment; filename={_header_value(fallback)}; filename*=UTF-8''{encoded}"
    return f"attachment; filename={_header_value(name)}"


def _header_value(value: str) -> str:
    if value and set(value) <= _TOKEN_CHARS:
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def file_response(local: Path, name: str) -> FileResponse:
    """Stream a stored file (chunked reads in a worker thread, Range requests honoured) as an attachment:
    the type comes from the name, never from what the uploader sent, and browsers must not sniff it."""
    base = PurePosixPath(name).name
    return FileResponse(local, headers={
        "Content-Type": mime_type_of(base),  # given here so no "; charset" is appended: MLflow sends the bare type
        "Content-Disposition": content_disposition(base),
        "X-Content-Type-Options": "nosniff",
    })


def listing_json(entries: Sequence[Listed], prefix: str = "") -> dict[str, Any]:
    """MLflow's ListArtifacts shape; directories carry no file_size, and an empty listing is ``{}``."""
    files = []
    for entry in entries:
        item: dict[str, Any] = {"path": f"{prefix}/{entry.name}" if prefix else entry.name, "is_dir": entry.is_dir}
        if entry.size is not None:
            item["file_size"] = entry.size
        files.append(item)
    return {"files": files} if files else {}


# ---- artifact URIs ------------------------------------------------------------------------------

def store_path_of_uri(uri: str, store: LocalArtifactStore) -> str | None:
    """The store path an artifact URI names, or None when this server does not hold that store.

    A proxied URI whose path tries to leave the root (``mlflow-artifacts:/../x``) is refused with 400.
    """
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "mlflow-artifacts":
        raw = parsed.path
    elif parsed.scheme in ("http", "https") and SERVICE_ANCHOR in parsed.path:
        raw = parsed.path.split(SERVICE_ANCHOR, 1)[1]
    elif parsed.scheme == "file" or (parsed.scheme == "" and uri.startswith("/")):
        return store.relative_of(Path(urllib.parse.unquote(parsed.path)))
    else:
        return None
    try:
        return check_relative_path(raw.lstrip("/"), allow_root=True)
    except ArtifactPathError as e:
        raise invalid(f"the artifact URI {uri!r} is not usable: {e}") from None


def join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def not_served(uri: str, store: LocalArtifactStore) -> ApiError:
    return ApiError(501, "NOT_IMPLEMENTED",
                    f"the artifacts at {uri!r} are not in this server's artifact store ({store.root}); ledgerflow "
                    f"serves mlflow-artifacts:/ URIs and file: URIs inside that directory")


# ---- reading the projection ----------------------------------------------------------------------

async def read(runtime: Runtime, query: str, parameters: Sequence[Any]) -> list[tuple[Any, ...]]:
    """One query with read-your-writes, off the event loop (the wait for the projector blocks)."""
    def run() -> list[tuple[Any, ...]]:
        with runtime.read_cursor() as cursor:
            return _execute(cursor, query, parameters)

    try:
        return await to_thread.run_sync(run)
    except ProjectionLagError as e:
        raise ApiError(503, "PROJECTION_LAG", str(e)) from None


def _execute(cursor: duckdb.DuckDBPyConnection, query: str, parameters: Sequence[Any]) -> list[tuple[Any, ...]]:
    return cursor.execute(query, list(parameters)).fetchall()


@dataclass(frozen=True)
class RunArtifacts:
    run_id: str
    artifact_uri: str
    lifecycle_stage: str
    user_id: str


async def load_run(runtime: Runtime, run_id: str) -> RunArtifacts:
    """A run (deleted ones too, as MLflow) with its artifact URI; 404 if it was never created."""
    rows = await read(runtime, "SELECT run_id, artifact_uri, experiment_id, lifecycle_stage, user_id "
                               "FROM runs WHERE run_id = ?", [run_id])
    if not rows:
        raise does_not_exist(f"Run with id={run_id} not found")
    return _run_of(rows[0])


def _run_of(row: tuple[Any, ...]) -> RunArtifacts:
    run_id, uri, experiment_id, stage, user_id = row
    # a run recorded without an artifact URI lives where MLflow's proxy puts every run
    return RunArtifacts(run_id, uri or f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts", stage, user_id)


async def load_logged_model_location(runtime: Runtime, model_id: str) -> str:
    """An MLflow 3 logged model's artifact location; 404 if it does not exist or was deleted."""
    rows = await read(runtime, "SELECT artifact_location FROM logged_models "
                               "WHERE model_id = ? AND lifecycle_stage = 'active'", [model_id])
    if not rows:
        raise does_not_exist(f"Logged model with ID '{model_id}' not found.")
    return rows[0][0]


# ---- the audit trail ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunUpload:
    run: RunArtifacts
    path_in_run: str


async def find_run_of(runtime: Runtime, store: LocalArtifactStore, store_path: str) -> RunUpload | None:
    """The active run whose artifact directory holds ``store_path``, if any.

    Candidates are the path's segments that look like run ids (MLflow puts runs at
    ``<experiment>/<run_id>/artifacts``); each is confirmed against the run's recorded artifact URI,
    so runs under a custom artifact location match too and a look-alike directory does not.
    """
    segments = store_path.split("/")[:-1]
    candidates = sorted({s for s in segments if RUN_ID.fullmatch(s)})
    if not candidates:
        return None
    marks = ", ".join("?" for _ in candidates)
    rows = await read(runtime, f"SELECT run_id, artifact_uri, experiment_id, lifecycle_stage, user_id FROM runs "
                               f"WHERE lifecycle_stage = 'active' AND run_id IN ({marks})", candidates)
    for row in rows:
        run = _run_of(row)
        try:
            root = store_path_of_uri(run.artifact_uri, store)
        except ApiError:
            continue
        if root is not None and store_path.startswith(f"{root}/" if root else ""):
            return RunUpload(run, store_path[len(root):].lstrip("/"))
    return None


async def record_upload(request: Request, store: LocalArtifactStore, stored: StoredFile) -> bool:
    """Append ArtifactLogged when the stored file belongs to an active run; True if an event was appended.

    Called once the file is durable, so the event never points at a file that is not there. Files
    outside runs (logged-model artifacts, anything else) are stored without an event: no event type
    describes them yet.
    """
    runtime: Runtime = request.app.state.runtime
    owner = await find_run_of(runtime, store, stored.path)
    if owner is None:
        return False
    uri = f"{owner.run.artifact_uri.rstrip('/')}/{owner.path_in_run}"
    fields = {"run_id": owner.run.run_id, "path": owner.path_in_run, "uri": uri, "size": stored.size,
              "sha256": stored.sha256}
    actor = actor_of(request, owner.run.user_id)
    producer = producer_of(request)
    await to_thread.run_sync(lambda: emit(runtime, producer, actor, [("ArtifactLogged", fields)]))
    return True
