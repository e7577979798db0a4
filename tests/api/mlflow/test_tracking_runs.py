"""MLflow runs through the unmodified client: lifecycle, metrics, params, tags, inputs, errors, events."""

from __future__ import annotations

import math
import time

import mlflow
import mlflow.data
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag, ViewType
from mlflow.entities.logged_model_input import LoggedModelInput
from mlflow.exceptions import MlflowException

from tests.api.mlflow.tracking_support import event_types, rest, sql
from tests.api.serving import RunningServer


def test_run_lifecycle(mlflow_client: MlflowClient, mlflow_server: RunningServer) -> None:
    experiment_id = mlflow_client.create_experiment("lifecycle")
    created = mlflow_client.create_run(experiment_id, start_time=456, run_name="my name",
                                       tags={"mlflow.user": "ana", "mlflow.parentRunId": "7", "my": "tag"})
    run_id = created.info.run_id
    for run in (created, mlflow_client.get_run(run_id)):
        assert (run.info.run_id, run.info.experiment_id) == (run_id, experiment_id)
        assert (run.info.run_name, run.info.user_id, run.info.start_time) == ("my name", "ana", 456)
        assert (run.info.status, run.info.end_time, run.info.lifecycle_stage) == ("RUNNING", None, "active")
        assert run.info.artifact_uri == f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"
        assert run.data.tags == {"mlflow.user": "ana", "mlflow.parentRunId": "7", "my": "tag",
                                 "mlflow.runName": "my name"}
    mlflow_client.set_terminated(run_id, "FAILED")
    failed = mlflow_client.get_run(run_id).info
    assert failed.status == "FAILED" and 0 < failed.end_time <= time.time() * 1000 + 1
    mlflow_client.update_run(run_id, name="renamed")  # a new name keeps the status
    renamed = mlflow_client.get_run(run_id)
    assert (renamed.info.run_name, renamed.info.status) == ("renamed", "FAILED")
    assert renamed.data.tags["mlflow.runName"] == "renamed"
    unnamed = mlflow_client.create_run(experiment_id)
    assert unnamed.info.run_name and unnamed.data.tags["mlflow.runName"] == unnamed.info.run_name
    assert event_types(mlflow_server, "run_id", run_id) == [
        "RunStarted", "RunStatusChanged", "RunRenamed", "RunTagsSet"]


def test_fluent_run_with_steps_metrics_params_tags_and_nesting(mlflow_server: RunningServer) -> None:
    mlflow.set_experiment("training")
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_params({"lr": 0.01, "optimizer": "adam"})
        for step in range(20):
            mlflow.log_metric("loss", 1 / (step + 1), step=step)
        mlflow.log_metrics({"accuracy": 0.9, "f1": 0.8}, step=3)
        mlflow.set_tags({"team": "vision", "data": "v2"})
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("val_loss", 0.3)
    client = MlflowClient()
    run = client.get_run(parent.info.run_id)
    assert run.info.status == "FINISHED" and run.info.end_time >= run.info.start_time
    assert run.data.params == {"lr": "0.01", "optimizer": "adam"}
    assert run.data.metrics == {"loss": 1 / 20, "accuracy": 0.9, "f1": 0.8}
    assert {"team": "vision", "data": "v2", "mlflow.runName": "parent"}.items() <= run.data.tags.items()
    history = client.get_metric_history(parent.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(step, 1 / (step + 1)) for step in range(20)]
    assert client.get_run(child.info.run_id).data.tags["mlflow.parentRunId"] == parent.info.run_id
    children = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert list(children["run_id"]) == [child.info.run_id]
    assert sql(mlflow_server, f"SELECT parent_run_id FROM runs WHERE run_id = '{child.info.run_id}'") == [
        {"parent_run_id": parent.info.run_id}]
    points = sql(mlflow_server, f"SELECT count(*) AS n, max(step) AS last FROM metrics "
                                f"WHERE run_id = '{parent.info.run_id}' AND key = 'loss'")
    assert points == [{"n": 20, "last": 19}]


