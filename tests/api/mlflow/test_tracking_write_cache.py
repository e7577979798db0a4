"""The write-side cache: what a server checks writes against, and what a second server on the same log sees."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Param
from mlflow.exceptions import MlflowException

from ledgerflow.api.mlflow import run_facts
from tests.api.mlflow.tracking_support import sql
from tests.api.serving import serving


def test_two_servers_on_one_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each server checks against what it has seen; the projector keeps the log's truth."""
    monkeypatch.setattr(run_facts, "DEFAULT_MAX_AGE", 1.0)  # production default: 60 s
    log_home, second_home = tmp_path / "a", tmp_path / "b"
    log_home.mkdir()
    second_home.mkdir()
    with serving(f"file:{log_home}", log_home) as first, serving(f"file:{log_home}", second_home) as second:
        a, b = MlflowClient(first.url), MlflowClient(second.url)
        run_id = a.create_run("0").info.run_id
        b.log_param(run_id, "p", "1")  # b has never seen the run: it reads it (consistently) first
        assert a.get_run(run_id).data.params == {"p": "1"}  # every read sees every acknowledged write

        # a still holds the run as it created it (no params): within max_age it accepts a conflicting
        # value; the projectors of both servers reject that event into dead_letters
        a.log_param(run_id, "p", "2")
        for server in (first, second):
            assert MlflowClient(server.url).get_run(run_id).data.params == {"p": "1"}
            [dead] = sql(server, "SELECT event_type, reason FROM dead_letters")
            assert dead["event_type"] == "ParamsLogged" and "immutable" in dead["reason"]

        time.sleep(1.1)  # past max_age a reads the run again and refuses the change itself
        with pytest.raises(MlflowException, match="Changing param values is not allowed") as error:
            a.log_param(run_id, "p", "3")
        assert error.value.error_code == "INVALID_PARAMETER_VALUE"
        a.log_param(run_id, "q", "x")
        assert b.get_run(run_id).data.params == {"p": "1", "q": "x"}

        b.delete_run(run_id)  # a deletion through one server is seen by the other within max_age
        time.sleep(1.1)
        with pytest.raises(MlflowException, match="must be in the 'active' state"):
            a.log_metric(run_id, "m", 1.0)


def test_concurrent_writes_to_one_run_are_checked_one_at_a_time(embedded_client: MlflowClient,
                                                               mlflow_embedded_server) -> None:
    """Twenty threads log the same param with different values: exactly one value wins, none is lost."""
    run_id = embedded_client.create_run("0").info.run_id
    outcomes: list[str] = []
    lock = threading.Lock()

    def log(value: int) -> None:
        try:
            embedded_client.log_batch(run_id, params=[Param("seed", str(value)), Param(f"own{value}", "x")])
            result = f"ok:{value}"
        except MlflowException as e:
            result = e.error_code
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=log, args=(value,)) for value in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [o for o in outcomes if o.startswith("ok:")]
    assert len(winners) == 1 and outcomes.count("INVALID_PARAMETER_VALUE") == 19
    params = embedded_client.get_run(run_id).data.params
    winner = winners[0].split(":")[1]
    assert params == {"seed": winner, f"own{winner}": "x"}  # a refused batch stored none of its params
    assert sql(mlflow_embedded_server, "SELECT count(*) AS n FROM dead_letters") == [{"n": 0}]
