"""Run search and metric histories through the unmodified client: filters, order, pages, view types, samples."""

from __future__ import annotations

import httpx
import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException

from tests.api.mlflow.tracking_support import rest
from tests.api.serving import RunningServer


@pytest.fixture
def zoo(embedded_client: MlflowClient) -> tuple[str, dict[str, str]]:
    """An experiment with four runs of known params, metrics, tags, names and start times."""
    experiment_id = embedded_client.create_experiment("zoo")
    runs = {}
    zoo_runs = (("rf-small", "rf", 0.9, "alpha"), ("rf-large", "rf", 0.7, "beta"), ("xgb", "xgb", 0.8, "alpha"),
                ("lin", "linear", None, "Beta"))
    for index, (name, model, rmse, team) in enumerate(zoo_runs):
        run = embedded_client.create_run(experiment_id, start_time=1000 + index, run_name=name)
        metrics = [Metric("rmse", rmse, 1, 0)] if rmse is not None else []
        embedded_client.log_batch(run.info.run_id, metrics=metrics, params=[Param("model", model)],
                                  tags=[RunTag("team", team)])
        runs[name] = run.info.run_id
    embedded_client.set_terminated(runs["xgb"], "FAILED")
    return experiment_id, runs


def test_search_runs_dataframe_filter_and_order(zoo: tuple[str, dict[str, str]]) -> None:
    experiment_id, runs = zoo
    frame = mlflow.search_runs([experiment_id], filter_string="metrics.rmse < 0.85 AND params.model != 'linear'",
                               order_by=["metrics.rmse ASC"])
    assert frame["tags.mlflow.runName"].tolist() == ["rf-large", "xgb"]
    assert frame["metrics.rmse"].tolist() == [0.7, 0.8]
    assert frame["params.model"].tolist() == ["rf", "xgb"]
    assert {"run_id", "experiment_id", "status", "start_time", "end_time", "artifact_uri", "tags.team"} <= set(frame)


@pytest.mark.parametrize(("filter_string", "expected"), [
    ("params.model = 'rf'", {"rf-small", "rf-large"}),
    ("params.model LIKE 'r%'", {"rf-small", "rf-large"}),
    ("params.model ILIKE 'LIN%'", {"lin"}),
    ("tags.team = 'beta'", {"rf-large"}),
    ("tags.team ILIKE 'beta'", {"rf-large", "lin"}),
    ("metrics.rmse >= 0.8", {"rf-small", "xgb"}),
    ("metrics.rmse != 0.8", {"rf-small", "rf-large"}),
    ("attributes.status = 'FAILED'", {"xgb"}),
    ("attributes.run_name IN ('xgb', 'lin')", {"xgb", "lin"}),
    ("attributes.run_name NOT IN ('xgb', 'lin')", {"rf-small", "rf-large"}),
    ("run_name LIKE 'rf-%'", {"rf-small", "rf-large"}),
    ("attributes.start_time > 1001", {"xgb", "lin"}),
    ("tags.`mlflow.runName` = 'lin'", {"lin"}),
    ("tags.team IS NULL", set()),
    ("params.absent IS NULL", {"rf-small", "rf-large", "xgb", "lin"}),
])
def test_filter_syntax(embedded_client: MlflowClient, zoo: tuple[str, dict[str, str]], filter_string: str,
                       expected: set[str]) -> None:
    experiment_id, _ = zoo
    found = embedded_client.search_runs([experiment_id], filter_string=filter_string)
    assert {run.info.run_name for run in found} == expected


def test_run_ids_in_filter(embedded_client: MlflowClient, zoo: tuple[str, dict[str, str]]) -> None:
    experiment_id, runs = zoo
    found = embedded_client.search_runs([experiment_id],
                                        filter_string=f"attributes.run_id IN ('{runs['lin']}', '{runs['xgb']}')")
    assert {run.info.run_id for run in found} == {runs["lin"], runs["xgb"]}


def test_order_by_and_defaults(embedded_client: MlflowClient, zoo: tuple[str, dict[str, str]]) -> None:
    experiment_id, _ = zoo

    def names(**kwargs) -> list[str]:
        return [run.info.run_name for run in embedded_client.search_runs([experiment_id], **kwargs)]

    assert names() == ["lin", "xgb", "rf-large", "rf-small"]  # newest start_time first
    assert names(order_by=["metrics.rmse DESC"]) == ["rf-small", "xgb", "rf-large", "lin"]  # no value: last
    assert names(order_by=["params.model ASC", "attributes.start_time DESC"]) == ["lin", "rf-large", "rf-small", "xgb"]
    assert names(order_by=["start_time ASC"]) == ["rf-small", "rf-large", "xgb", "lin"]
    with pytest.raises(MlflowException) as error:
        embedded_client.search_runs([experiment_id], order_by=["metrics.rmse SIDEWAYS"])
    assert error.value.error_code == "INVALID_PARAMETER_VALUE"