def test_latest_metric_rule_special_values_and_duplicates(embedded_client: MlflowClient) -> None:
    client = embedded_client
    run_id = client.create_run("0").info.run_id
    for value, timestamp, step in ((5.0, 10, 2), (7.0, 5, 3), (6.0, 9, 3), (4.0, 5, 3), (9.0, 99, 1)):
        client.log_metric(run_id, "m", value, timestamp=timestamp, step=step)
    # MLflow's rule: highest step, then latest timestamp, then highest value
    assert client.get_run(run_id).data.metrics["m"] == 6.0
    client.log_metric(run_id, "nan", float("nan"))
    client.log_metric(run_id, "inf", float("inf"))
    client.log_metric(run_id, "-inf", -float("inf"))
    client.log_metric(run_id, "stepless", 987.654, timestamp=321)
    client.log_metric(run_id, "stepless", 987.654, timestamp=321)  # the same point again: stored once, as MLflow
    metrics = client.get_run(run_id).data.metrics
    assert math.isnan(metrics["nan"]) and metrics["inf"] == math.inf and metrics["-inf"] == -math.inf
    [point] = client.get_metric_history(run_id, "stepless")
    assert (point.key, point.value, point.timestamp, point.step) == ("stepless", 987.654, 321, 0)
    assert client.get_metric_history(run_id, "never-logged") == []
    assert [(m.timestamp, m.step, m.value) for m in client.get_metric_history(run_id, "m")] == [
        (5, 3, 4.0), (5, 3, 7.0), (9, 3, 6.0), (10, 2, 5.0), (99, 1, 9.0)]  # by timestamp, step, value


def test_metric_history_pages(embedded_client: MlflowClient, mlflow_embedded_server: RunningServer) -> None:
    run_id = embedded_client.create_run("0").info.run_id
    embedded_client.log_batch(run_id, metrics=[Metric("m", float(i), 1000 + i, i) for i in range(5)])
    query = {"run_id": run_id, "metric_key": "m", "max_results": 2}
    first = rest(mlflow_embedded_server, "GET", "/metrics/get-history", params=query).json()
    assert [m["step"] for m in first["metrics"]] == [0, 1] and first["next_page_token"]
    second = rest(mlflow_embedded_server, "GET", "/metrics/get-history",
                  params={**query, "max_results": 10, "page_token": first["next_page_token"]}).json()
    assert [m["step"] for m in second["metrics"]] == [2, 3, 4] and "next_page_token" not in second
    refused = rest(mlflow_embedded_server, "GET", "/metrics/get-history", params={**query, "max_results": 0})
    assert refused.status_code == 400 and "It must be a positive integer" in refused.json()["message"]


def test_metric_history_text_is_json_for_every_value(embedded_client: MlflowClient,
                                                     mlflow_embedded_server: RunningServer) -> None:
    """get-history formats its points as text: non-finite values, tiny, huge and negative zero, an odd key."""
    run_id = embedded_client.create_run("0").info.run_id
    key = "odd key é/v-1.0"  # MLflow's key rule allows letters, spaces, slashes, dots and dashes
    values = [math.nan, math.inf, -math.inf, 5e-324, 1.7976931348623157e308, -0.0, 0.1, 1e16]
    embedded_client.log_batch(run_id, metrics=[Metric(key, v, 100 + i, i) for i, v in enumerate(values)])
    response = rest(mlflow_embedded_server, "GET", "/metrics/get-history", params={"run_id": run_id, "metric_key": key})
    assert response.status_code == 200, response.text
    shown = response.json()["metrics"]
    assert [m["value"] for m in shown[:3]] == ["NaN", "Infinity", "-Infinity"]
    assert [m["value"] for m in shown[3:]] == values[3:] and math.copysign(1, shown[5]["value"]) == -1
    assert {m["key"] for m in shown} == {key} and [m["step"] for m in shown] == list(range(len(values)))
    history = embedded_client.get_metric_history(run_id, key)
    assert math.isnan(history[0].value) and [m.value for m in history[1:]] == values[1:]


