"""Registry behaviours found by running MLflow's own REST test suites against ledgerflow server.

The operator's source allow-list: MLflow's server reads the regular expression in
MLFLOW_CREATE_MODEL_VERSION_SOURCE_VALIDATION_REGEX and refuses model versions whose source it does
not match; ledgerflow honours the same setting so one deployment configuration restricts both.
"""

from __future__ import annotations

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from tests.api.mlflow.artifact_support import sql
from tests.api.serving import RunningServer

PATTERN_VARIABLE = "MLFLOW_CREATE_MODEL_VERSION_SOURCE_VALIDATION_REGEX"


def test_source_pattern_refuses_other_sources_and_appends_nothing(
        mlflow_embedded_server: RunningServer, embedded_client: MlflowClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PATTERN_VARIABLE, r"^mlflow-artifacts:/.*$")
    embedded_client.create_registered_model("restricted")
    with pytest.raises(MlflowException, match=r"Invalid model version source: 's3://bucket/model'") as refused:
        embedded_client.create_model_version("restricted", source="s3://bucket/model")
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    assert PATTERN_VARIABLE in str(refused.value)

    run = embedded_client.create_run(embedded_client.create_experiment("restricted-runs"))
    version = embedded_client.create_model_version("restricted", source=f"{run.info.artifact_uri}/model",
                                                   run_id=run.info.run_id)
    assert version.version == "1"
    created = sql(mlflow_embedded_server, "SELECT count(*) AS n FROM events WHERE event_type = 'ModelVersionCreated'")
    assert created == [{"n": 1}]


def test_without_a_pattern_every_store_uri_is_accepted(embedded_client: MlflowClient,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PATTERN_VARIABLE, raising=False)
    embedded_client.create_registered_model("open")
    assert embedded_client.create_model_version("open", source="s3://bucket/model").version == "1"


def test_a_broken_pattern_is_a_server_error_that_names_the_setting(
        mlflow_embedded_server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PATTERN_VARIABLE, "([unclosed")
    with mlflow_embedded_server.client() as http:
        http.post("/api/2.0/mlflow/registered-models/create", json={"name": "broken"}).raise_for_status()
        response = http.post("/api/2.0/mlflow/model-versions/create", json={"name": "broken", "source": "s3://b/m"})
    assert response.status_code == 500
    assert response.json()["error_code"] == "INTERNAL_ERROR"
    assert PATTERN_VARIABLE in response.json()["message"]
    assert sql(mlflow_embedded_server, "SELECT count(*) AS n FROM model_versions") == [{"n": 0}]


def test_search_page_sizes_are_bounded_as_mlflow_bounds_them(mlflow_embedded_server: RunningServer,
                                                            embedded_client: MlflowClient) -> None:
    embedded_client.create_registered_model("sized")
    with mlflow_embedded_server.client() as http:
        empty = http.get("/api/2.0/mlflow/registered-models/search", params={"max_results": 0})
        too_many = http.get("/api/2.0/mlflow/registered-models/search", params={"max_results": 1001})
        no_versions = http.get("/api/2.0/mlflow/model-versions/search", params={"max_results": 0})
        too_many_versions = http.get("/api/2.0/mlflow/model-versions/search", params={"max_results": 200_001})
    assert (empty.status_code, empty.json()) == (200, {})
    assert (too_many.status_code, too_many.json()["message"]) == (
        400, "Invalid value for request parameter max_results. It must be at most 1000, but got value 1001")
    assert (no_versions.status_code, no_versions.json()["message"]) == (
        400, "Invalid value for max_results. It must be a positive integer, but got 0")
    assert too_many_versions.json()["message"].endswith("It must be at most 200000, but got value 200001")
    assert [m.name for m in embedded_client.search_registered_models(max_results=1)] == ["sized"]
