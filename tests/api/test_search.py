"""POST /api/v1/runs/search and GET /api/v1/experiments/search on a real server (embedded and Kafka)."""

from __future__ import annotations

import math
import uuid
from datetime import timedelta
from typing import Any

import pytest

from ledgerflow.ingest.log import open_log
from ledgerflow.schemas import pack_series
from tests.projector.workload import DAY1, DAY2, Workload

HOUR = timedelta(hours=1)


def rid(n: int) -> str:
    return uuid.UUID(int=0xABC << 64 | n).hex


# (n, experiment, name, start_time, final status, params, tags, latest metrics, deleted)
RUNS: list[tuple[int, str, str, int, str, dict[str, str], dict[str, str], dict[str, float], bool]] = [
    (0, "exp-a", "alpha", 1000, "FINISHED", {"model": "rf", "lr": "0.1"}, {"team": "ml-core"}, {"rmse": 0.5}, False),
    (1, "exp-a", "beta", 2000, "FINISHED", {"model": "gbm", "lr": "0.01"}, {"team": "vision"}, {"rmse": 0.9}, False),
    (2, "exp-a", "gamma", 3000, "FAILED", {"model": "rf", "lr": "0.001"}, {"team": "ML-x"}, {}, False),
    (3, "exp-a", "delta run", 4000, "RUNNING", {"model": "lr", "a.b": "1"}, {"my tag": "it's"}, {"rmse": math.nan},
     False),
    (4, "exp-a", "epsilon", 5000, "FINISHED", {"model": "rf"}, {"team": "ml-core"}, {"rmse": 0.1}, True),
    (5, "exp-b", "zeta", 6000, "FINISHED", {"model": "rf"}, {}, {"rmse": 0.7, "my metric": 3.0}, False),
    (6, "exp-b", "eta", 6000, "FINISHED", {"model": "rf"}, {}, {"rmse": 0.7}, False),
]
NAME = {n: name for n, _, name, *_ in RUNS}


def search_workload() -> Workload:
    w = Workload(seed=11)
    for i, (eid, name, tags) in enumerate([("exp-a", "churn-a", {"team": "ml"}), ("exp-b", "churn-b", {}),
                                           ("exp-c", "vision-c", {"team": "cv"})]):
        w.event("ExperimentCreated", DAY1 + i * HOUR, f"experiment/{eid}", experiment_id=eid, name=name,
                artifact_location=None, tags=[{"key": k, "value": v} for k, v in tags.items()])
    w.event("ExperimentDeleted", DAY1 + 3 * HOUR, "experiment/exp-c", experiment_id="exp-c")
    for n, eid, name, start, status, params, tags, metrics, deleted in RUNS:
        key = f"run/{rid(n)}"
        w.event("RunStarted", DAY1, key, run_id=rid(n), experiment_id=eid, run_name=name, parent_run_id=None,
                start_time=start, status="RUNNING", user_id="ana" if n % 2 else "bo", artifact_uri=None,
                tags=[{"key": k, "value": v} for k, v in tags.items()])
        w.event("ParamsLogged", DAY1, key, run_id=rid(n), params=[{"key": k, "value": v} for k, v in params.items()])
        if metrics:
            w.event("MetricsLogged", DAY2, key, run_id=rid(n),
                    series=[pack_series(k, [10], [1_700_000_000_000], [v]) for k, v in metrics.items()])
        if n == 5:
            w.event("DatasetInputLogged", DAY2, key, run_id=rid(n), context="training", tags=[],
                    dataset={"name": "churn", "digest": "d1", "source_type": "local", "source": "{}",
                             "schema": None, "profile": None})
        if status != "RUNNING":
            w.event("RunStatusChanged", DAY2, key, run_id=rid(n), status=status, end_time=start + 500)
        if deleted:
            w.event("RunDeleted", DAY2, key, run_id=rid(n))
    return w


@pytest.fixture
def searchable(server):
    log = open_log(server.log_uri)
    try:
        log.append_batch(search_workload().entries())
    finally:
        log.close()
    return server