def test_log_batch_and_its_limits(embedded_client: MlflowClient, mlflow_embedded_server: RunningServer) -> None:
    client = embedded_client
    run_id = client.create_run("0").info.run_id
    client.log_batch(run_id, metrics=[Metric("m", 123.456, 789, 3)], params=[Param("p", "v"), Param("empty", "")],
                     tags=[RunTag("t", "do-dah"), RunTag("mlflow.runName", "from-batch")])
    run = client.get_run(run_id)
    assert run.data.metrics == {"m": 123.456} and run.data.params == {"p": "v", "empty": ""}
    assert run.data.tags["t"] == "do-dah" and run.info.run_name == "from-batch"
    [point] = client.get_metric_history(run_id, "m")
    assert (point.timestamp, point.step) == (789, 3)

    too_many = [{"key": f"k{i}", "value": float(i), "timestamp": 1, "step": 0} for i in range(1001)]
    response = rest(mlflow_embedded_server, "POST", "/runs/log-batch", {"run_id": run_id, "metrics": too_many})
    assert response.status_code == 400 and response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "at most 1000 metrics. Got 1001 metrics" in response.json()["message"]
    mixed = {"run_id": run_id, "metrics": too_many[:950], "params": [{"key": f"p{i}", "value": "x"} for i in range(51)]}
    response = rest(mlflow_embedded_server, "POST", "/runs/log-batch", mixed)
    assert response.status_code == 400 and "at most 1000 metrics, params, and tags" in response.json()["message"]
    response = rest(mlflow_embedded_server, "POST", "/runs/log-batch",
                    {"run_id": run_id, "params": [{"key": f"p{i}", "value": "x"} for i in range(101)]})
    assert response.status_code == 400 and "at most 100 params" in response.json()["message"]
    assert client.get_run(run_id).data.metrics == {"m": 123.456}  # nothing of the refused batches was stored

    for field in ("metrics", "params", "tags"):
        response = rest(mlflow_embedded_server, "POST", "/runs/log-batch", {"run_id": run_id, field: "foo"})
        assert response.status_code == 400
        assert f"Invalid value \"foo\" for parameter '{field}'" in response.json()["message"]
    response = rest(mlflow_embedded_server, "POST", "/runs/log-batch",
                    {"run_id": run_id, "metrics": [{"key": "mae", "value": 2.5}]})
    assert response.status_code == 400 and "metrics[0].timestamp" in response.json()["message"]
    response = rest(mlflow_embedded_server, "POST", "/runs/log-batch",
                    {"run_id": run_id, "metrics": [{"key": "mae", "value": 2.5, "timestamp": 123456789}]})
    assert response.status_code == 200  # a step is optional
    response = rest(mlflow_embedded_server, "POST", "/runs/log-batch",
                    {"run_id": run_id, "metrics": [{"key": "../up", "value": 1, "timestamp": 1}]})
    assert response.status_code == 400 and "metrics[0].name" in response.json()["message"]


def test_params_are_immutable(embedded_client: MlflowClient) -> None:
    client = embedded_client
    run_id = client.create_run("0").info.run_id
    client.log_param(run_id, "depth", 3)
    client.log_param(run_id, "depth", 3)  # the same value again is fine
    with pytest.raises(MlflowException, match="Changing param values is not allowed") as error:
        client.log_param(run_id, "depth", 5)
    assert error.value.error_code == "INVALID_PARAMETER_VALUE" and error.value.get_http_status_code() == 400
    with pytest.raises(MlflowException, match="Changing param values is not allowed"):
        client.log_batch(run_id, params=[Param("depth", "4"), Param("width", "8")])
    with pytest.raises(MlflowException, match="Duplicate parameter keys have been submitted"):
        client.log_batch(run_id, params=[Param("a", "1"), Param("a", "2")])
    assert client.get_run(run_id).data.params == {"depth": "3"}  # the refused batches stored nothing
    long_value = "x" * 7000
    client.log_param(run_id, "long", long_value)  # MLflow's server truncates over-long values
    assert client.get_run(run_id).data.params["long"] == long_value[:6000]


