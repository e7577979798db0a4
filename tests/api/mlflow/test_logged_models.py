"""MLflow 3 logged models and run outputs through the unmodified mlflow client."""

from __future__ import annotations

import time

import pytest
from mlflow import MlflowClient
from mlflow.entities import LoggedModelOutput, LoggedModelStatus
from mlflow.exceptions import MlflowException
from mlflow.utils.time import get_current_time_millis

from tests.api.mlflow.tracking_support import rest, sql
from tests.api.serving import RunningServer


def test_create_finalize_tag_and_param_a_logged_model(embedded_client: MlflowClient,
                                                      mlflow_embedded_server: RunningServer) -> None:
    client = embedded_client
    experiment_id = client.create_experiment("models")
    run = client.create_run(experiment_id)
    before = get_current_time_millis()
    model = client.create_logged_model(experiment_id, name="clf", source_run_id=run.info.run_id,
                                       params={"depth": "3"}, tags={"team": "risk"}, model_type="classifier")
    assert model.model_id.startswith("m-") and len(model.model_id) == 34
    assert (model.name, model.experiment_id, model.source_run_id, model.model_type) == (
        "clf", experiment_id, run.info.run_id, "classifier")
    assert model.status == LoggedModelStatus.PENDING and before <= model.creation_timestamp <= get_current_time_millis()
    assert model.artifact_location == f"mlflow-artifacts:/{experiment_id}/models/{model.model_id}/artifacts"
    assert (model.params, model.tags) == ({"depth": "3"}, {"team": "risk"})
    assert model.model_uri == f"models:/{model.model_id}"

    time.sleep(0.002)
    finalized = client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    assert finalized.status == LoggedModelStatus.READY
    assert finalized.last_updated_timestamp > finalized.creation_timestamp
    client.set_logged_model_tags(model.model_id, {"team": "growth", "stage": "candidate"})
    client.delete_logged_model_tag(model.model_id, "stage")
    client.log_model_params(model.model_id, {"lr": "0.1", "depth": "3"})  # depth again, same value: fine
    fetched = client.get_logged_model(model.model_id)
    assert (fetched.tags, fetched.params) == ({"team": "growth"}, {"depth": "3", "lr": "0.1"})

    with pytest.raises(MlflowException, match="params are immutable") as changed:
        client.log_model_params(model.model_id, {"depth": "4"})
    assert changed.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException, match="No tag with key 'stage'") as no_tag:
        client.delete_logged_model_tag(model.model_id, "stage")
    assert no_tag.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert client.get_logged_model(model.model_id).params == {"depth": "3", "lr": "0.1"}

    rows = sql(mlflow_embedded_server, f"SELECT event_type, entity_key FROM events WHERE entity_key = "
                                       f"'model/{model.model_id}' ORDER BY log_offset")
    assert [r["event_type"] for r in rows] == ["LoggedModelCreated", "LoggedModelFinalized", "LoggedModelTagsSet",
                                               "LoggedModelTagDeleted", "LoggedModelParamsLogged"]
    assert sql(mlflow_embedded_server, "SELECT count(*) AS n FROM dead_letters")[0]["n"] == 0


