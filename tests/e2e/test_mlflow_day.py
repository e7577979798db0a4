"""The unmodified mlflow client, in a separate process, through a whole day against ``ledgerflow server``.

The script (mlflow_day_script.py) is ordinary MLflow code; this test starts a real server (embedded
log, then Kafka), runs the script with MLFLOW_TRACKING_URI pointing at it, and checks both what the
client saw and what ledgerflow recorded (events in the log, rows in the projection).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_server_cli import server_process

SCRIPT = Path(__file__).with_name("mlflow_day_script.py")


def run_day(url: str, workdir: Path) -> dict:
    env = {**os.environ, "MLFLOW_TRACKING_URI": url, "PYTHONPATH": ""}
    observed = workdir / "observed.json"
    done = subprocess.run([sys.executable, str(SCRIPT), str(observed)], capture_output=True, text=True, env=env,
                          cwd=workdir, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(observed.read_text())


def sql(url: str, query: str) -> list[list]:
    response = httpx.post(f"{url}/api/v1/sql", json={"sql": query}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["rows"]


def check_day(seen: dict, url: str) -> None:
    children = seen["children"]
    assert len(children) == 2
    assert seen["search"]["rows"] == 2
    assert seen["search"]["accuracy"] == sorted(seen["search"]["accuracy"], reverse=True)
    assert seen["search"]["run_ids"][0] == children[1]  # lr=0.1 has the higher accuracy
    assert {"params.lr", "params.depth", "tags.team"} <= set(seen["search"]["columns"])
    assert seen["history"] == {"points": 50, "steps": [0, 1, 2], "first": pytest.approx(1.1),
                               "last": pytest.approx(1 / 50 + 0.1)}
    best = seen["best"]
    assert best["params"] == {"lr": "0.1", "depth": "4"}
    assert best["metrics"]["accuracy"] == pytest.approx(0.9)
    assert best["metrics"]["loss"] == pytest.approx(1 / 50 + 0.1)  # the latest step's value
    assert best["team"] == "growth" and best["parent"] == seen["parent"]
    assert best["inputs"] == ["churn-train"]
    assert best["artifacts"] == ["config", "notes.txt", "reports"]
    assert best["config"] == {"lr": 0.1, "features": ["x"]}
    assert seen["prediction"] == [3.0, 11.0]
    assert seen["alias_version"] == "1"
    assert (seen["after_delete"], seen["deleted_stage"], seen["after_restore"]) == (1, "deleted", 2)
    assert seen["errors"] == {"unknown_run": "RESOURCE_DOES_NOT_EXIST", "param_changed": "INVALID_PARAMETER_VALUE"}
    assert seen["log_to_deleted_run"] == "INVALID_PARAMETER_VALUE"
    assert seen["big_batch_metrics"] == 1001

    # a raw request over MLflow's batch limit is refused whole, as MLflow's server does
    oversized = {"run_id": best_run(seen), "metrics": [
        {"key": f"raw{i}", "value": 1.0, "timestamp": 0, "step": 0} for i in range(1001)]}
    response = httpx.post(f"{url}/api/2.0/mlflow/runs/log-batch", json=oversized, timeout=60)
    assert response.status_code == 400 and response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert sql(url, "SELECT count(*) FROM latest_metrics WHERE key LIKE 'raw%'") == [[0]]

    # ledgerflow's side: every write became an event; the projection holds the same facts
    counts = dict(sql(url, "SELECT event_type, count(*) FROM events GROUP BY 1"))
    assert counts["RunStarted"] == 3 and counts["RunDeleted"] == 1 and counts["RunRestored"] == 1
    assert counts["ModelVersionCreated"] == 1 and counts["ModelVersionAliasSet"] == 1
    assert counts.get("DatasetInputLogged") == 2
    assert seen["history_after_log_model"] == 50
    points = sql(url, f"SELECT count(DISTINCT (step, timestamp, value)) FROM metrics "
                      f"WHERE run_id = '{best_run(seen)}' AND key = 'loss'")
    assert points == [[50]]
    assert sql(url, "SELECT count(*) FROM dead_letters") == [[0]]
    artifacts = sql(url, f"SELECT path FROM artifacts WHERE run_id = '{best_run(seen)}' ORDER BY path")
    assert ["notes.txt"] in artifacts and ["reports/report.csv"] in artifacts


def best_run(seen: dict) -> str:
    return seen["search"]["run_ids"][0]


def test_a_day_with_the_mlflow_client_on_the_embedded_log(tmp_path: Path) -> None:
    with server_process("--home", str(tmp_path / "home")) as (url, _process):
        check_day(run_day(url, tmp_path), url)


@pytest.mark.kafka
def test_a_day_with_the_mlflow_client_on_kafka(tmp_path: Path, kafka_bootstrap: str, kafka_topic) -> None:
    topic = kafka_topic(partitions=3, prefix="mlflow-day")
    with server_process("--home", str(tmp_path / "home"), "--kafka", kafka_bootstrap, "--topic", topic) as (url, _p):
        check_day(run_day(url, tmp_path), url)