def test_tags_set_and_delete(embedded_client: MlflowClient, mlflow_embedded_server: RunningServer) -> None:
    client = embedded_client
    run_id = client.create_run("0", run_name="before").info.run_id
    client.set_tag(run_id, "taggity", "do-dah")
    client.set_tag(run_id, "empty", "")
    client.set_tag(run_id, "mlflow.runName", "after")  # renames the run, as in MLflow
    run = client.get_run(run_id)
    assert run.info.run_name == "after"
    assert {"taggity": "do-dah", "empty": "", "mlflow.runName": "after"}.items() <= run.data.tags.items()
    client.delete_tag(run_id, "taggity")
    assert "taggity" not in client.get_run(run_id).data.tags
    with pytest.raises(MlflowException, match="No tag with name: fakeTag") as error:
        client.delete_tag(run_id, "fakeTag")
    assert error.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException, match=r"Run .+ not found"):
        client.delete_tag("fake_run_id", "taggity")
    assert mlflow.search_runs(["0"], filter_string="attributes.run_name = 'after'")["run_id"].tolist() == [run_id]
    response = rest(mlflow_embedded_server, "POST", "/runs/set-tag", {"run_uuid": run_id, "key": "k", "value": "v"})
    assert response.status_code == 200  # older clients send run_uuid


def test_dataset_inputs(mlflow_server: RunningServer) -> None:
    frame = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 0.25, 0.125]})
    dataset = mlflow.data.from_pandas(frame, source="s3://bucket/train.parquet", name="train")
    array = mlflow.data.from_numpy(np.arange(12).reshape(4, 3), source="/data/eval.npy", name="eval")
    with mlflow.start_run() as run:
        mlflow.log_input(dataset, context="training", tags={"foo": "baz"})
        mlflow.log_input(dataset, context="training")  # the same dataset again: still one input
        mlflow.log_input(array, context="evaluation")
    inputs = MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs
    by_name = {i.dataset.name: i for i in inputs}
    assert sorted(by_name) == ["eval", "train"]
    train = by_name["train"]
    assert (train.dataset.digest, train.dataset.source_type) == (dataset.digest, "s3")
    assert train.dataset.schema and train.dataset.profile and "num_rows" in train.dataset.profile
    assert {t.key: t.value for t in train.tags} == {"foo": "baz", "mlflow.data.context": "training"}
    found = mlflow.search_runs(filter_string="datasets.name = 'eval' AND datasets.context = 'evaluation'")
    assert found["run_id"].tolist() == [run.info.run_id]
    assert mlflow.search_runs(filter_string="datasets.digest = 'nope'").empty
    assert event_types(mlflow_server, "run_id", run.info.run_id).count("DatasetInputLogged") == 2


def test_log_inputs_validation(embedded_client: MlflowClient, mlflow_embedded_server: RunningServer) -> None:
    run_id = embedded_client.create_run("0").info.run_id
    embedded_client.log_inputs(run_id, [DatasetInput(Dataset("name1", "digest1", "source_type1", "source1"),
                                                     [InputTag("tag1", "value1")])])
    [logged] = embedded_client.get_run(run_id).inputs.dataset_inputs
    assert (logged.dataset.name, logged.dataset.source, logged.tags[0].key) == ("name1", "source1", "tag1")
    dataset = {"name": "n", "digest": "d" * 37, "source_type": "local", "source": "{}"}
    response = rest(mlflow_embedded_server, "POST", "/runs/log-inputs",
                    {"run_id": run_id, "datasets": [{"dataset": dataset}]})
    assert response.status_code == 400 and "'digest' exceeds the maximum length of 36" in response.text
    response = rest(mlflow_embedded_server, "POST", "/runs/log-inputs", {"datasets": []})
    assert response.status_code == 400 and "Missing value for required parameter 'run_id'" in response.text