def names(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [run["info"]["run_name"] for run in response.json()["runs"]]


def search(client, **body: Any):
    return client.post("/api/v1/runs/search", json=body)


def test_filters_select_the_matching_runs(searchable) -> None:
    cases = {
        "metrics.rmse < 0.8": {"alpha", "zeta", "eta"},  # NaN matches no comparison; deleted runs hidden
        "metrics.rmse != 0.5": {"beta", "delta run", "zeta", "eta"},
        "metrics.rmse >= 0.7 AND metrics.rmse <= 0.9": {"beta", "zeta", "eta"},
        "metrics.rmse > 0.7": {"beta"},
        "metrics.rmse = 0.7": {"zeta", "eta"},
        "metrics.rmse IS NULL": {"gamma"},
        "metrics.`my metric` > 2": {"zeta"},
        "params.model = 'rf'": {"alpha", "gamma", "zeta", "eta"},
        'params.model != "rf"': {"beta", "delta run"},
        "params.`a.b` = '1'": {"delta run"},
        "params.lr LIKE '0.0%'": {"beta", "gamma"},
        "param.lr IS NULL": {"delta run", "zeta", "eta"},
        "params.model IN ('gbm', 'lr')": {"beta", "delta run"},
        "params.model NOT IN ('rf')": {"beta", "delta run"},
        "tags.team LIKE 'ml%'": {"alpha"},
        "tags.team ILIKE 'ml%'": {"alpha", "gamma"},
        "tags.`my tag` = 'it''s'": {"delta run"},
        "tag.team IS NOT NULL AND tags.team != 'vision'": {"alpha", "gamma"},
        "attributes.status = 'FINISHED'": {"alpha", "beta", "zeta", "eta"},
        "attr.status IN ('FAILED', 'RUNNING')": {"gamma", "delta run"},
        "attributes.`Run name` ILIKE '%TA%'": {"beta", "delta run", "zeta", "eta"},
        "run.start_time > 2000 AND attributes.start_time <= 4000": {"gamma", "delta run"},
        "attributes.created >= 6000": {"zeta", "eta"},
        "attributes.end_time < 2600": {"alpha", "beta"},
        f"attributes.run_id = '{rid(1)}'": {"beta"},
        "attributes.user_id = 'ana'": {"beta", "delta run", "zeta"},
        "datasets.name = 'churn' AND datasets.context = 'training'": {"zeta"},
        "datasets.digest IN ('d1', 'd2')": {"zeta"},
        "metrics.rmse < 0.8 AND params.model = 'rf' AND tags.team LIKE 'ml%' AND attributes.status = 'FINISHED'":
            {"alpha"},
        "": {"alpha", "beta", "gamma", "delta run", "zeta", "eta"},
    }
    with searchable.client() as client:
        for filter_string, expected in cases.items():
            assert set(names(search(client, experiment_ids=["exp-a", "exp-b"], filter=filter_string))) == expected, \
                filter_string
        assert set(names(search(client, experiment_ids=["exp-b"], filter="params.model = 'rf'"))) == {"zeta", "eta"}
        # an empty experiment_ids list searches every experiment
        assert len(names(search(client, filter="params.model = 'rf'"))) == 4
        run = search(client, filter="attributes.run_name = 'zeta'").json()["runs"][0]
        assert run["data"]["metrics"]["rmse"]["value"] == 0.7 and run["inputs"][0]["name"] == "churn"
        nan_run = search(client, filter="params.model = 'lr'").json()["runs"][0]
        assert nan_run["data"]["metrics"]["rmse"]["value"] == "NaN"


def test_order_by_puts_nan_and_missing_last_with_run_id_tiebreak(searchable) -> None:
    tie = [NAME[n] for n in sorted((5, 6), key=rid)]  # equal rmse: ordered by run id
    with searchable.client() as client:
        assert names(search(client)) == [*tie, "delta run", "gamma", "beta", "alpha"]  # start_time DESC, run_id
        assert names(search(client, order_by=["metrics.rmse ASC"])) == ["alpha", *tie, "beta", "delta run", "gamma"]
        assert names(search(client, order_by=["metrics.rmse DESC"])) == ["beta", *tie, "alpha", "delta run", "gamma"]
        assert names(search(client, order_by=["params.lr DESC", "attributes.start_time ASC"])) == \
            ["alpha", "beta", "gamma", "delta run", "zeta", "eta"]
        assert names(search(client, order_by=["attributes.end_time ASC"]))[-1] == "delta run"  # still running
        assert names(search(client, order_by=["tags.`my tag` DESC", "run_name"])) == \
            ["delta run", "alpha", "beta", "eta", "gamma", "zeta"]
        by_id = names(search(client, order_by=["attributes.run_id DESC"]))
        assert by_id == [NAME[n] for n in sorted((0, 1, 2, 3, 5, 6), key=rid, reverse=True)]


def test_paging_through_every_result_with_tokens(searchable) -> None:
    body = {"experiment_ids": ["exp-a", "exp-b"], "order_by": ["metrics.rmse ASC"], "run_view_type": "ALL"}
    with searchable.client() as client:
        everything = names(search(client, **body))
        assert len(everything) == 7
        seen, token, pages = [], None, 0
        while True:
            response = search(client, **body, max_results=2, page_token=token)
            seen += names(response)
            token = response.json()["next_page_token"]
            pages += 1
            if token is None:
                break
        assert seen == everything and pages == 4
        exact = search(client, **body, max_results=7).json()
        assert exact["next_page_token"] is None and len(exact["runs"]) == 7
        first = search(client, **body, max_results=3).json()
        assert len(first["runs"]) == 3 and isinstance(first["next_page_token"], str)
        other = search(client, **{**body, "filter": "metrics.rmse < 1"}, page_token=first["next_page_token"])
        assert other.status_code == 400 and "different query" in other.json()["message"]
        assert search(client, **body, page_token="not-a-token").status_code == 400


def test_view_types(searchable) -> None:
    with searchable.client() as client:
        assert names(search(client, run_view_type="DELETED_ONLY")) == ["epsilon"]
        assert "epsilon" in names(search(client, run_view_type="ALL"))
        assert "epsilon" not in names(search(client, run_view_type="ACTIVE_ONLY"))
        assert names(search(client, filter="attributes.lifecycle_stage = 'deleted'", run_view_type="ALL")) == \
            ["epsilon"]


@pytest.mark.parametrize("body, fragment", [
    ({"filter": "metrics.rmse < 0.8 OR params.model = 'rf'"}, "OR is not supported"),
    ({"filter": "params.model = 'rf"}, "unterminated string"),
    ({"filter": "bogus.model = 'rf'"}, "unknown identifier prefix 'bogus'"),
    ({"filter": "metrics.rmse <"}, "missing value"),
    ({"filter": "params.lr > '0.1'"}, "comparator '>' is not allowed for params.lr"),
    ({"filter": "metrics.rmse < 0.8 extra"}, "unexpected 'extra'"),
    ({"filter": "attributes.colour = 'red'"}, "unknown attribute 'colour'"),
    ({"order_by": ["metrics.rmse SIDEWAYS"]}, "SIDEWAYS"),
    ({"order_by": ["datasets.name"]}, "cannot be ordered by datasets"),
    ({"max_results": 50_001}, "max_results"),
    ({"max_results": 0}, "max_results"),
    ({"run_view_type": "SOME"}, "run_view_type"),
    ({"experiment_ids": "exp-a"}, "experiment_ids"),
    ({"filters": "x"}, "filters"),
])
def test_bad_search_requests_are_400(embedded_server, body: dict[str, Any], fragment: str) -> None:
    with embedded_server.client() as client:
        response = search(client, **body)
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert fragment in response.json()["message"]


def test_bad_search_request_on_kafka_too(searchable) -> None:
    with searchable.client() as client:
        response = search(client, filter="metrics.rmse < 'x'")
        assert response.status_code == 400
        assert response.json() == {"error_code": "INVALID_PARAMETER_VALUE", "message": response.json()["message"]}
        assert "position 15" in response.json()["message"]


def experiments(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [e["name"] for e in response.json()["experiments"]]


def test_experiment_search(searchable) -> None:
    url = "/api/v1/experiments/search"
    with searchable.client() as client:
        assert experiments(client.get(url)) == ["churn-b", "churn-a"]  # creation_time DESC
        assert experiments(client.get(url, params={"view_type": "ALL"})) == ["vision-c", "churn-b", "churn-a"]
        assert experiments(client.get(url, params={"view_type": "DELETED_ONLY"})) == ["vision-c"]
        assert experiments(client.get(url, params={"filter": "name LIKE 'churn%' AND tags.team = 'ml'"})) == ["churn-a"]
        assert experiments(client.get(url, params={"filter": "attributes.name ILIKE 'CHURN-B'"})) == ["churn-b"]
        assert experiments(client.get(url, params={"filter": "tags.team IS NULL"})) == ["churn-b"]
        created = client.get(url, params={"filter": "name = 'churn-b'"}).json()["experiments"][0]["creation_time"]
        assert experiments(client.get(url, params={"filter": f"creation_time < {created}"})) == ["churn-a"]
        assert experiments(client.get(url, params={"order_by": ["name DESC"], "view_type": "ALL"})) == \
            ["vision-c", "churn-b", "churn-a"]
        first = client.get(url, params={"order_by": "name", "max_results": 1}).json()
        assert [e["name"] for e in first["experiments"]] == ["churn-a"] and first["experiments"][0]["tags"] == \
            {"team": "ml"}
        second = client.get(url, params={"order_by": "name", "max_results": 1, "page_token": first["next_page_token"]})
        assert experiments(second) == ["churn-b"] and second.json()["next_page_token"] is None
        for params, fragment in [({"filter": "name = 'x' OR name = 'y'"}, "OR is not supported"),
                                 ({"filter": "metrics.x > 1"}, "unknown identifier prefix 'metrics'"),
                                 ({"filter": "creation_time > 'yesterday'"}, "compares numbers"),
                                 ({"max_results": 100_000}, "max_results"),
                                 ({"view_type": "NONE"}, "view_type"),
                                 ({"order_by": "name", "page_token": first["next_page_token"][:-3] + "abc"},
                                  "page_token")]:
            response = client.get(url, params=params)
            assert response.status_code == 400 and fragment in response.json()["message"], (params, response.text)
