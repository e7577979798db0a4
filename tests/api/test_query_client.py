"""lf.Client against a real server (embedded and Kafka): every method, errors, DataFrames."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import uuid

import pytest

import ledgerflow as lf
from ledgerflow.errors import ConfigurationError
from ledgerflow.ingest.log import Entry, open_log
from ledgerflow.schemas import Event, make_envelope
from tests.api.serving import RunningServer

from .test_ingest import avro_event, run_events


def _two_runs(client: lf.Client) -> tuple[str, str]:
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    for run_id, lr in ((a, "0.1"), (b, "0.2")):
        events = run_events(run_id, points=10)
        events[1]["fields"]["params"][0]["value"] = lr
        client.log_events(events)
    return a, b


def test_writes_and_reads_through_the_client(server: RunningServer) -> None:
    with lf.Client(server.url, actor="client-test") as client:
        assert client.health()["status"] == "ok"
        a, b = _two_runs(client)
        run = client.get_run(a)
        assert run["info"]["run_id"] == a and run["data"]["params"]["lr"] == "0.1"

        runs = client.search_runs(["0"], "params.lr = '0.2'")
        assert [r["info"]["run_id"] for r in runs] == [b] and runs.next_page_token is None
        page = client.search_runs("0", max_results=1, order_by=["params.lr DESC"])
        assert len(page) == 1 and page.next_page_token and page[0]["info"]["run_id"] == b
        assert client.search_runs("0", page_token=page.next_page_token, max_results=1,
                                  order_by=["params.lr DESC"])[0]["info"]["run_id"] == a

        history = client.metric_history(a, "loss", max_points=100)
        assert [p["step"] for p in history["points"]] == list(range(10)) and history["points"][-1]["value"] == "NaN"
        compared = client.compare_runs([a, b], metric_keys=["loss"])
        assert json.dumps(compared)  # JSON-clean (NaN travels as a string)
        lineage = client.lineage(a)
        assert lineage["run_id"] == a
        audit = client.audit("run", a)
        assert [e["event_type"] for e in audit["events"]][:3] == ["RunStarted", "ParamsLogged", "MetricsLogged"]
        assert {e["actor"] for e in audit["events"]} == {"client-test"}
        assert client.log_position()["end_position"]


def test_events_objects_go_as_avro(server: RunningServer) -> None:
    run_id = uuid.uuid4().hex
    envelope = make_envelope(actor="obj", producer_id="p", sequence=0, entity_key=f"run/{run_id}")
    event = Event("RunStarted", {"envelope": envelope, "run_id": run_id, "experiment_id": "0", "run_name": "o",
                                 "parent_run_id": None, "start_time": 1, "status": "RUNNING", "user_id": "u",
                                 "artifact_uri": None, "tags": []})
    with lf.Client(server.url) as client:
        answer = client.log_events([event])
        assert len(answer["positions"]) == 1
        assert client.get_run(run_id)["info"]["run_name"] == "o"


def test_server_errors_carry_code_and_message(embedded_server: RunningServer) -> None:
    with lf.Client(embedded_server.url) as client:
        with pytest.raises(lf.ServerError) as missing:
            client.get_run("f" * 32)
        assert missing.value.status == 404 and missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
        assert "does not exist" in missing.value.message and not missing.value.transient
        with pytest.raises(lf.ServerError) as invalid:
            client.log_events([{"type": "Nope"}])
        assert invalid.value.status == 400 and "event 0: unknown event type 'Nope'" in invalid.value.message
        with pytest.raises(ConfigurationError):
            client.lineage()
    with pytest.raises(ConfigurationError):
        lf.Client("ftp://x")


def test_an_unreachable_server() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from ledgerflow.ingest.sdk.query_client import ServerUnavailableError

    with pytest.raises(ServerUnavailableError, match="cannot reach the ledgerflow server"):
        lf.Client(f"http://127.0.0.1:{port}", timeout=5).health()


def test_eventual_reads(embedded_server: RunningServer) -> None:
    with lf.Client(embedded_server.url, consistency="eventual") as client:
        a, _ = _two_runs(client)
        runs = client.search_runs("0")  # answers at once from what is projected: may or may not hold a yet
        assert isinstance(runs, list) and {r["info"]["run_id"] for r in runs} <= {a, _}
    with pytest.raises(ConfigurationError):
        lf.Client(embedded_server.url, consistency="strong")


def test_data_frames(embedded_server: RunningServer) -> None:
    pandas = pytest.importorskip("pandas")
    with lf.Client(embedded_server.url) as client:
        a, b = _two_runs(client)
        frame = client.search_runs("0", as_frame=True)
        assert isinstance(frame, pandas.DataFrame)
        assert set(frame["run_id"]) == {a, b} and {"params.lr", "metrics.loss", "status"} <= set(frame)
        assert frame["metrics.loss"].isna().all()  # the latest loss point is NaN
        history = client.metric_history(a, "loss", as_frame=True)
        assert list(history["step"]) == list(range(10)) and history["value"].isna().iloc[-1]
        client.log_events([{"type": "ExperimentCreated", "fields": {"experiment_id": "e1", "name": "frames",
                                                                     "artifact_location": None, "tags": []}}])
        assert list(client.search_experiments(as_frame=True)["name"]) == ["frames"]
        events = client.audit("run", a, as_frame=True)
        assert list(events["event_type"])[:1] == ["RunStarted"]


def test_data_frames_without_pandas(embedded_server: RunningServer) -> None:
    """Without pandas, as_frame names the extra to install (checked in a child where pandas cannot import)."""
    code = ("import sys; sys.modules['pandas'] = None\n"
            "import ledgerflow as lf\n"
            f"c = lf.Client({embedded_server.url!r})\n"
            "try:\n    c.search_runs(as_frame=True)\nexcept ImportError as e:\n    print(e)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install ledgerflow[pandas]" in result.stdout, result.stdout + result.stderr


def test_sql(server: RunningServer) -> None:
    with lf.Client(server.url) as client:
        a, _ = _two_runs(client)
        answer = client.sql(f"SELECT count(*) AS points FROM metrics WHERE run_id = '{a}'")
        assert "10" in json.dumps(answer)  # read-your-writes: all 10 points of the run just written
        frame = client.sql(f"SELECT step, value FROM metrics WHERE run_id = '{a}' ORDER BY step", as_frame=True)
        assert list(frame["step"]) == list(range(10))


def test_the_client_reads_what_the_log_holds(embedded_server: RunningServer) -> None:
    """Events appended to the server's own log by another writer are visible through the client."""
    run_id = uuid.uuid4().hex
    started = avro_event("RunStarted", f"run/{run_id}", run_id=run_id, experiment_id="0", run_name="side",
                         start_time=5, status="RUNNING", user_id="u", tags=[], parent_run_id=None, artifact_uri=None)
    with open_log(embedded_server.log_uri) as log:
        log.append_batch([Entry(f"run/{run_id}", started)])
    with lf.Client(embedded_server.url) as client:
        assert client.get_run(run_id)["info"]["run_name"] == "side"


def test_models_and_their_lineage(embedded_server: RunningServer) -> None:
    with lf.Client(embedded_server.url) as client:
        a, _ = _two_runs(client)
        client.log_events([
            {"type": "RegisteredModelCreated", "fields": {"name": "churn model", "description": None, "tags": []}},
            {"type": "ModelVersionCreated", "fields": {"name": "churn model", "version": 1, "source": f"runs:/{a}/m",
                                                       "run_id": a, "tags": []}},
        ])
        assert client.get_registered_model("churn model")["name"] == "churn model"  # escaped in the path
        assert client.get_model_version("churn model", 1)["version"] == 1
        assert client.lineage(model="churn model", version=1)["source_run_id"] == a
        with pytest.raises(lf.ServerError, match="RESOURCE_DOES_NOT_EXIST"):
            client.get_model_version("churn model", 2)
