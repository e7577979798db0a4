"""Artifact behaviours found by running MLflow's own REST test suites against ledgerflow server.

Each test drives the real ``mlflow`` client (or raw HTTP where MLflow's UI talks HTTP) against a real
server and checks what MLflow's server answers: the UI's small-upload endpoint, MLflow's exact
"Invalid path" answer on the tracking service's artifact endpoints, and the type of ``mlproject``
downloads.
"""

from __future__ import annotations

import httpx
from mlflow import MlflowClient

from tests.api.mlflow.artifact_support import SERVICE, sql
from tests.api.serving import RunningServer

UPLOAD = "/ajax-api/2.0/mlflow/upload-artifact"


def _error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error_code"], body["message"]


def test_ui_upload_lands_in_the_run_and_is_audited(mlflow_embedded_server: RunningServer,
                                                    embedded_client: MlflowClient) -> None:
    experiment_id = embedded_client.create_experiment("ui-uploads")
    run_id = embedded_client.create_run(experiment_id).info.run_id
    with mlflow_embedded_server.client() as http:
        response = http.post(UPLOAD, params={"run_uuid": run_id, "path": "notes/readme.txt"}, content=b"hello world")
        assert response.status_code == 200
        fetched = http.get("/get-artifact", params={"run_uuid": run_id, "path": "notes/readme.txt"})
    assert fetched.text == "hello world"
    assert [a.path for a in embedded_client.list_artifacts(run_id, "notes")] == ["notes/readme.txt"]
    audited = sql(mlflow_embedded_server, f"SELECT path, size FROM artifacts WHERE run_id = '{run_id}'")
    assert audited == [{"path": "notes/readme.txt", "size": 11}]


def test_ui_upload_refusals_store_nothing(mlflow_embedded_server: RunningServer, embedded_client: MlflowClient) -> None:
    experiment_id = embedded_client.create_experiment("ui-upload-refusals")
    run_id = embedded_client.create_run(experiment_id).info.run_id
    too_big = b"x" * (10 * 1024 * 1024 + 1)
    with mlflow_embedded_server.client() as http:
        assert _error(http.post(UPLOAD, content=b"data")) == (
            400, "INVALID_PARAMETER_VALUE", "Request must specify run_uuid.")
        assert _error(http.post(UPLOAD, params={"run_uuid": run_id, "path": ""}, content=b"data")) == (
            400, "INVALID_PARAMETER_VALUE", "Request must specify path.")
        assert _error(http.post(UPLOAD, params={"run_uuid": run_id, "path": "../escape.txt"}, content=b"data")) == (
            400, "INVALID_PARAMETER_VALUE", "Invalid path")
        assert _error(http.post(UPLOAD, params={"run_uuid": run_id, "path": "empty.txt"})) == (
            400, "INVALID_PARAMETER_VALUE", "Request must specify data.")
        assert _error(http.post(UPLOAD, params={"run_uuid": run_id, "path": "big.bin"}, content=too_big)) == (
            400, "INVALID_PARAMETER_VALUE", "Artifact size is too large. Max size is 10MB.")
        status, code, _ = _error(http.post(UPLOAD, params={"run_uuid": "f" * 32, "path": "a.txt"}, content=b"x"))
        assert (status, code) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert embedded_client.list_artifacts(run_id) == []
    assert sql(mlflow_embedded_server, f"SELECT count(*) AS n FROM artifacts WHERE run_id = '{run_id}'") == [{"n": 0}]
    assert not (mlflow_embedded_server.runtime.artifact_root / "escape.txt").exists()


def test_tracking_artifact_endpoints_refuse_unsafe_paths_with_mlflows_exact_answer(
        mlflow_embedded_server: RunningServer, embedded_client: MlflowClient) -> None:
    run_id = embedded_client.create_run(embedded_client.create_experiment("unsafe-paths")).info.run_id
    invalid = {"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid path",
               "error_class": "INVALID_PARAMETER_VALUE", "sqlstate": "KAM00"}
    with mlflow_embedded_server.client() as http:
        for path in ("../path", "/etc/passwd", "a/../../b"):
            listed = http.get("/api/2.0/mlflow/artifacts/list", params={"run_id": run_id, "path": path})
            fetched = http.get("/get-artifact", params={"run_id": run_id, "path": path})
            version_file = http.get("/model-versions/get-artifact", params={"name": "m", "version": 1, "path": path})
            for response in (listed, fetched, version_file):
                assert (response.status_code, response.json()) == (400, invalid), (path, response.url)


def test_mlproject_and_mlmodel_download_as_text(mlflow_embedded_server: RunningServer) -> None:
    with mlflow_embedded_server.client() as http:
        for name, expected in (("mlproject", "text/plain"), ("MLmodel", "text/plain"),
                               ("weights.pkl", "application/octet-stream")):
            assert http.put(f"{SERVICE}/types/{name}", content=b"name: x\n").status_code == 200
            downloaded = http.get(f"{SERVICE}/types/{name}", headers={"Accept": "text/html"})
            assert downloaded.headers["content-type"] == expected, name
            assert downloaded.headers["x-content-type-options"] == "nosniff"
