"""Where a new model version comes from: checking its ``source`` and finding where its files are.

MLflow's server refuses sources that could reach files they should not (relative ``..`` parts, local
paths outside the run's artifacts) and sources that do not belong to the run or logged model named
with them. The accepted forms:

- ``models:/<model_id>`` with that ``model_id``: an MLflow 3 logged model; files at its artifact location;
- ``models:/<name>/<version>`` (or ``@alias``, ``/<stage>``, ``/latest``): another version; its files,
  run and logged model are inherited (this is how ``copy_model_version`` works);
- ``runs:/<run_id>/<path>`` with that ``run_id``;
- ``mlflow-artifacts:`` URIs (or the proxy's http URL) inside the run's (or logged model's) artifacts;
- a local path or ``file:`` URI inside the run's (or logged model's) local artifact directory;
- any other store URI (``s3://``, ``gs://`` ...) as given.
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

import duckdb

from ledgerflow.api.errors import ApiError
from ledgerflow.api.mlflow.protocol import invalid
from ledgerflow.api.mlflow.registry_reads import (
    alias_version,
    latest_version_number,
    model_not_found,
    require_model,
    require_version,
)
from ledgerflow.api.mlflow.registry_validation import LATEST_ALIAS, STAGE_SYMBOL, canonical_stage

_PROXY_ROUTE = ("api", "2.0", "mlflow-artifacts", "artifacts")


@dataclass
class Source:
    source: str  # as stored on the version
    storage_location: str  # where the version's files are downloaded from
    run_id: str | None
    model_id: str | None


@dataclass(frozen=True)
class ModelUri:
    model_id: str | None = None
    name: str | None = None
    version: int | None = None
    stage: str | None = None
    alias: str | None = None


#: the operator's allow-list for sources, under the name MLflow's server reads, so one deployment setting
#: restricts both servers alike (e.g. ``^mlflow-artifacts:/.*$``)
SOURCE_PATTERN_VARIABLE = "MLFLOW_CREATE_MODEL_VERSION_SOURCE_VALIDATION_REGEX"


def check_source_pattern(source: str) -> None:
    """Refuse a source the operator's pattern (``SOURCE_PATTERN_VARIABLE``, searched as MLflow does) does
    not match; no pattern set allows every source."""
    pattern = os.environ.get(SOURCE_PATTERN_VARIABLE)
    if pattern and not _compiled(pattern).search(source):
        raise invalid(f"Invalid model version source: '{source}'. It does not match the pattern this server "
                      f"allows ({SOURCE_PATTERN_VARIABLE}={pattern}).")


@functools.lru_cache(maxsize=4)
def _compiled(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ApiError(500, "INTERNAL_ERROR", f"the server's {SOURCE_PATTERN_VARIABLE} is not a valid regular "
                                              f"expression ({e}); fix it and restart the server") from None


def _bad_source(source: str, hint: str) -> Exception:
    return invalid(f"Invalid model version source: '{source}'. {hint}")


def parse_model_uri(uri: str) -> ModelUri:
    """``models:/<model_id>``, ``models:/<name>/<version|stage|latest>`` or ``models:/<name>@<alias>``."""
    parsed = urllib.parse.urlparse(uri, allow_fragments=False)
    path = parsed.path
    parts = path.lstrip("/").split("/")
    if parsed.scheme != "models" or not path.startswith("/") or len(path) <= 1 or len(parts) > 2 or not parts[0].strip():
        raise _bad_source(uri, "A models URI is models:/<model_id>, models:/<name>/<version or stage>, "
                               "models:/<name>/latest or models:/<name>@<alias>.")
    if len(parts) == 2:
        name, suffix = parts
        if not suffix.strip():
            raise _bad_source(uri, "The part after the model name is empty.")
        if suffix.isdigit():
            return ModelUri(name=name, version=int(suffix))
        if suffix.lower() == LATEST_ALIAS:
            return ModelUri(name=name)
        return ModelUri(name=name, stage=suffix)
    if "@" in parts[0]:
        name, _, alias = parts[0].rpartition("@")
        if not name or not alias.strip():
            raise _bad_source(uri, "An alias URI is models:/<name>@<alias>.")
        return ModelUri(name=name, alias=alias)
    return ModelUri(model_id=parts[0])


def _no_relative_parts(source: str) -> None:
    """No ``..`` and nothing that normalizes to another path, however often percent-encoded."""
    decoded = source
    while (unquoted := urllib.parse.unquote_plus(decoded)) != decoded:
        decoded = unquoted
    path = re.sub(r"/+", "/", urllib.parse.urlparse(decoded).path.rstrip("/"))
    if "\x00" in path or ".." in decoded.split("/") or (path and posixpath.normpath(path) != path):
        raise _bad_source(source, "The path must be absolute and free of relative parts such as '..'.")


def _parts(uri: str) -> tuple[str, str, tuple[str, ...]]:
    parsed = urllib.parse.urlsplit(uri)
    parts = []
    for part in parsed.path.split("/"):
        while (unquoted := urllib.parse.unquote(part)) != part:
            part = unquoted
        if part:
            parts.append(part)
    return parsed.scheme.lower(), parsed.netloc.lower(), tuple(parts)


def _within(source: str, root: str | None) -> bool:
    if not root:
        return False
    source_scheme, source_host, source_parts = _parts(source)
    root_scheme, root_host, root_parts = _parts(root)
    return (source_scheme, source_host) == (root_scheme, root_host) and bool(root_parts) \
        and source_parts[:len(root_parts)] == root_parts


def _is_local(uri: str) -> bool:
    parsed = urllib.parse.urlparse(uri)
    return parsed.scheme == "" or (parsed.scheme == "file" and parsed.hostname in (None, "", ".", "localhost", "127.0.0.1"))


def _local_path(uri: str) -> str:
    return posixpath.normpath(urllib.parse.unquote(urllib.parse.urlparse(uri).path) if uri.startswith("file:") else uri)


def _local_within(source: str, root: str | None) -> bool:
    if not root or not _is_local(root):
        return False
    source_path, root_path = _local_path(source), _local_path(root)
    return source_path == root_path or source_path.startswith(root_path.rstrip("/") + "/")


def _is_proxied(uri: str) -> bool:
    scheme, _, parts = _parts(uri)
    if scheme == "mlflow-artifacts":
        return True
    return scheme in ("http", "https") and any(parts[i:i + len(_PROXY_ROUTE)] == _PROXY_ROUTE
                                                for i in range(len(parts) - len(_PROXY_ROUTE) + 1))


def _one(cursor: duckdb.DuckDBPyConnection, sql: str, key: str) -> tuple[Any, ...] | None:
    return cursor.execute(sql, [key]).fetchone()


def _run_artifact_uri(cursor: duckdb.DuckDBPyConnection, run_id: str | None, source: str) -> str:
    found = _one(cursor, "SELECT artifact_uri, experiment_id FROM runs WHERE run_id = ?", run_id) if run_id else None
    if found is None:
        raise _bad_source(source, "The run_id request parameter must name the run whose artifacts hold the source.")
    # a run recorded without an artifact URI keeps its files where MLflow's artifact proxy puts every run
    return found[0] or f"mlflow-artifacts:/{found[1]}/{run_id}/artifacts"


def logged_model_location(cursor: duckdb.DuckDBPyConnection, model_id: str) -> tuple[str, str | None] | None:
    """(artifact_location, source_run_id) of an active logged model, or None."""
    return cursor.execute("SELECT artifact_location, source_run_id FROM logged_models WHERE model_id = ? "
                          "AND lifecycle_stage = 'active'", [model_id]).fetchone()


def _model_location(cursor: duckdb.DuckDBPyConnection, model_id: str | None, source: str) -> str:
    found = logged_model_location(cursor, model_id) if model_id else None
    if found is None:
        raise _bad_source(source, "The model_id request parameter must name the logged model whose artifacts "
                                  "hold the source.")
    return found[0]


def _check_against_run(cursor: duckdb.DuckDBPyConnection, source: str, run_id: str | None) -> None:
    if _is_local(source):
        if not _local_within(source, _run_artifact_uri(cursor, run_id, source)):
            raise _bad_source(source, "A local path needs the run_id request parameter, and must lie inside that "
                                      "run's local artifact directory.")
        return
    _no_relative_parts(source)
    scheme = urllib.parse.urlparse(source).scheme
    if scheme == "runs":
        parsed = urllib.parse.urlparse(source)
        source_run = parsed.path.lstrip("/").split("/", 1)[0]
        if parsed.netloc or not run_id or source_run != run_id:
            raise _bad_source(source, "The run_id request parameter must name the run of the runs:/ URI.")
    elif scheme == "models":
        if parse_model_uri(source).model_id is not None:
            raise _bad_source(source, "A models:/<model_id> source needs that model_id request parameter.")
    elif _is_proxied(source) and not _within(source, _run_artifact_uri(cursor, run_id, source)):
        raise _bad_source(source, "The source must lie inside the artifacts of the run named by run_id.")


def _check_against_model(cursor: duckdb.DuckDBPyConnection, source: str, model_id: str) -> None:
    if _is_local(source):
        if not _local_within(source, _model_location(cursor, model_id, source)):
            raise _bad_source(source, "A local path must lie inside the local artifact directory of the logged "
                                      "model named by model_id.")
        return
    _no_relative_parts(source)
    scheme = urllib.parse.urlparse(source).scheme
    if scheme == "runs":
        raise _bad_source(source, "A runs:/ source cannot come with a model_id; register models:/<model_id>.")
    if scheme == "models":
        source_model = parse_model_uri(source).model_id
        if source_model is not None and source_model != model_id:
            raise _bad_source(source, "The model_id request parameter must name the model of the models:/ URI.")
        if source_model is not None:
            _model_location(cursor, model_id, source)
    elif _is_proxied(source) and not _within(source, _model_location(cursor, model_id, source)):
        raise _bad_source(source, "The source must lie inside the artifacts of the logged model named by model_id.")


def _version_of(cursor: duckdb.DuckDBPyConnection, uri: ModelUri) -> int:
    name = uri.name or ""
    require_model(cursor, name)
    if uri.version is not None:
        return uri.version
    if uri.alias is not None:
        version = latest_version_number(cursor, name) if uri.alias.lower() == LATEST_ALIAS \
            else alias_version(cursor, name, uri.alias)
        if version is None:
            raise invalid(f"Registered model alias {uri.alias} not found.")
        return version
    stage = STAGE_SYMBOL[canonical_stage(uri.stage)] if uri.stage is not None else None
    version = latest_version_number(cursor, name, stage)
    if version is None:
        raise model_not_found(name) if stage is None else invalid(f"No versions of model '{name}' in stage {uri.stage}")
    return version


def resolve_source(cursor: duckdb.DuckDBPyConnection, source: str, run_id: str | None, model_id: str | None, *,
                   prompt: bool) -> Source:
    """Check ``source`` against the run or logged model it comes with; find the files and lineage it implies.

    A prompt version (MLflow's prompt registry) has no files: its source is kept as given."""
    if prompt:
        return Source(source, source, run_id or None, model_id or None)
    storage_location = source
    if urllib.parse.urlparse(source).scheme == "models":
        if urllib.parse.urlparse(source).netloc:
            raise _bad_source(source, "A models:/ source must name a model of this registry (no host).")
        uri = parse_model_uri(source)
        if uri.model_id is None:  # another registered version: inherit what it came from
            name, version = uri.name or "", _version_of(cursor, uri)
            original = require_version(cursor, name, version)
            if (run_id is not None and run_id != (original["run_id"] or "")) or \
                    (model_id is not None and model_id != (original["model_id"] or "")):
                raise _bad_source(source, "The run_id and model_id request parameters must match the version it "
                                          "names.")
            source = f"models:/{name}/{version}"
            storage_location = original["artifact_uri"] or original["source"]
            run_id = run_id if run_id is not None else original["run_id"]
            model_id = model_id if model_id is not None else original["model_id"]
    if model_id:
        _check_against_model(cursor, source, model_id)
    else:
        _check_against_run(cursor, source, run_id)
    uri_model = parse_model_uri(source).model_id if urllib.parse.urlparse(source).scheme == "models" else None
    if uri_model is not None:
        found = logged_model_location(cursor, uri_model)
        if found is None:
            raise _bad_source(source, f"Logged model '{uri_model}' does not exist.")
        storage_location, run_id = found[0], run_id or found[1]
    if not run_id and model_id:
        found = logged_model_location(cursor, model_id)
        run_id = found[1] if found else None
    return Source(source, storage_location, run_id or None, model_id or None)
