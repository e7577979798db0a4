"""Metrics of MLflow 3 logged models through the unmodified client: in get_logged_model, and in search filters,
dataset scopes and orders (MLflow's rules: any point matches a filter, the latest point orders)."""

from __future__ import annotations

import mlflow
import mlflow.pyfunc
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from tests.api.mlflow.tracking_support import rest, sql
from tests.api.serving import RunningServer

T = 1_700_000_000_000


def _points(metrics: list[Metric] | None) -> list[tuple[object, ...]]:
    return sorted((m.key, m.value, m.timestamp, m.step, m.run_id, m.model_id, m.dataset_name, m.dataset_digest)
                  for m in metrics or [])


def test_metrics_logged_with_a_model_id_belong_to_the_model(mlflow_client: MlflowClient,
                                                            mlflow_server: RunningServer) -> None:
    """Embedded and Kafka: the model's events are keyed by model, its run's by run; both land."""
    client = mlflow_client
    experiment_id = client.create_experiment("model-metrics")
    run_id = client.create_run(experiment_id).info.run_id
    a, b, c, d = (client.create_logged_model(experiment_id, name=name, source_run_id=run_id).model_id
                  for name in "abcd")
    client.log_batch(run_id, metrics=[
        Metric("acc", 0.91, T, 1, model_id=a, dataset_name="eval", dataset_digest="d1"),
        Metric("acc", 0.80, T + 5, 2, model_id=a, dataset_name="train", dataset_digest="d2"),
        Metric("acc", 0.85, T, 1, model_id=b, dataset_name="eval", dataset_digest="d1"),
        Metric("loss", 0.2, T, 1, model_id=b),
    ])
    client.log_batch(run_id, metrics=[Metric("acc", 0.91, T, 1, model_id=a, dataset_name="eval",
                                             dataset_digest="d1")])  # the same point again: held once
    mlflow.log_metric("acc", 0.5, step=0, timestamp=T, run_id=run_id, model_id=c)

    assert _points(client.get_logged_model(a).metrics) == [
        ("acc", 0.80, T + 5, 2, run_id, a, "train", "d2"), ("acc", 0.91, T, 1, run_id, a, "eval", "d1")]
    assert _points(client.get_logged_model(b).metrics) == [
        ("acc", 0.85, T, 1, run_id, b, "eval", "d1"), ("loss", 0.2, T, 1, run_id, b, None, None)]
    assert _points(client.get_logged_model(c).metrics) == [("acc", 0.5, T, 0, run_id, c, None, None)]
    assert client.get_logged_model(d).metrics in (None, [])
    # proto JSON: a point without a dataset carries no dataset fields
    assert rest(mlflow_server, "GET", f"/logged-models/{c}").json()["model"]["data"]["metrics"] == [
        {"key": "acc", "value": 0.5, "timestamp": T, "step": 0, "run_id": run_id, "model_id": c}]
    # the run has the points too, as MLflow: its latest acc is the highest step's
    assert client.get_run(run_id).data.metrics == {"acc": 0.80, "loss": 0.2}

    def ids(**search: object) -> list[str]:
        return [m.model_id for m in client.search_logged_models([experiment_id], **search)]

    assert ids() == [d, c, b, a]  # newest first
    assert ids(filter_string="metrics.acc > 0.84") == [b, a]  # a matches with its eval point
    assert ids(filter_string="metrics.acc < 0.84") == [c, a]  # ... and with its train point
    assert ids(filter_string="metrics.acc > 0.84", datasets=[{"dataset_name": "train"}]) == []
    assert ids(filter_string="metrics.acc > 0.84", datasets=[{"dataset_name": "eval", "dataset_digest": "d1"}]) == [
        b, a]
    assert ids(filter_string="metrics.acc > 0.84", datasets=[{"dataset_name": "eval", "dataset_digest": "d9"}]) == []
    assert ids(datasets=[{"dataset_name": "train"}]) == [a]  # a scope alone: models with a point on it
    assert ids(datasets=[{"dataset_name": "train"}, {"dataset_name": "eval"}]) == [b, a]
    assert ids(filter_string="metrics.loss <= 0.2 AND name = 'b'") == [b]
    assert ids(filter_string="metrics.acc != 0.5") == [b, a]
    assert ids(filter_string="metrics.absent > 0") == []

    # by the latest point (a: 0.80 at the newest timestamp), models without the metric last
    assert ids(order_by=[{"field_name": "metrics.acc", "ascending": True}]) == [c, a, b, d]
    assert ids(order_by=[{"field_name": "metrics.acc", "ascending": False}]) == [b, a, c, d]
    assert ids(order_by=[{"field_name": "metrics.acc", "ascending": False, "dataset_name": "eval"}]) == [a, b, d, c]
    assert ids(order_by=[{"field_name": "metrics.acc", "ascending": True, "dataset_name": "eval",
                          "dataset_digest": "d1"}]) == [b, a, d, c]
    first = client.search_logged_models([experiment_id], order_by=[{"field_name": "metrics.acc"}], max_results=2)
    assert [m.model_id for m in first] == [c, a] and first.token
    second = client.search_logged_models([experiment_id], order_by=[{"field_name": "metrics.acc"}], max_results=2,
                                         page_token=first.token)
    assert [m.model_id for m in second] == [b, d] and not second.token

    with pytest.raises(MlflowException) as refused:
        client.search_logged_models([experiment_id], filter_string="metrics.acc LIKE '0.5'")
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    nameless = rest(mlflow_server, "POST", "/logged-models/search",
                    body={"experiment_ids": [experiment_id], "datasets": [{"dataset_digest": "d1"}]})
    assert nameless.status_code == 400
    assert (nameless.json()["error_code"], nameless.json()["message"]) == (
        "INVALID_PARAMETER_VALUE", "`dataset_name` in the `datasets` clause must be specified.")
    assert sql(mlflow_server, "SELECT count(*) AS n FROM logged_model_metrics WHERE model_id = "
                              f"'{a}'")[0]["n"] == 3  # every logged point is kept; reads take each once
    assert sql(mlflow_server, "SELECT count(*) AS n FROM dead_letters")[0]["n"] == 0