def test_pages_view_types_and_experiments(embedded_client: MlflowClient, zoo: tuple[str, dict[str, str]]) -> None:
    experiment_id, runs = zoo
    other = embedded_client.create_experiment("other")
    same_start = sorted(embedded_client.create_run(other, start_time=1).info.run_id for _ in range(5))
    pages, token = [], None
    while True:
        page = embedded_client.search_runs([other], max_results=2, page_token=token)
        pages.append([run.info.run_id for run in page])
        token = page.token
        if token is None:
            break
    assert pages == [same_start[0:2], same_start[2:4], same_start[4:]]  # ties broken by run id, as MLflow
    assert len(embedded_client.search_runs([experiment_id, other])) == 9
    assert embedded_client.search_runs([]) == []  # no experiments, no runs
    embedded_client.delete_run(runs["lin"])
    assert len(embedded_client.search_runs([experiment_id])) == 3
    assert [r.info.run_name for r in embedded_client.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY)
            ] == ["lin"]
    assert len(embedded_client.search_runs([experiment_id], run_view_type=ViewType.ALL)) == 4
    with pytest.raises(MlflowException, match="Invalid value 123456789 for parameter 'max_results' supplied"):
        embedded_client.search_runs([experiment_id], max_results=123456789)
    with pytest.raises(MlflowException) as error:
        embedded_client.search_runs([experiment_id], filter_string="metrics.rmse < 1 OR params.model = 'rf'")
    assert error.value.error_code == "INVALID_PARAMETER_VALUE"


def test_bulk_interval_samples_points(embedded_client: MlflowClient, mlflow_embedded_server: RunningServer) -> None:
    first, second = (embedded_client.create_run("0").info.run_id for _ in range(2))
    embedded_client.log_batch(first, metrics=[Metric("m", 10.0, 1, step) for step in range(10)])
    embedded_client.log_batch(second, metrics=[Metric("m", 20.0, 1, step) for step in range(20)])

    def steps(**params) -> list[tuple[str, int]]:
        response = rest(mlflow_embedded_server, "GET", "/metrics/get-history-bulk-interval",
                        params={"metric_key": "m", **params})
        assert response.status_code == 200, response.text
        return [(m["run_id"], m["step"]) for m in response.json()["metrics"]]

    assert steps(run_ids=[first], max_results=5) == [(first, s) for s in (0, 2, 4, 6, 9)]
    assert steps(run_ids=[first], max_results=5, start_step=0, end_step=4) == [(first, s) for s in range(5)]
    assert steps(run_ids=[first, second], max_results=5) == [(first, s) for s in (0, 2, 4, 6, 9)] + [
        (second, s) for s in (0, 4, 8, 12, 19)]
    assert steps(run_ids=[first], max_results=1) == [(first, 9)]  # a single point: the last
    for params, message in (({"metric_key": "m"}, "Missing value for required parameter 'run_ids'"),
                            ({"run_ids": [first], "metric_key": "m", "max_results": 0},
                             "max_results must be between 1 and 2500"),
                            ({"run_ids": [first]}, "Missing value for required parameter 'metric_key'"),
                            ({"run_ids": [f"r{i}" for i in range(101)], "metric_key": "m"},
                             "must specify at most 100 run_ids"),
                            ({"run_ids": [first], "metric_key": "m", "start_step": 1, "end_step": 0},
                             "end_step must be greater than start_step"),
                            ({"run_ids": [first], "metric_key": "m", "start_step": 1},
                             "both must be specified")):
        response = rest(mlflow_embedded_server, "GET", "/metrics/get-history-bulk-interval", params=params)
        assert response.status_code == 400 and message in response.json()["message"], params


def test_ui_bulk_history_and_dataset_summaries(embedded_client: MlflowClient,
                                               mlflow_embedded_server: RunningServer) -> None:
    experiment_id = embedded_client.create_experiment("ui")
    run_id = embedded_client.create_run(experiment_id).info.run_id
    history = [Metric("a", 10.0, 1, 2), Metric("a", 11.0, 1, 3), Metric("a", 12.0, 1, 3), Metric("a", 12.0, 2, 3)]
    embedded_client.log_batch(run_id, metrics=history)
    embedded_client.log_inputs(run_id, [DatasetInput(Dataset("name1", "digest1", "local", "src"),
                                                     [InputTag("mlflow.data.context", "training")])])
    response = httpx_get(mlflow_embedded_server, "/ajax-api/2.0/mlflow/metrics/get-history-bulk",
                         {"run_id": [run_id], "metric_key": "a"})
    assert response["metrics"] == [{"key": "a", "value": m.value, "timestamp": m.timestamp, "step": m.step,
                                    "run_id": run_id} for m in history]
    summaries = rest(mlflow_embedded_server, "POST", "/experiments/search-datasets",
                     {"experiment_ids": [experiment_id]}).json()
    assert summaries == {"dataset_summaries": [{"experiment_id": experiment_id, "name": "name1", "digest": "digest1",
                                                "context": "training"}]}
    refused = rest(mlflow_embedded_server, "POST", "/experiments/search-datasets", {"experiment_ids": []})
    assert refused.status_code == 400 and "at least one experiment_id" in refused.json()["message"]


def httpx_get(server: RunningServer, path: str, params: dict) -> dict:
    response = httpx.get(f"{server.url}{path}", params=params, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()
