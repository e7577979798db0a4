"""MLflow experiments through the unmodified client: create, read, search, rename, tags, delete, restore."""

from __future__ import annotations

import time

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException

from ledgerflow.ingest.sdk import experiment_id_for
from tests.api.mlflow.tracking_support import event_types, rest, sql
from tests.api.serving import RunningServer


def test_an_untouched_server_has_the_default_experiment(mlflow_server: RunningServer) -> None:
    client = MlflowClient(mlflow_server.url)
    [default] = client.search_experiments()
    assert (default.experiment_id, default.name, default.lifecycle_stage) == ("0", "Default", "active")
    assert default.artifact_location == "mlflow-artifacts:/0"
    with mlflow.start_run() as run:  # no experiment named anywhere: MLflow logs into "0"
        mlflow.log_param("where", "default")
    assert client.get_run(run.info.run_id).info.experiment_id == "0"
    assert client.get_run(run.info.run_id).data.params == {"where": "default"}
    assert [e.experiment_id for e in client.search_experiments()] == ["0"]  # created once, not per request


def test_create_get_rename_tag_delete_restore(mlflow_server: RunningServer) -> None:
    client = MlflowClient(mlflow_server.url)
    experiment_id = client.create_experiment("churn", tags={"team": "growth", "stage": "dev"})
    assert experiment_id == experiment_id_for("churn")  # the same id the ledgerflow SDK derives
    experiment = client.get_experiment(experiment_id)
    assert (experiment.name, experiment.lifecycle_stage, experiment.tags) == (
        "churn", "active", {"team": "growth", "stage": "dev"})
    assert experiment.artifact_location == f"mlflow-artifacts:/{experiment_id}"
    assert experiment.creation_time == experiment.last_update_time > 0
    assert client.get_experiment_by_name("churn").experiment_id == experiment_id

    client.set_experiment_tag(experiment_id, "stage", "prod")
    client.set_experiment_tag(experiment_id, "multi line", "a\nb")
    client.delete_experiment_tag(experiment_id, "team")
    assert client.get_experiment(experiment_id).tags == {"stage": "prod", "multi line": "a\nb"}

    time.sleep(0.002)
    client.rename_experiment(experiment_id, "churn-v2")
    renamed = client.get_experiment(experiment_id)
    assert renamed.name == "churn-v2" and renamed.last_update_time > renamed.creation_time
    assert client.get_experiment_by_name("churn") is None

    client.delete_experiment(experiment_id)
    assert client.get_experiment(experiment_id).lifecycle_stage == "deleted"
    assert client.get_experiment_by_name("churn-v2").lifecycle_stage == "deleted"
    client.restore_experiment(experiment_id)
    assert client.get_experiment(experiment_id).lifecycle_stage == "active"

    assert event_types(mlflow_server, "experiment_id", experiment_id) == [
        "ExperimentCreated", "ExperimentTagSet", "ExperimentTagSet", "ExperimentTagDeleted", "ExperimentRenamed",
        "ExperimentDeleted", "ExperimentRestored"]


def test_experiment_errors_match_mlflow(embedded_client: MlflowClient, mlflow_embedded_server: RunningServer) -> None:
    client = embedded_client
    experiment_id = client.create_experiment("dup")
    with pytest.raises(MlflowException) as error:
        client.create_experiment("dup")
    assert error.value.error_code == "RESOURCE_ALREADY_EXISTS"
    client.delete_experiment(experiment_id)
    with pytest.raises(MlflowException) as error:  # a deleted experiment keeps its name, as in MLflow
        client.create_experiment("dup")
    assert error.value.error_code == "RESOURCE_ALREADY_EXISTS"
    with pytest.raises(MlflowException, match="No Experiment with id=nope exists") as error:
        client.get_experiment("nope")
    assert error.value.error_code == "RESOURCE_DOES_NOT_EXIST" and error.value.get_http_status_code() == 404
    with pytest.raises(MlflowException) as error:  # deleting twice: it is not active any more
        client.delete_experiment(experiment_id)
    assert error.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException, match="must be in the 'active' state") as error:
        client.set_experiment_tag(experiment_id, "k", "v")
    assert error.value.error_code == "INVALID_PARAMETER_VALUE"
    # MLflow answers INVALID_STATE with 500 (which its client retries, then reports as a server error)
    response = rest(mlflow_embedded_server, "POST", "/experiments/update",
                    {"experiment_id": experiment_id, "new_name": "other"})
    assert response.status_code == 500
    body = response.json()
    assert (body["error_code"], body["message"]) == ("INVALID_STATE", "Cannot rename a non-active experiment.")
    live = client.create_experiment("live")
    with pytest.raises(MlflowException, match="No tag with name: missing") as error:
        client.delete_experiment_tag(live, "missing")
    assert error.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException, match="Cannot set a deleted experiment"):
        mlflow.set_experiment("dup")

    server = mlflow_embedded_server
    for body, message in (({"name": 123}, "Invalid value 123 for parameter 'name' supplied"),
                          ({}, "Missing value for required parameter 'name'"),
                          ({"name": "x", "artifact_location": 9.0},
                           "Invalid value 9.0 for parameter 'artifact_location'"),
                          ({"name": "x", "tags": "5"}, "Invalid value \"5\" for parameter 'tags'"),
                          ({"name": "x" * 501}, "'name' exceeds the maximum length of 500 characters")):
        response = rest(server, "POST", "/experiments/create", body)
        assert response.status_code == 400, body
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert message in response.json()["message"]
    assert client.get_experiment_by_name("x") is None  # nothing of the refused requests was stored