def test_delete_and_restore_run(mlflow_client: MlflowClient) -> None:
    experiment_id = mlflow_client.create_experiment("deletions")
    run_id = mlflow_client.create_run(experiment_id).info.run_id
    mlflow_client.log_metric(run_id, "m", 1.0)
    mlflow_client.delete_run(run_id)
    deleted = mlflow_client.get_run(run_id)  # still readable by id, as in MLflow
    assert deleted.info.lifecycle_stage == "deleted" and deleted.data.metrics == {"m": 1.0}
    assert mlflow_client.search_runs([experiment_id]) == []
    assert [r.info.run_id for r in mlflow_client.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY)] \
        == [run_id]
    assert len(mlflow_client.search_runs([experiment_id], run_view_type=ViewType.ALL)) == 1
    mlflow_client.delete_run(run_id)  # deleting again is not an error
    for write in (lambda: mlflow_client.log_metric(run_id, "m", 2.0), lambda: mlflow_client.log_param(run_id, "p", 1),
                  lambda: mlflow_client.set_tag(run_id, "t", "v"), lambda: mlflow_client.set_terminated(run_id)):
        with pytest.raises(MlflowException, match=f"The run {run_id} must be in the 'active' state") as error:
            write()
        assert error.value.error_code == "INVALID_PARAMETER_VALUE"
    mlflow_client.restore_run(run_id)
    assert mlflow_client.get_run(run_id).info.lifecycle_stage == "active"
    mlflow_client.log_metric(run_id, "m", 2.0, step=1)
    assert mlflow_client.get_run(run_id).data.metrics == {"m": 2.0}


def test_unknown_runs_raise_what_mlflow_raises(embedded_client: MlflowClient,
                                               mlflow_embedded_server: RunningServer) -> None:
    missing = "0" * 32
    client = embedded_client
    for call in (lambda: client.get_run(missing), lambda: client.log_metric(missing, "m", 1.0),
                 lambda: client.log_param(missing, "p", "v"), lambda: client.set_tag(missing, "t", "v"),
                 lambda: client.log_batch(missing, metrics=[Metric("m", 1.0, 1, 0)]),
                 lambda: client.delete_run(missing), lambda: client.set_terminated(missing)):
        with pytest.raises(MlflowException, match=f"Run with id={missing} not found") as error:
            call()
        assert error.value.error_code == "RESOURCE_DOES_NOT_EXIST" and error.value.get_http_status_code() == 404
    with pytest.raises(MlflowException, match="No Experiment with id=nope exists"):
        embedded_client.create_run("nope")
    assert sql(mlflow_embedded_server, "SELECT count(*) AS n FROM runs") == [{"n": 0}]


@pytest.mark.parametrize(("path", "body", "message"), [
    ("/runs/log-metric", {"run_id": 31, "key": "m", "value": 41, "timestamp": 59},
     "Invalid value 31 for parameter 'run_id'"),
    ("/runs/log-metric", {"run_id": "RUN", "key": 31, "value": 41, "timestamp": 59},
     "Invalid value 31 for parameter 'key'"),
    ("/runs/log-metric", {"run_id": "RUN", "key": "m", "value": 31, "timestamp": 59, "step": "foo"},
     "Invalid value \"foo\" for parameter 'step'"),
    ("/runs/log-metric", {"run_id": "RUN", "key": "m", "value": 31, "timestamp": "foo"},
     "Invalid value \"foo\" for parameter 'timestamp'"),
    ("/runs/log-metric", {"run_id": None, "key": "m", "value": 31, "timestamp": 59},
     "Missing value for required parameter 'run_id'"),
    ("/runs/log-metric", {"run_id": "RUN", "value": 31, "timestamp": 59}, "Missing value for required parameter 'key'"),
    ("/runs/log-metric", {"run_id": "RUN", "key": "m", "value": "high", "timestamp": 59},
     "Invalid value \"high\" for parameter 'value'"),
    ("/runs/log-parameter", {"run_id": 31, "key": "p", "value": "v"}, "Invalid value 31 for parameter 'run_id'"),
    ("/runs/log-parameter", {"run_id": "RUN", "key": "p" * 251, "value": "v"},
     "'Param key' exceeds the maximum length of 250 characters"),
    ("/runs/set-tag", {"run_id": "RUN", "key": "t", "value": 41}, "Invalid value 41 for parameter 'value'"),
    ("/runs/set-tag", {"run_id": "RUN", "value": "v"}, "Missing value for required parameter 'key'"),
    ("/runs/set-tag", {"run_id": "RUN", "key": "bad/../key", "value": "v"}, "Invalid value \"bad/../key\""),
])
def test_request_validation_matches_mlflow(embedded_client: MlflowClient, mlflow_embedded_server: RunningServer,
                                           path: str, body: dict, message: str) -> None:
    run_id = embedded_client.create_run("0").info.run_id
    body = {key: (run_id if value == "RUN" else value) for key, value in body.items()}
    response = rest(mlflow_embedded_server, "POST", path, body)
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert message in response.json()["message"]
    run = embedded_client.get_run(run_id)
    assert not run.data.metrics and not run.data.params and set(run.data.tags) == {"mlflow.runName"}