def test_nan_model_metrics_match_only_not_equal_and_sort_after_numbers(embedded_client: MlflowClient) -> None:
    client = embedded_client
    experiment_id = client.create_experiment("nan-metrics")
    run_id = client.create_run(experiment_id).info.run_id
    number, nan = (client.create_logged_model(experiment_id, name=name).model_id for name in ("number", "nan"))
    client.log_batch(run_id, metrics=[Metric("score", 1.0, T, 0, model_id=number),
                                      Metric("score", float("nan"), T, 0, model_id=nan)])
    [point] = client.get_logged_model(nan).metrics
    assert point.value != point.value  # NaN comes back as NaN

    def ids(**search: object) -> list[str]:
        return [m.model_id for m in client.search_logged_models([experiment_id], **search)]

    assert ids(filter_string="metrics.score > 0") == [number]
    assert ids(filter_string="metrics.score < 2") == [number]
    assert ids(filter_string="metrics.score != 1") == [nan]
    for ascending in (True, False):
        assert ids(order_by=[{"field_name": "metrics.score", "ascending": ascending}]) == [number, nan]


class Constant(mlflow.pyfunc.PythonModel):
    """The smallest model worth logging: always answers 1."""

    def predict(self, context, model_input: pd.DataFrame, params=None) -> list[int]:  # noqa: ANN001
        return [1] * len(model_input)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")
def test_log_model_links_the_runs_metrics_and_later_ones(mlflow_embedded_server: RunningServer) -> None:
    """mlflow.<flavor>.log_model re-logs the run's metrics of its step for the new model, and makes it the
    active model: metrics logged afterwards in the run carry its id. Both show on the model and in search."""
    client = MlflowClient(mlflow_embedded_server.url)
    experiment = mlflow.set_experiment("linked")
    with mlflow.start_run() as run:
        mlflow.log_metric("rmse", 0.4, step=0)
        mlflow.log_metric("rmse", 0.3, step=1)  # another step: not the model's
        info = mlflow.pyfunc.log_model(name="model", python_model=Constant(), step=0)
        mlflow.log_metric("r2", 0.77, step=0)
    model = client.get_logged_model(info.model_id)
    assert [(m.key, m.value, m.step, m.run_id) for m in sorted(model.metrics, key=lambda m: m.key)] == [
        ("r2", 0.77, 0, run.info.run_id), ("rmse", 0.4, 0, run.info.run_id)]
    assert all(m.model_id == info.model_id for m in model.metrics)
    found = client.search_logged_models([experiment.experiment_id], filter_string="metrics.r2 > 0.7")
    assert [m.model_id for m in found] == [info.model_id]
    assert _points(found[0].metrics) == _points(model.metrics)
    assert client.search_logged_models([experiment.experiment_id], filter_string="metrics.rmse < 0.35") == []
