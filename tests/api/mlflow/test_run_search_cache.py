"""runs/search and runs/get keep each run's JSON between reads (api/mlflow/run_cache.py): never stale.

After each kind of write that changes a run, runs/get and then runs/search right after cached reads show
the change, and every run the search returns is byte for byte what runs/get answers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, LoggedModelInput, LoggedModelOutput, Metric, Param, RunTag

from ledgerflow.api.mlflow.run_cache import RunJsonCache
from ledgerflow.projector.tables import TABLES_BY_NAME
from tests.api.mlflow.tracking_support import rest
from tests.api.serving import RunningServer


def _searched(server: RunningServer, experiment_id: str) -> dict[str, dict[str, Any]]:
    """Every run of the experiment (active and deleted) as runs/search answers it, checked against runs/get."""
    response = rest(server, "POST", "/runs/search", body={"experiment_ids": [experiment_id], "run_view_type": "ALL",
                                                          "max_results": 1000})
    assert response.status_code == 200, response.text
    runs = {run["info"]["run_id"]: run for run in response.json()["runs"]}
    for run_id, run in runs.items():
        fresh = rest(server, "GET", "/runs/get", params={"run_id": run_id})
        assert fresh.json()["run"] == run, f"runs/search and runs/get disagree on {run_id}"
    return runs


def _dataset(source: str) -> DatasetInput:
    return DatasetInput(Dataset(name="iris", digest="abc123", source_type="local", source=source), tags=[])


def test_search_after_each_kind_of_write_shows_it(mlflow_client: MlflowClient, mlflow_server: RunningServer) -> None:
    client = mlflow_client
    experiment_id = client.create_experiment("cached")
    first, second = (client.create_run(experiment_id, run_name=name).info.run_id for name in ("first", "second"))
    client.log_batch(first, metrics=[Metric("loss", 0.5, 1, 0)], params=[Param("lr", "0.1")],
                     tags=[RunTag("team", "a")])
    client.log_batch(second, metrics=[Metric("loss", 0.7, 1, 0)])
    model = client.create_logged_model(experiment_id, name="m").model_id
    # the run info built in SQL for searches is the one runs/create shapes in Python, odd characters included
    created = rest(mlflow_server, "POST", "/runs/create", body={"experiment_id": experiment_id, "start_time": 5,
                                                                "run_name": 'naïve "run" \\ 🚀'}).json()["run"]
    assert _searched(mlflow_server, experiment_id)[created["info"]["run_id"]]["info"] == created["info"]

    def metrics(run: dict[str, Any]) -> dict[str, float]:
        return {m["key"]: m["value"] for m in run["data"].get("metrics", [])}

    def tags(run: dict[str, Any]) -> dict[str, str]:
        return {t["key"]: t["value"] for t in run["data"].get("tags", [])}

    def source(run: dict[str, Any]) -> str | None:
        dataset_inputs = run["inputs"].get("dataset_inputs", [])
        return dataset_inputs[0]["dataset"]["source"] if dataset_inputs else None

    def info(run: dict[str, Any], *names: str) -> tuple[Any, ...]:
        return tuple(run["info"].get(name) for name in names)

    writes: list[tuple[str, Callable[[], None], Callable[[dict[str, dict[str, Any]]], bool]]] = [
        ("a new latest metric", lambda: client.log_metric(first, "loss", 0.25, step=1),
         lambda runs: metrics(runs[first])["loss"] == 0.25),
        ("a new metric key", lambda: client.log_metric(second, "acc", 0.9),
         lambda runs: metrics(runs[second]) == {"loss": 0.7, "acc": 0.9}),
        ("a param", lambda: client.log_param(second, "lr", "0.2"),
         lambda runs: runs[second]["data"].get("params") == [{"key": "lr", "value": "0.2"}]),
        ("a tag set", lambda: client.set_tag(first, "team", "b"), lambda runs: tags(runs[first])["team"] == "b"),
        ("a tag deleted", lambda: client.delete_tag(first, "team"), lambda runs: "team" not in tags(runs[first])),
        ("a rename", lambda: client.update_run(second, name="renamed"),
         lambda runs: info(runs[second], "run_name") == ("renamed",)),
        ("an end", lambda: client.set_terminated(first, "FAILED", end_time=99),
         lambda runs: info(runs[first], "status", "end_time") == ("FAILED", 99)),
        ("a dataset input", lambda: client.log_inputs(first, [_dataset("s3://one")]),
         lambda runs: source(runs[first]) == "s3://one"),
        # the same dataset (name, digest) from another source: the shared dataset row changes for both runs
        ("the dataset again, elsewhere", lambda: client.log_inputs(second, [_dataset("s3://two")]),
         lambda runs: source(runs[first]) == "s3://two"),
        ("a model input", lambda: client.log_inputs(second, models=[LoggedModelInput(model)]),
         lambda runs: runs[second]["inputs"].get("model_inputs") == [{"model_id": model}]),
        ("a model output", lambda: client.log_outputs(first, [LoggedModelOutput(model, step=3)]),
         lambda runs: runs[first]["outputs"].get("model_outputs") == [{"model_id": model, "step": 3}]),
        ("a deletion", lambda: client.delete_run(second),
         lambda runs: info(runs[second], "lifecycle_stage") == ("deleted",)),
        ("a restore", lambda: client.restore_run(second),
         lambda runs: info(runs[second], "lifecycle_stage") == ("active",)),
    ]
    for what, write, shows in writes:
        before = _searched(mlflow_server, experiment_id)  # fills the cache
        assert not shows(before), f"{what}: already visible before the write, the check proves nothing"
        write()
        got = {run_id: rest(mlflow_server, "GET", "/runs/get", params={"run_id": run_id}).json()["run"]
               for run_id in before}
        assert shows(got), f"{what}: not visible in the next runs/get"
        assert shows(_searched(mlflow_server, experiment_id)), f"{what}: not visible in the next search"


# ---- the cache's own rules, over a real events table ---------------------------------------------

@pytest.fixture
def events(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(str(tmp_path / "events.duckdb"))
    for table in ("events", "run_inputs", "datasets"):
        connection.execute(TABLES_BY_NAME[table].ddl())
    return connection


def _event(connection: duckdb.DuckDBPyConnection, offset: int, run_id: str, partition: int = 0) -> None:
    connection.execute("INSERT INTO events VALUES (uuid(), 'RunTagsSet', 1, now(), 'me', 'p', ?, ?, NULL, ?, NULL, "
                       "NULL, ?, ?, '{}')", [offset, f"run/{run_id}", run_id, partition, offset])


def test_runs_written_since_are_evicted_and_others_kept(events: duckdb.DuckDBPyConnection) -> None:
    cache = RunJsonCache()
    assert cache.lookup(events, {0: 10}, ["a", "b"]).cached == {}
    cache.store(cache.lookup(events, {0: 10}, []).epoch, {"a": "A", "b": "B", "c": "C"})
    _event(events, 9, "a")  # before the position the entries were built at: already in them
    _event(events, 10, "b")
    _event(events, 3, "c", partition=1)  # a partition the cache has not seen yet: all of it is new
    snapshot = cache.lookup(events, {0: 11, 1: 4}, ["a", "b", "c"])
    assert snapshot.cached == {"a": "A"}
    cache.store(snapshot.epoch, {"b": "B2"})
    assert cache.lookup(events, {0: 11, 1: 4}, ["a", "b"]).cached == {"a": "A", "b": "B2"}


def test_a_page_built_before_an_eviction_is_not_stored(events: duckdb.DuckDBPyConnection) -> None:
    cache = RunJsonCache()
    cache.store(cache.lookup(events, {0: 0}, []).epoch, {"a": "A"})
    slow = cache.lookup(events, {0: 0}, ["b"])  # a read starts, then the projection moves on
    _event(events, 0, "b")
    assert cache.lookup(events, {0: 1}, ["a"]).cached == {"a": "A"}
    cache.store(slow.epoch, {"b": "stale B"})
    assert cache.lookup(events, {0: 1}, ["b"]).cached == {}


def test_the_least_recently_used_runs_go_first_past_the_byte_bound(events: duckdb.DuckDBPyConnection) -> None:
    cache = RunJsonCache(max_bytes=10)
    epoch = cache.lookup(events, {0: 0}, []).epoch
    cache.store(epoch, {"a": "aaaa", "b": "bbbb"})
    assert cache.lookup(events, {0: 0}, ["a"]).cached == {"a": "aaaa"}  # a is now the most recent
    cache.store(epoch, {"c": "cccc"})
    assert cache.lookup(events, {0: 0}, ["a", "b", "c"]).cached == {"a": "aaaa", "c": "cccc"}
    assert len(cache) == 2