def test_logged_models_as_run_inputs(embedded_client: MlflowClient, mlflow_embedded_server: RunningServer) -> None:
    experiment_id = embedded_client.create_experiment("model inputs")
    run_id = embedded_client.create_run(experiment_id).info.run_id
    model = embedded_client.create_logged_model(experiment_id=experiment_id)
    dataset = DatasetInput(Dataset("name1", "digest1", "local", "src"), [InputTag("mlflow.data.context", "training")])
    embedded_client.log_inputs(run_id, models=[LoggedModelInput(model_id=model.model_id)], datasets=[dataset])
    embedded_client.log_inputs(run_id, models=[LoggedModelInput(model_id=model.model_id)])  # again: still one
    inputs = embedded_client.get_run(run_id).inputs
    assert [m.model_id for m in inputs.model_inputs] == [model.model_id]
    assert [d.dataset.name for d in inputs.dataset_inputs] == ["name1"]
    assert event_types(mlflow_embedded_server, "run_id", run_id).count("RunModelInputsLogged") == 1
    assert sql(mlflow_embedded_server, f"SELECT source_id, relation FROM lineage WHERE target_id = '{run_id}' "
                                       f"AND source_type = 'logged_model'") == [
        {"source_id": model.model_id, "relation": "input"}]


def test_metrics_of_a_logged_model_are_recorded_for_it(embedded_client: MlflowClient,
                                                       mlflow_embedded_server: RunningServer) -> None:
    experiment_id = embedded_client.create_experiment("model metrics")
    run_id = embedded_client.create_run(experiment_id).info.run_id
    model = embedded_client.create_logged_model(experiment_id=experiment_id)
    embedded_client.log_metric(run_id, "metric", 0.5, timestamp=123456789, step=1, dataset_name="name",
                               dataset_digest="digest", model_id=model.model_id)
    embedded_client.log_batch(run_id, metrics=[Metric("batch", 2.0, 5, 2, model_id=model.model_id),
                                               Metric("plain", 1.0, 5, 0)])
    assert embedded_client.get_run(run_id).data.metrics == {"metric": 0.5, "batch": 2.0, "plain": 1.0}
    rows = sql(mlflow_embedded_server, "SELECT key, value, timestamp, step, run_id, dataset_name, dataset_digest "
                                       f"FROM logged_model_metrics WHERE model_id = '{model.model_id}' ORDER BY key")
    assert rows == [{"key": "batch", "value": 2.0, "timestamp": 5, "step": 2, "run_id": run_id, "dataset_name": None,
                     "dataset_digest": None},
                    {"key": "metric", "value": 0.5, "timestamp": 123456789, "step": 1, "run_id": run_id,
                     "dataset_name": "name", "dataset_digest": "digest"}]