def test_ids_follow_the_sdk_until_taken(embedded_client: MlflowClient) -> None:
    first = embedded_client.create_experiment("reused-name")
    embedded_client.rename_experiment(first, "moved-away")
    second = embedded_client.create_experiment("reused-name")  # the derived id is taken: a fresh one
    assert second != first and len(second) == 32
    assert {embedded_client.get_experiment(first).name, embedded_client.get_experiment(second).name} == {
        "moved-away", "reused-name"}


def test_search_experiments_filters_orders_and_pages(embedded_client: MlflowClient) -> None:
    client = embedded_client
    assert client.search_experiments()[0].name == "Default"
    ids = {}
    for name, tags in (("a", {"key": "value"}), ("ab", {"key": "vaLue"}), ("Abc", None)):
        time.sleep(0.002)  # distinct creation times make the default order (newest first) deterministic
        ids[name] = client.create_experiment(name, tags=tags)

    def names(**kwargs) -> list[str]:
        return [e.name for e in client.search_experiments(**kwargs)]

    assert names(filter_string="attribute.name = 'a'") == ["a"]
    assert names(filter_string="attribute.name != 'a'") == ["Abc", "ab", "Default"]
    assert names(filter_string="name LIKE 'a%'") == ["ab", "a"]
    assert names(filter_string="name ILIKE 'a%'") == ["Abc", "ab", "a"]
    assert names(filter_string="tag.key = 'value'") == ["a"]
    assert names(filter_string="tag.key != 'value'") == ["ab"]
    assert names(filter_string="tag.key ILIKE '%alu%'") == ["ab", "a"]
    assert names(order_by=["name DESC"]) == ["ab", "a", "Default", "Abc"]
    first_page = client.search_experiments(max_results=2)
    assert [e.name for e in first_page] == ["Abc", "ab"] and first_page.token
    second_page = client.search_experiments(page_token=first_page.token)
    assert [e.name for e in second_page] == ["a", "Default"] and second_page.token is None

    client.delete_experiment(ids["ab"])
    assert names(view_type=ViewType.ACTIVE_ONLY) == ["Abc", "a", "Default"]
    assert names(view_type=ViewType.DELETED_ONLY) == ["ab"]
    assert names(view_type=ViewType.ALL) == ["Abc", "ab", "a", "Default"]
    with pytest.raises(MlflowException) as error:
        client.search_experiments(filter_string="name = 'a' OR name = 'b'")
    assert error.value.error_code == "INVALID_PARAMETER_VALUE"


def test_deleting_an_experiment_deletes_its_runs_and_restoring_restores_them(
        embedded_client: MlflowClient, mlflow_embedded_server: RunningServer) -> None:
    client = embedded_client
    experiment_id = client.create_experiment("cascade")
    kept, deleted_before = client.create_run(experiment_id), client.create_run(experiment_id)
    client.delete_run(deleted_before.info.run_id)
    client.delete_experiment(experiment_id)
    for run in (kept, deleted_before):
        assert client.get_run(run.info.run_id).info.lifecycle_stage == "deleted"
    assert client.search_runs([experiment_id], run_view_type=ViewType.ACTIVE_ONLY) == []
    with pytest.raises(MlflowException, match="must be in the 'active' state"):
        client.log_metric(kept.info.run_id, "m", 1.0)
    with pytest.raises(MlflowException, match="must be in the 'active' state") as error:
        client.create_run(experiment_id)
    assert error.value.error_code == "INVALID_PARAMETER_VALUE"

    client.restore_experiment(experiment_id)  # MLflow restores every run of the experiment
    assert {r.info.run_id for r in client.search_runs([experiment_id])} == {
        kept.info.run_id, deleted_before.info.run_id}
    client.log_metric(kept.info.run_id, "m", 1.0)
    assert client.get_run(kept.info.run_id).data.metrics == {"m": 1.0}
    rows = sql(mlflow_embedded_server, "SELECT event_type, count(*) AS n FROM events WHERE event_type IN "
                                       "('RunDeleted', 'RunRestored') GROUP BY event_type ORDER BY event_type")
    assert rows == [{"event_type": "RunDeleted", "n": 2}, {"event_type": "RunRestored", "n": 2}]
    assert sql(mlflow_embedded_server, "SELECT count(*) AS n FROM dead_letters") == [{"n": 0}]
