"""MLflow 3's error classification, found by running MLflow's own REST suites against ledgerflow server.

An MLflow 3.17 server answers errors as ``{"error_code", "message", "sqlstate", "error_class"}``; the
client keeps ``sqlstate`` on the exception it raises. ledgerflow's MLflow endpoints answer the same,
its own API keeps ``{"error_code", "message"}``.
"""

from __future__ import annotations

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from tests.api.serving import RunningServer


def test_client_exceptions_carry_mlflows_sqlstate(embedded_client: MlflowClient) -> None:
    with pytest.raises(MlflowException, match=r"Run with id=f+ not found") as missing:
        embedded_client.get_run("f" * 32)
    # without the server's field the client would derive the control-plane code KAMC2
    assert (missing.value.error_code, missing.value.sqlstate) == ("RESOURCE_DOES_NOT_EXIST", "KAM00")
    experiment_id = embedded_client.create_experiment("classified")
    with pytest.raises(MlflowException, match="already exists") as duplicate:
        embedded_client.create_experiment("classified")
    assert (duplicate.value.error_code, duplicate.value.sqlstate) == ("RESOURCE_ALREADY_EXISTS", "KAM00")
    assert embedded_client.get_experiment(experiment_id).name == "classified"


def test_every_mlflow_root_classifies_and_ledgerflow_api_does_not(mlflow_embedded_server: RunningServer) -> None:
    with mlflow_embedded_server.client() as http:
        bad_key = http.post("/api/2.0/mlflow/runs/log-parameter", json={"run_id": "r", "key": 31, "value": "v"})
        ajax_missing = http.get("/ajax-api/2.0/mlflow/experiments/get", params={"experiment_id": "nope"})
        unsafe = http.get("/get-artifact", params={"run_id": "r", "path": "../x"})
        multipart = http.post("/api/2.0/mlflow-artifacts/mpu/create/a.bin", json={"path": "a.bin", "num_parts": 2})
        own_api = http.post("/api/v1/sql", json={"sql": "DROP TABLE runs"})
    assert bad_key.status_code == 400
    assert {k: bad_key.json()[k] for k in ("error_code", "error_class", "sqlstate")} == {
        "error_code": "INVALID_PARAMETER_VALUE", "error_class": "INVALID_PARAMETER_VALUE", "sqlstate": "KAM00"}
    assert ajax_missing.status_code == 404
    assert (ajax_missing.json()["error_class"], ajax_missing.json()["sqlstate"]) == ("RESOURCE_NOT_FOUND", "KAM00")
    assert unsafe.json() == {"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid path",
                             "error_class": "INVALID_PARAMETER_VALUE", "sqlstate": "KAM00"}
    # a code MLflow does not classify gets neither field, as from MLflow
    assert multipart.status_code == 501 and set(multipart.json()) == {"error_code", "message"}
    # PERMISSION_DENIED is a code MLflow classifies: the own API still answers two fields
    assert own_api.status_code == 403 and set(own_api.json()) == {"error_code", "message"}
