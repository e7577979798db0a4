"""The fluent API end to end against a real embedded log: what a training script logs is what the log holds."""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from pathlib import Path

import pytest

import ledgerflow as lf
from ledgerflow.errors import ConfigurationError
from ledgerflow.ingest.sdk.client import EXPERIMENT_NAMESPACE

from .conftest import metric_points, of_type, read_events


def tags_of(event) -> dict[str, str]:
    return {t["key"]: t["value"] for t in event.body["tags"]}


def test_experiment_run_params_tags_metrics(lf_home: Path) -> None:
    experiment = lf.set_experiment("mnist")
    assert experiment.experiment_id == uuid.uuid5(EXPERIMENT_NAMESPACE, "mnist").hex
    before = int(time.time() * 1000)
    with lf.start_run(run_name="baseline", tags={"team": "vision"}, description="first try") as run:
        assert lf.active_run() is run
        assert lf.log_param("lr", 0.01) == 0.01
        lf.log_params({"epochs": 3, "optimizer": "adam"})
        lf.log_param("lr", 0.01)  # the same value again is fine and logs nothing new
        lf.set_tag("stage", "dev")
        lf.set_tags({"a": 1, "b": "two"})
        lf.delete_tag("a")
        lf.log_metric("loss", 0.5, step=1, timestamp=1_700_000_000_123)
        lf.log_metric("loss", float("nan"), step=2)
        lf.log_metric("loss", float("inf"), step=3)
        lf.log_metrics({"acc": 0.9, "f1": 0.8}, step=7)
    after = int(time.time() * 1000)
    assert lf.active_run() is None and lf.last_active_run() is run
    assert run.info.status == "FINISHED" and before <= run.info.start_time <= run.info.end_time <= after

    events = read_events(lf_home)
    created = of_type(events, "ExperimentCreated")
    assert [(e.body["experiment_id"], e.body["name"]) for e in created] == [(experiment.experiment_id, "mnist")]
    started, = of_type(events, "RunStarted")
    assert started.body["run_id"] == run.info.run_id and len(run.info.run_id) == 32
    assert started.body["experiment_id"] == experiment.experiment_id
    assert started.body["run_name"] == "baseline" and started.body["status"] == "RUNNING"
    assert started.body["parent_run_id"] is None
    assert tags_of(started) | {} == {"team": "vision", "mlflow.runName": "baseline", "mlflow.user": run.info.user_id,
                                     "mlflow.note.content": "first try"}
    assert started.body["artifact_uri"].endswith(f"/artifacts/{experiment.experiment_id}/{run.info.run_id}/artifacts")
    params = [(p["key"], p["value"]) for e in of_type(events, "ParamsLogged") for p in e.body["params"]]
    assert params == [("lr", "0.01"), ("epochs", "3"), ("optimizer", "adam")]
    assert [tags_of(e) for e in of_type(events, "RunTagsSet")] == [{"stage": "dev"}, {"a": "1", "b": "two"}]
    assert [e.body["key"] for e in of_type(events, "RunTagDeleted")] == ["a"]
    points = metric_points(events, run.info.run_id)
    assert points["loss"][0] == (1, 1_700_000_000_123, 0.5)
    assert math.isnan(points["loss"][1][2]) and points["loss"][2][2] == math.inf
    assert [p[0] for p in points["loss"]] == [1, 2, 3]
    assert before <= points["loss"][1][1] <= after
    assert points["acc"] == [(7, points["acc"][0][1], 0.9)] and points["f1"][0][1] == points["acc"][0][1]
    ended, = of_type(events, "RunStatusChanged")
    assert ended.body == ended.body | {"run_id": run.info.run_id, "status": "FINISHED", "end_time": run.info.end_time}


def test_nested_runs_and_status_on_exception(lf_home: Path) -> None:
    with lf.start_run() as parent:
        with pytest.raises(lf.RunStateError, match="already active"):
            lf.start_run()
        with pytest.raises(ZeroDivisionError):
            with lf.start_run(nested=True, run_name="child") as child:
                assert lf.active_run() is child
                raise ZeroDivisionError("training blew up")
        assert lf.active_run() is parent
    events = read_events(lf_home)
    starts = {e.body["run_id"]: e for e in of_type(events, "RunStarted")}
    assert starts[child.info.run_id].body["parent_run_id"] == parent.info.run_id
    assert tags_of(starts[child.info.run_id])["mlflow.parentRunId"] == parent.info.run_id
    assert "-" in starts[parent.info.run_id].body["run_name"]  # a generated friendly name
    statuses = [(e.body["run_id"], e.body["status"]) for e in of_type(events, "RunStatusChanged")]
    assert statuses == [(child.info.run_id, "FAILED"), (parent.info.run_id, "FINISHED")]


def test_default_experiment_auto_run_and_explicit_end_status(lf_home: Path) -> None:
    lf.log_metric("x", 1)  # no active run: one is started in the Default experiment, as MLflow does
    run = lf.active_run()
    assert run is not None and run.info.experiment_id == "0"
    lf.end_run("KILLED")
    events = read_events(lf_home)
    created, = of_type(events, "ExperimentCreated")
    assert (created.body["experiment_id"], created.body["name"]) == ("0", "Default")
    assert of_type(events, "RunStatusChanged")[0].body["status"] == "KILLED"
    lf.end_run()  # no active run: nothing happens


