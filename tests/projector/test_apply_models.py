"""The pure handlers of MLflow 3 logged models, run outputs and the registry rules they added."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ledgerflow.projector.effects import Rejected
from ledgerflow.projector.handlers import apply
from ledgerflow.projector.memory_state import MemoryState

from .workload import DAY3, Workload, run_id, standard_workload

MODEL = "m-" + "a" * 32


def _applied(workload: Workload) -> MemoryState:
    state = MemoryState()
    for event in workload.events:
        state.observe(apply(event, state))
    return state


def _logged_model_workload() -> Workload:
    w = standard_workload(points_per_run=10)
    w.event("LoggedModelCreated", DAY3, f"model/{MODEL}", model_id=MODEL, experiment_id="exp-0", name="model",
            artifact_location=f"mlflow-artifacts:/exp-0/models/{MODEL}/artifacts", model_type=None,
            source_run_id=run_id(0), params=[{"key": "lr", "value": "0.1"}], tags=[{"key": "team", "value": "ml"}])
    w.event("RunOutputsLogged", DAY3, f"run/{run_id(0)}", run_id=run_id(0), models=[{"model_id": MODEL, "step": 3}])
    w.event("LoggedModelFinalized", DAY3 + timedelta(minutes=1), f"model/{MODEL}", model_id=MODEL, status="READY", status_message=None)
    w.event("LoggedModelTagsSet", DAY3, f"model/{MODEL}", model_id=MODEL, tags=[{"key": "team", "value": "risk"}])
    w.event("LoggedModelParamsLogged", DAY3, f"model/{MODEL}", model_id=MODEL,
            params=[{"key": "lr", "value": "0.1"}, {"key": "depth", "value": "3"}])
    return w


def test_a_logged_model_is_created_finalized_tagged_and_linked_to_its_run() -> None:
    workload = _logged_model_workload()
    state = _applied(workload)
    model = state.row("logged_models", (MODEL,))
    assert (model["status"], model["lifecycle_stage"], model["source_run_id"]) == ("READY", "active", run_id(0))
    assert model["last_updated_time"] > model["creation_time"]
    assert state.row("logged_model_tags", (MODEL, "team"))["value"] == "risk"
    assert {r["key"]: r["value"] for r in state.rows("logged_model_params", (MODEL,))} == {"lr": "0.1", "depth": "3"}
    assert state.row("run_outputs", (run_id(0), MODEL, 3)) is not None
    edges = [(e["source_id"], e["target_id"], e["relation"]) for e in state.appended["lineage"]
             if e["target_type"] == "logged_model"]
    assert edges == [(run_id(0), MODEL, "produced"), (run_id(0), MODEL, "output")]


@pytest.mark.parametrize(("event_type", "fields", "reason"), [
    ("LoggedModelCreated", dict(model_id=MODEL, experiment_id="exp-0", name="again", artifact_location="x",
                                model_type=None, source_run_id=None, params=[], tags=[]), "already exists"),
    ("LoggedModelFinalized", dict(model_id="m-ghost", status="READY", status_message=None), "does not exist"),
    ("LoggedModelTagDeleted", dict(model_id=MODEL, key="never"), "has no tag 'never'"),
    ("LoggedModelParamsLogged", dict(model_id=MODEL, params=[{"key": "lr", "value": "0.2"}]), "immutable"),
    ("LoggedModelParamsLogged", dict(model_id=MODEL, params=[{"key": "x", "value": "1"}, {"key": "x", "value": "2"}]),
     "immutable"),
    ("LoggedModelDeleted", dict(model_id="m-ghost"), "does not exist"),
])
def test_logged_model_events_that_contradict_the_state_are_rejected(event_type: str, fields: dict, reason: str) -> None:
    workload = _logged_model_workload()
    state = _applied(workload)
    event = workload.event(event_type, DAY3 + timedelta(hours=1), f"model/{fields['model_id']}", **fields)
    with pytest.raises(Rejected, match=reason):
        apply(event, state)


def test_run_outputs_need_an_active_run_but_not_a_known_model() -> None:
    workload = _logged_model_workload()
    state = _applied(workload)
    unknown_model = workload.event("RunOutputsLogged", DAY3, f"run/{run_id(0)}", run_id=run_id(0),
                                   models=[{"model_id": "m-from-elsewhere", "step": 0}])
    assert apply(unknown_model, state)  # keyed model/<id>: recorded, never checked (docs/consistency.md)
    deleted_run = workload.event("RunOutputsLogged", DAY3, f"run/{run_id(1)}", run_id=run_id(1),
                                 models=[{"model_id": MODEL, "step": 0}])
    with pytest.raises(Rejected, match="is deleted"):
        apply(deleted_run, state)


def test_a_version_registered_from_a_logged_model_keeps_the_link() -> None:
    workload = _logged_model_workload()
    workload.event("ModelVersionCreated", DAY3, "registry", name="churn-model-0", version=3,
                   source=f"models:/{MODEL}", run_id=run_id(0), artifact_uri="mlflow-artifacts:/x", signature=None,
                   description="", tags=[], model_id=MODEL, run_link=None)
    state = _applied(workload)
    assert state.row("model_versions", ("churn-model-0", 3))["model_id"] == MODEL
    assert state.row("model_versions", ("churn-model-0", 1))["model_id"] is None  # a v1 event has none
    edges = [(e["source_type"], e["source_id"], e["relation"]) for e in state.appended["lineage"]
             if e["target_id"] == "churn-model-0/3"]
    assert edges == [("run", run_id(0), "produced"), ("logged_model", MODEL, "registered_as")]


def test_a_model_created_again_after_deletion_starts_without_the_old_versions() -> None:
    workload = standard_workload(points_per_run=10)
    workload.event("ModelVersionTagSet", DAY3, "registry", name="churn-model-0", version=1, key="k", value="v")
    workload.event("RegisteredModelDeleted", DAY3, "registry", name="churn-model-0")
    workload.event("RegisteredModelCreated", DAY3, "registry", name="churn-model-0", description=None, tags=[])
    state = _applied(workload)
    assert state.rows("model_versions", ("churn-model-0",)) == []
    assert state.rows("model_version_tags", ("churn-model-0",)) == []
    assert state.row("registered_models", ("churn-model-0",))["lifecycle_stage"] == "active"


def test_renaming_onto_a_deleted_name_drops_the_deleted_models_leftovers() -> None:
    workload = standard_workload(points_per_run=10)
    workload.event("RegisteredModelCreated", DAY3, "registry", name="old", description=None,
                   tags=[{"key": "stale", "value": "yes"}])
    workload.event("ModelVersionCreated", DAY3, "registry", name="old", version=7, source="s3://b/m", run_id=None,
                   artifact_uri=None, signature=None, description=None, tags=[])
    workload.event("RegisteredModelDeleted", DAY3, "registry", name="old")
    workload.event("RegisteredModelRenamed", DAY3, "registry", name="churn-model-0", new_name="old")
    state = _applied(workload)
    assert state.row("registered_model_tags", ("old", "stale")) is None
    assert [v["version"] for v in state.rows("model_versions", ("old",))] == [1, 2]
    renamed = state.row("model_versions", ("old", 1))
    assert renamed["last_updated_time"] == state.row("registered_models", ("old",))["last_updated_time"]


def test_deleting_a_version_and_changing_a_stage_touch_the_model() -> None:
    workload = standard_workload(points_per_run=10)
    state = _applied(workload)
    before = state.row("registered_models", ("churn-model-0",))["last_updated_time"]
    for hours, event_type, fields in ((2, "ModelVersionStageChanged", dict(version=1, stage="STAGING",
                                                                         archive_existing_versions=False)),
                                      (3, "ModelVersionDeleted", dict(version=1))):
        event = workload.event(event_type, DAY3 + timedelta(hours=hours), "registry", name="churn-model-0", **fields)
        state.observe(apply(event, state))
        touched = state.row("registered_models", ("churn-model-0",))["last_updated_time"]
        assert touched > before
        before = touched