def test_a_failed_upload_and_a_deleted_model(embedded_client: MlflowClient,
                                             mlflow_embedded_server: RunningServer) -> None:
    client = embedded_client
    experiment_id = client.create_experiment("failures")
    model = client.create_logged_model(experiment_id)
    assert model.name  # MLflow names an unnamed model
    assert client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED).status == LoggedModelStatus.FAILED
    client.delete_logged_model(model.model_id)
    with pytest.raises(MlflowException, match=f"Logged model with ID '{model.model_id}' not found") as gone:
        client.get_logged_model(model.model_id)
    assert gone.value.error_code == "RESOURCE_DOES_NOT_EXIST" and gone.value.get_http_status_code() == 404
    assert client.search_logged_models([experiment_id]) == []
    deleted = rest(mlflow_embedded_server, "GET", f"/logged-models/{model.model_id}", params={"allow_deleted": "true"})
    assert deleted.status_code == 200 and deleted.json()["model"]["info"]["status"] == "LOGGED_MODEL_UPLOAD_FAILED"
    for bad_status in ("LOGGED_MODEL_DONE", 7, ""):
        response = rest(mlflow_embedded_server, "PATCH", f"/logged-models/{model.model_id}",
                        body={"model_id": model.model_id, "status": bad_status})
        assert response.status_code == 400 and response.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_logged_model_errors(embedded_client: MlflowClient, mlflow_embedded_server: RunningServer) -> None:
    client = embedded_client
    with pytest.raises(MlflowException, match="No Experiment with id=404 exists") as no_experiment:
        client.create_logged_model("404")
    assert no_experiment.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    experiment_id = client.create_experiment("gone")
    client.delete_experiment(experiment_id)
    with pytest.raises(MlflowException, match="must be in the 'active' state") as deleted_experiment:
        client.create_logged_model(experiment_id)
    assert deleted_experiment.value.error_code == "INVALID_PARAMETER_VALUE"
    active = client.create_experiment("active")
    for bad_name in ("a/b", "v1.2", "it's"):
        with pytest.raises(MlflowException, match="Invalid model name") as bad:
            client.create_logged_model(active, name=bad_name)
        assert bad.value.error_code == "INVALID_PARAMETER_VALUE"
    for operation in (lambda: client.get_logged_model("m-missing"),
                      lambda: client.finalize_logged_model("m-missing", LoggedModelStatus.READY),
                      lambda: client.set_logged_model_tags("m-missing", {"a": "b"}),
                      lambda: client.log_model_params("m-missing", {"a": "b"}),
                      lambda: client.delete_logged_model("m-missing")):
        with pytest.raises(MlflowException, match="m-missing"):  # the client rewords some of these
            operation()
    for method, path, body in (("GET", "/logged-models/m-missing", None),
                               ("PATCH", "/logged-models/m-missing", {"status": "LOGGED_MODEL_READY"}),
                               ("PATCH", "/logged-models/m-missing/tags", {"tags": [{"key": "a", "value": "b"}]}),
                               ("DELETE", "/logged-models/m-missing/tags/a", None),
                               ("POST", "/logged-models/m-missing/params", {"params": [{"key": "a", "value": "b"}]}),
                               ("DELETE", "/logged-models/m-missing", None)):
        response = rest(mlflow_embedded_server, method, path, body=body)
        assert (response.status_code, response.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST"), path
    assert sql(mlflow_embedded_server, "SELECT count(*) AS n FROM logged_models")[0]["n"] == 0


def test_search_logged_models_filters_orders_and_pages(embedded_client: MlflowClient) -> None:
    client = embedded_client
    first, second = client.create_experiment("one"), client.create_experiment("two")
    models = []
    for n in range(7):
        time.sleep(0.002)
        models.append(client.create_logged_model(first if n < 5 else second, name=f"model{n}",
                                                 params={"fold": str(n % 2)}, tags={"kind": "tree" if n < 3 else "linear"},
                                                 model_type="clf"))
    ids = lambda found: [m.model_id for m in found]  # noqa: E731
    newest_first = [m.model_id for m in reversed(models[:5])]
    assert ids(client.search_logged_models([first])) == newest_first
    assert ids(client.search_logged_models([first, second])) == [m.model_id for m in reversed(models)]
    assert ids(client.search_logged_models([first], filter_string="name = 'model2'")) == [models[2].model_id]
    assert ids(client.search_logged_models([first], filter_string="params.fold = '1' AND tags.kind = 'linear'")) == [
        models[3].model_id]
    assert ids(client.search_logged_models([first], filter_string="name LIKE 'model%' AND tags.kind != 'tree'")) == [
        models[4].model_id, models[3].model_id]
    after = models[2].creation_timestamp
    assert ids(client.search_logged_models([first], filter_string=f"creation_timestamp > {after}")) == [
        models[4].model_id, models[3].model_id]
    assert ids(client.search_logged_models([first], filter_string="status = 'PENDING'")) == newest_first
    assert ids(client.search_logged_models([first], filter_string="metrics.accuracy > 0.5")) == []
    assert ids(client.search_logged_models([first], order_by=[{"field_name": "name", "ascending": True}])) == [
        m.model_id for m in models[:5]]
    pages, token = [], None
    while True:
        page = client.search_logged_models([first], max_results=2, page_token=token)
        pages.append(ids(page))
        token = page.token
        if not token:
            break
    assert [len(p) for p in pages] == [2, 2, 1] and sum(pages, []) == newest_first
    for bad in ("params.fold > '1'", "colour = 'red'", "name = 'a' OR name = 'b'"):
        with pytest.raises(MlflowException) as refused:
            client.search_logged_models([first], filter_string=bad)
        assert refused.value.error_code == "INVALID_PARAMETER_VALUE", bad
    with pytest.raises(MlflowException, match="Only metrics are supported"):
        client.search_logged_models([first], order_by=[{"field_name": "params.fold"}])


def test_run_outputs_link_a_run_to_its_models(embedded_client: MlflowClient,
                                              mlflow_embedded_server: RunningServer) -> None:
    client = embedded_client
    experiment_id = client.create_experiment("outputs")
    run = client.create_run(experiment_id)
    model = client.create_logged_model(experiment_id, name="m", source_run_id=run.info.run_id)
    client.log_outputs(run.info.run_id, [LoggedModelOutput(model.model_id, step=7)])
    assert sql(mlflow_embedded_server, "SELECT run_id, model_id, step FROM run_outputs") == [
        {"run_id": run.info.run_id, "model_id": model.model_id, "step": 7}]
    edges = sql(mlflow_embedded_server, "SELECT source_type, source_id, target_type, target_id, relation FROM lineage "
                                        "WHERE target_type = 'logged_model' ORDER BY relation")
    assert [(e["source_id"], e["target_id"], e["relation"]) for e in edges] == [
        (run.info.run_id, model.model_id, "output"), (run.info.run_id, model.model_id, "produced")]
    with pytest.raises(MlflowException, match="Run with id=0123 not found") as missing:
        client.log_outputs("0123", [LoggedModelOutput(model.model_id, step=0)])
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    client.delete_run(run.info.run_id)
    with pytest.raises(MlflowException, match="must be in the 'active' state") as deleted:
        client.log_outputs(run.info.run_id, [LoggedModelOutput(model.model_id, step=1)])
    assert deleted.value.error_code == "INVALID_PARAMETER_VALUE"


def test_registering_a_logged_model_links_the_version_to_it(mlflow_client: MlflowClient,
                                                            mlflow_server: RunningServer) -> None:
    """Embedded and Kafka: the version's files are the logged model's, and lineage joins them."""
    client = mlflow_client
    experiment_id = client.create_experiment("register")
    run = client.create_run(experiment_id)
    model = client.create_logged_model(experiment_id, name="m", source_run_id=run.info.run_id)
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    client.create_registered_model("reg")
    version = client.create_model_version("reg", f"models:/{model.model_id}", model_id=model.model_id)
    assert (version.source, version.run_id) == (f"models:/{model.model_id}", run.info.run_id)
    assert client.get_model_version_download_uri("reg", version.version) == model.artifact_location
    assert client.get_logged_model(model.model_id).tags == {"mlflow.modelVersions": '[{"name": "reg", "version": 1}]'}
    with pytest.raises(MlflowException, match="Invalid model version source"):
        client.create_model_version("reg", "models:/m-00000000000000000000000000000000",
                                    model_id="m-00000000000000000000000000000000")
    with pytest.raises(MlflowException, match="Invalid model version source"):
        client.create_model_version("reg", f"models:/{model.model_id}", model_id="m-other")
    edges = sql(mlflow_server, "SELECT source_type, target_type, target_id, relation FROM lineage "
                               "WHERE target_type = 'model_version' ORDER BY relation")
    assert [(e["source_type"], e["target_id"], e["relation"]) for e in edges] == [
        ("run", "reg/1", "produced"), ("logged_model", "reg/1", "registered_as")]
    assert sql(mlflow_server, "SELECT model_id FROM model_versions") == [{"model_id": model.model_id}]
    assert sql(mlflow_server, "SELECT count(*) AS n FROM dead_letters")[0]["n"] == 0