def test_experiment_created_once_and_resume_run(lf_home: Path) -> None:
    lf.set_experiment("exp")
    lf.set_experiment("exp")
    with lf.start_run() as run:
        pass
    with lf.start_run(run_id=run.info.run_id):
        lf.log_metric("m", 2.0)
    events = read_events(lf_home)
    assert len(of_type(events, "ExperimentCreated")) == 1
    assert len(of_type(events, "RunStarted")) == 1
    assert [e.body["status"] for e in of_type(events, "RunStatusChanged")] == ["FINISHED", "RUNNING", "FINISHED"]
    assert metric_points(events, run.info.run_id)["m"][0][2] == 2.0


def test_inputs_and_artifacts(lf_home: Path, tmp_path: Path) -> None:
    class MlflowLikeDataset:  # duck-typed like an mlflow.data Dataset entity
        name, digest, source_type, source = "iris", "d1g3st", "s3", '{"uri": "s3://bucket/iris.csv"}'
        schema, profile = '{"cols": 4}', '{"rows": 150}'

    model = tmp_path / "model.bin"
    model.write_bytes(b"\x00weights" * 1000)
    folder = tmp_path / "plots"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.png").write_bytes(b"png")
    (folder / "sub" / "b.png").write_bytes(b"png2")
    with lf.start_run() as run:
        lf.log_input(lf.Dataset("train", "abc123", {"path": "/data/train"}), context="training", tags={"k": "v"})
        lf.log_input(MlflowLikeDataset())
        lf.log_artifact(model)
        lf.log_artifact(str(model), artifact_path="models/best")
        lf.log_artifact(folder)
    events = read_events(lf_home)
    first, second = (e.body for e in of_type(events, "DatasetInputLogged"))
    assert first["dataset"] == {"name": "train", "digest": "abc123", "source_type": "local",
                                "source": '{"path": "/data/train"}', "schema": None, "profile": None}
    assert first["context"] == "training" and first["tags"] == [{"key": "k", "value": "v"}]
    assert second["dataset"]["profile"] == '{"rows": 150}' and second["dataset"]["source_type"] == "s3"
    artifacts = {e.body["path"]: e.body for e in of_type(events, "ArtifactLogged")}
    assert set(artifacts) == {"model.bin", "models/best/model.bin", "plots/a.png", "plots/sub/b.png"}
    root = lf_home.absolute() / "artifacts" / run.info.experiment_id / run.info.run_id / "artifacts"
    for path, body in artifacts.items():
        stored = root / path
        assert body["uri"] == stored.as_uri() and stored.read_bytes() == (
            model.read_bytes() if path.endswith("model.bin") else stored.read_bytes())
        assert body["size"] == stored.stat().st_size
        assert body["sha256"] == hashlib.sha256(stored.read_bytes()).hexdigest()
    assert (root / "models/best/model.bin").read_bytes() == model.read_bytes()


def test_event_order_and_sequences(lf_home: Path) -> None:
    lf.set_experiment("order")
    with lf.start_run() as outer:
        lf.log_metric("a", 1.0)
        lf.log_param("p", 1)
        lf.log_metric("a", 2.0, step=1)
        with lf.start_run(nested=True) as inner:
            lf.log_metric("b", 3.0)
    events = read_events(lf_home)
    assert [e.envelope["sequence"] for e in events] == list(range(len(events)))
    assert len({e.envelope["producer_id"] for e in events}) == 1
    assert [e.type for e in events] == [
        "ExperimentCreated", "RunStarted", "MetricsLogged", "ParamsLogged", "MetricsLogged", "RunStarted",
        "MetricsLogged", "RunStatusChanged", "RunStatusChanged"]
    assert events[0].entity_key.startswith("experiment/")
    assert events[6].entity_key == f"run/{inner.info.run_id}" and events[-1].entity_key == f"run/{outer.info.run_id}"


def test_tracking_uris(data_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ledgerflow.ingest.sdk import fluent

    fluent._reset_for_tests()
    assert lf.get_tracking_uri() == f"file:{data_home.absolute()}"
    monkeypatch.setenv("LEDGERFLOW_TRACKING_URI", "file:/elsewhere")
    assert lf.get_tracking_uri() == "file:/elsewhere"
    for uri in ("http://localhost:5000/", "https://tracking.example"):
        lf.set_tracking_uri(uri)
        assert lf.get_tracking_uri() == uri.rstrip("/")
    fluent._reset_for_tests()
    with pytest.raises(ConfigurationError, match="unsupported tracking URI"):
        lf.set_tracking_uri("s3://bucket")
    lf.set_tracking_uri(data_home / "other")
    assert lf.get_tracking_uri() == f"file:{(data_home / 'other').absolute()}"
    fluent._reset_for_tests()


def test_actor_from_environment(lf_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ledgerflow.ingest.sdk import fluent

    fluent._reset_for_tests()
    monkeypatch.setenv("LEDGERFLOW_ACTOR", "ci-bot")
    lf.set_tracking_uri(f"file:{lf_home}")
    with lf.start_run() as run:
        pass
    assert run.info.user_id == "ci-bot"
    assert {e.envelope["actor"] for e in read_events(lf_home)} == {"ci-bot"}
