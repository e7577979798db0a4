"""Reading a running MLflow tracking server through its REST API (stdlib only), page by page.

Reads what the server exposes: experiments (all view types), runs per experiment, every metric
history through ``metrics/get-history`` paging, registered models with their versions, tags and
aliases, and run artifacts through ``artifacts/list`` and ``/get-artifact``. The REST API does not
expose a deleted run's deletion time nor versions MLflow deleted, so those are not imported.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import math
import os
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ledgerflow.ingest.importers.errors import ArtifactCopyError, SourceError, SourceReadError
from ledgerflow.ingest.importers.records import (
    ArtifactFile,
    DatasetInputRecord,
    ExperimentRecord,
    LoggedModelRecord,
    MetricHistory,
    ModelVersionRecord,
    RegisteredModelRecord,
    RunOutput,
    RunRecord,
)
from ledgerflow.ingest.importers.source import MlflowSource

API = "/api/2.0/mlflow"
PAGE = 1000
HISTORY_PAGE = 25_000
_CHUNK = 1024 * 1024
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _pairs(items: list[dict[str, Any]] | None) -> dict[str, str]:
    return {item["key"]: item.get("value", "") for item in items or []}


def _number(value: Any) -> float:
    return _SPECIAL_FLOATS[value] if isinstance(value, str) and value in _SPECIAL_FLOATS else float(value)


def _integer(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


class RestSource(MlflowSource):
    """An MLflow tracking server at ``http(s)://host:port`` (a path prefix is kept)."""

    def __init__(self, url: str, *, timeout: float = 60.0) -> None:
        parts = urllib.parse.urlsplit(url)
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        self.base = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self.description = self.base  # never show a password given in the URL
        self.timeout = timeout
        self._headers: dict[str, str] = {}
        if parts.username:  # http://user:password@host: MLflow's basic-auth app
            credentials = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
            self._headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
        try:
            self._call("GET", "/experiments/search", {"max_results": 1})
        except SourceReadError as e:
            raise SourceError(f"{self.description} does not answer as an MLflow tracking server: {e}") from None

    # ---- HTTP ---------------------------------------------------------------------------------

    def _open(self, method: str, path: str, query: dict[str, Any] | None = None,
              body: dict[str, Any] | None = None) -> http.client.HTTPResponse:
        url = self.base + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = json.dumps(body).encode() if body is not None else None
        headers = {**self._headers, **({"Content-Type": "application/json"} if data else {})}
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)  # noqa: S310 - the user names the server
        except urllib.error.HTTPError as e:
            detail = e.read()[:500].decode("utf-8", "replace")
            raise SourceReadError(f"{method} {url} answered HTTP {e.code}: {detail}") from None
        except (TimeoutError, urllib.error.URLError, ConnectionError) as e:
            reason = getattr(e, "reason", e)
            raise SourceReadError(f"cannot reach {url}: {reason}") from None

    def _call(self, method: str, endpoint: str, query: dict[str, Any] | None = None,
              body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            with self._open(method, API + endpoint, query, body) as response:
                raw = response.read()
        except (OSError, http.client.HTTPException) as e:
            raise SourceReadError(f"{self.base}{API}{endpoint}: the answer broke off: {e}") from None
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            raise SourceReadError(f"{self.base}{API}{endpoint} answered with something other than JSON: "
                                  f"{raw[:200]!r}") from None

    def _pages(self, method: str, endpoint: str, field: str, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        token = None
        while True:
            arguments = {**request, "page_token": token} if token else dict(request)
            if method == "GET":
                page = self._call("GET", endpoint, query=arguments)
            else:
                page = self._call("POST", endpoint, body=arguments)
            yield from page.get(field, [])
            token = page.get("next_page_token")
            if not token:
                return

    # ---- tracking -----------------------------------------------------------------------------

    def experiments(self) -> list[ExperimentRecord]:
        records = []
        for e in self._pages("POST", "/experiments/search", "experiments", {"max_results": PAGE, "view_type": "ALL"}):
            records.append(ExperimentRecord(
                experiment_id=str(e["experiment_id"]), name=e["name"], artifact_location=e.get("artifact_location"),
                lifecycle_stage=e.get("lifecycle_stage", "active"), creation_time=_integer(e.get("creation_time")),
                last_update_time=_integer(e.get("last_update_time")), tags=_pairs(e.get("tags"))))
        return sorted(records, key=lambda r: (len(r.experiment_id), r.experiment_id))

    def _run_pages(self) -> Iterator[dict[str, Any]]:
        for experiment in self.experiments():
            yield from self._pages("POST", "/runs/search", "runs", {
                "experiment_ids": [experiment.experiment_id], "run_view_type": "ALL", "max_results": PAGE,
                "order_by": ["attributes.start_time ASC", "attributes.run_id ASC"]})

    def run_ids(self) -> list[str]:
        return sorted(run["info"]["run_id"] for run in self._run_pages())

    def runs(self) -> Iterator[RunRecord]:
        for run in self._run_pages():
            yield self._run(run)

    def _run(self, run: dict[str, Any]) -> RunRecord:
        info, data = run["info"], run.get("data", {})
        run_id = info.get("run_id") or info["run_uuid"]
        tags = _pairs(data.get("tags"))
        metrics = {m["key"]: self._history(run_id, m["key"]) for m in sorted(data.get("metrics", []), key=lambda m: m["key"])}
        inputs = []
        for item in (run.get("inputs") or {}).get("dataset_inputs", []):
            d = item["dataset"]
            inputs.append(DatasetInputRecord(name=d["name"], digest=d["digest"], source_type=d["source_type"],
                                             source=d["source"], schema=d.get("schema"), profile=d.get("profile"),
                                             tags=_pairs(item.get("tags"))))
        return RunRecord(
            run_id=run_id, experiment_id=str(info["experiment_id"]),
            run_name=info.get("run_name") or tags.get("mlflow.runName", ""), user_id=info.get("user_id", ""),
            status=info.get("status", "RUNNING"), start_time=_integer(info.get("start_time")) or 0,
            end_time=_integer(info.get("end_time")), lifecycle_stage=info.get("lifecycle_stage", "active"),
            artifact_uri=info.get("artifact_uri"), deleted_time=None, params=_pairs(data.get("params")), tags=tags,
            inputs=sorted(inputs, key=lambda r: (r.name, r.digest)), metrics=metrics,
            outputs=sorted((RunOutput(o["model_id"], int(o.get("step", 0)))
                            for o in (run.get("outputs") or {}).get("model_outputs", [])),
                           key=lambda o: (o.model_id, o.step)))

    def _history(self, run_id: str, key: str) -> MetricHistory:
        history = MetricHistory()
        for point in self._pages("GET", "/metrics/get-history", "metrics",
                                 {"run_id": run_id, "metric_key": key, "max_results": HISTORY_PAGE}):
            history.append(int(point.get("step", 0)), int(point["timestamp"]), _number(point["value"]))
        return history

    # ---- logged models (MLflow 3) -------------------------------------------------------------

    def logged_models(self) -> list[LoggedModelRecord]:
        records = []
        for experiment in self.experiments():
            try:
                models = list(self._pages("POST", "/logged-models/search", "models",
                                          {"experiment_ids": [experiment.experiment_id], "max_results": 100}))
            except SourceReadError as e:
                if "HTTP 404" in str(e):
                    return []  # an MLflow 2 server: no logged models
                raise
            for model in models:
                info, data = model["info"], model.get("data", {})
                records.append(LoggedModelRecord(
                    model_id=info["model_id"], experiment_id=str(info["experiment_id"]), name=info.get("name", ""),
                    artifact_location=info.get("artifact_uri", ""),
                    creation_time=_integer(info.get("creation_timestamp_ms")),
                    last_updated_time=_integer(info.get("last_updated_timestamp_ms")),
                    status=str(info.get("status", "PENDING")).removeprefix("LOGGED_MODEL_"),
                    status_message=info.get("status_message") or None, lifecycle_stage="active",
                    model_type=info.get("model_type") or None, source_run_id=info.get("source_run_id") or None,
                    params=_pairs(data.get("params")), tags=_pairs(info.get("tags"))))
        return sorted(records, key=lambda r: (r.creation_time or 0, r.model_id))

    def logged_model_files(self, model: LoggedModelRecord) -> Iterator[ArtifactFile]:
        listing = f"/logged-models/{urllib.parse.quote(model.model_id)}/artifacts/directories"
        download = f"/ajax-api/2.0/mlflow/logged-models/{urllib.parse.quote(model.model_id)}/artifacts/files?"
        pending: list[str | None] = [None]
        while pending:
            directory = pending.pop(0)
            query = {"artifact_directory_path": directory} if directory else {}
            for entry in sorted(self._call("GET", listing, query=query).get("files", []), key=lambda f: f["path"]):
                if entry.get("is_dir"):
                    pending.append(entry["path"])
                else:
                    yield ArtifactFile(path=entry["path"], size=int(entry.get("file_size", 0)), modified_time=None,
                                       location=download + urllib.parse.urlencode({"artifact_file_path": entry["path"]}))

    # ---- registry -----------------------------------------------------------------------------

    def registered_models(self) -> list[RegisteredModelRecord]:
        records = []
        for m in self._pages("GET", "/registered-models/search", "registered_models", {"max_results": PAGE}):
            name = m["name"]
            quoted = f"'{name}'" if "'" not in name else json.dumps(name)
            versions = [self._version(name, v) for v in self._pages(
                "GET", "/model-versions/search", "model_versions", {"filter": f"name={quoted}", "max_results": PAGE})]
            records.append(RegisteredModelRecord(
                name=name, creation_time=_integer(m.get("creation_timestamp")),
                last_updated_time=_integer(m.get("last_updated_timestamp")), description=m.get("description"),
                tags=_pairs(m.get("tags")), versions=tuple(sorted(versions, key=lambda v: v.version)),
                aliases={a["alias"]: int(a["version"]) for a in m.get("aliases", [])}))
        return sorted(records, key=lambda r: r.name)

    def _version(self, name: str, v: dict[str, Any]) -> ModelVersionRecord:
        version = int(v["version"])
        try:
            location = self._call("GET", "/model-versions/get-download-uri",
                                  query={"name": name, "version": str(version)}).get("artifact_uri")
        except SourceReadError:
            location = None  # an older server; the version's source still says where it came from
        return ModelVersionRecord(
            version=version, creation_time=_integer(v.get("creation_timestamp")),
            last_updated_time=_integer(v.get("last_updated_timestamp")), description=v.get("description"),
            stage=v.get("current_stage") or "None", source=v.get("source"), run_id=v.get("run_id"),
            storage_location=location, tags=_pairs(v.get("tags")), run_link=v.get("run_link") or None,
            model_id=v.get("model_id") or None)

    # ---- artifacts ----------------------------------------------------------------------------

    def artifact_files(self, run: RunRecord) -> Iterator[ArtifactFile]:
        pending: list[str | None] = [None]
        while pending:
            directory = pending.pop(0)
            query = {"run_id": run.run_id} | ({"path": directory} if directory else {})
            for entry in sorted(self._pages("GET", "/artifacts/list", "files", query), key=lambda f: f["path"]):
                if entry.get("is_dir"):
                    pending.append(entry["path"])
                else:
                    yield ArtifactFile(path=entry["path"], size=int(entry.get("file_size", 0)), modified_time=None,
                                       location="/get-artifact?" + urllib.parse.urlencode(
                                           {"run_id": run.run_id, "path": entry["path"]}))

    def _stream(self, file: ArtifactFile, write: Callable[[bytes], object]) -> tuple[int, str]:
        digest, size = hashlib.sha256(), 0
        try:
            with self._open("GET", file.location) as response:
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    write(chunk)
        except (SourceReadError, OSError, http.client.HTTPException) as e:
            raise ArtifactCopyError(f"cannot download artifact {file.path} from {self.base}: {e}") from e
        return size, digest.hexdigest()

    def hash_artifact(self, file: ArtifactFile) -> str:
        return self._stream(file, lambda chunk: None)[1]

    def copy_artifact(self, file: ArtifactFile, destination: Path) -> tuple[int, str]:
        temporary = destination.with_name(f".{destination.name}.{uuid.uuid4().hex}.tmp")
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            with open(temporary, "wb") as writer:
                result = self._stream(file, writer.write)
                writer.flush()
                os.fsync(writer.fileno())
            os.replace(temporary, destination)
        except OSError as e:
            raise ArtifactCopyError(f"cannot write artifact {destination}: {e}") from e
        finally:
            temporary.unlink(missing_ok=True)
        return result
