"""The pure core: applying events to state, without a database."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest

from ledgerflow.projector.effects import AppendMetrics, Rejected
from ledgerflow.projector.handlers import HANDLERS, apply
from ledgerflow.projector.memory_state import MemoryState
from ledgerflow.schemas import default_catalog

from .workload import DAY3, Workload, run_id, standard_workload


def _applied(workload: Workload) -> MemoryState:
    state = MemoryState()
    for event in workload.events:
        state.observe(apply(event, state))
    return state


def test_every_event_type_in_the_catalog_has_a_projection() -> None:
    assert set(default_catalog().event_types) == set(HANDLERS)


def test_the_core_does_not_import_duckdb_or_pyarrow() -> None:
    code = "import sys, ledgerflow.projector.handlers; print(sorted(m for m in ('duckdb', 'pyarrow') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_the_standard_workload_builds_the_expected_state() -> None:
    state = _applied(standard_workload())
    experiment = state.row("experiments", ("exp-0",))
    assert experiment["name"] == "churn-0-v2" and experiment["lifecycle_stage"] == "active"
    assert state.row("experiment_tags", ("exp-0", "owner"))["value"] == "ana"
    assert state.row("runs", (run_id(1),))["lifecycle_stage"] == "deleted"
    assert state.row("runs", (run_id(0),))["status"] == "FINISHED"
    assert state.row("params", (run_id(0), "lr"))["value"] == "0.1"
    assert state.row("tags", (run_id(0), "stage")) is None and state.row("tags", (run_id(2), "stage"))["value"] == "dev"
    assert state.row("model_aliases", ("churn-model-0", "champion"))["version"] == 2
    assert state.row("model_versions", ("churn-model-0", 2))["stage"] == "PRODUCTION"


def test_metrics_stay_packed_for_bulk_loading() -> None:
    workload = standard_workload(points_per_run=1000)
    state = MemoryState()
    effects = []
    for event in workload.events:
        produced = apply(event, state)
        state.observe(produced)
        effects += produced
    metrics = [e for e in effects if isinstance(e, AppendMetrics)]
    assert len(metrics) == 3 and all(len(m.series) == 2 for m in metrics)


def _setup() -> tuple[Workload, MemoryState]:
    workload = standard_workload(points_per_run=1000)
    return workload, _applied(workload)


@pytest.mark.parametrize(
    ("event_type", "entity_key", "fields", "reason"),
    [
        ("RunStarted", "experiment/exp-0", dict(run_id=run_id(0), experiment_id="exp-0", run_name="again", parent_run_id=None,
                                                start_time=1, status="RUNNING", user_id="u", artifact_uri=None, tags=[]),
         "already exists"),
        ("ParamsLogged", "experiment/exp-0", dict(run_id="0" * 32, params=[]), "does not exist"),
        ("ParamsLogged", "experiment/exp-0", dict(run_id=run_id(0), params=[{"key": "lr", "value": "9"}]), "immutable"),
        ("ParamsLogged", "experiment/exp-0", dict(run_id=run_id(1), params=[{"key": "x", "value": "1"}]), "is deleted"),
        ("RunTagDeleted", "experiment/exp-0", dict(run_id=run_id(0), key="never"), "has no tag 'never'"),
        ("RunRestored", "experiment/exp-0", dict(run_id=run_id(0)), "is not deleted"),
        ("ExperimentCreated", "experiment/exp-0", dict(experiment_id="exp-0", name="other", artifact_location=None, tags=[]),
         "already exists with name"),
        ("ExperimentRestored", "experiment/exp-0", dict(experiment_id="exp-0"), "is not deleted"),
        ("ModelVersionAliasSet", "registry", dict(name="churn-model-0", alias="x", version=9), "v9 does not exist"),
        ("ModelVersionAliasDeleted", "registry", dict(name="churn-model-0", alias="nope"), "has no alias"),
        ("ModelVersionCreated", "registry", dict(name="ghost", version=1, source="s", run_id=None, artifact_uri=None,
                                                 signature=None, description=None, tags=[]), "'ghost' does not exist"),
        ("RegisteredModelCreated", "registry", dict(name="churn-model-0", description=None, tags=[]), "already exists"),
    ],
)
def test_events_that_contradict_the_state_are_rejected_with_a_reason(event_type, entity_key, fields, reason) -> None:
    workload, state = _setup()
    event = workload.event(event_type, DAY3 + timedelta(hours=1), entity_key, **fields)
    with pytest.raises(Rejected, match=reason):
        apply(event, state)


def test_a_run_may_arrive_before_its_experiment_because_they_are_ordered_by_different_keys() -> None:
    workload, state = _setup()
    event = workload.event("RunStarted", DAY3, "run/" + "f" * 32, run_id="f" * 32, experiment_id="not-yet-seen",
                           run_name="x", parent_run_id=None, start_time=1, status="RUNNING", user_id="u",
                           artifact_uri=None, tags=[])
    (put,) = apply(event, state)
    assert put.row["experiment_id"] == "not-yet-seen"


def test_an_identical_experiment_creation_is_idempotent_and_a_same_param_value_is_fine() -> None:
    workload, state = _setup()
    again = workload.event("ExperimentCreated", DAY3, "experiment/exp-0", experiment_id="exp-0", name="churn-0-v2",
                           artifact_location=None, tags=[])
    assert apply(again, state) == []
    same = workload.event("ParamsLogged", DAY3, "experiment/exp-0", run_id=run_id(0), params=[{"key": "lr", "value": "0.1"}])
    assert apply(same, state) == []


def test_a_param_logged_twice_with_different_values_in_one_batch_is_rejected() -> None:
    workload, state = _setup()
    event = workload.event("ParamsLogged", DAY3, "experiment/exp-0", run_id=run_id(0),
                           params=[{"key": "new", "value": "1"}, {"key": "new", "value": "2"}])
    with pytest.raises(Rejected, match="immutable"):
        apply(event, state)


def test_renaming_a_model_carries_its_versions_aliases_and_tags() -> None:
    workload, state = _setup()
    workload.event("RegisteredModelTagSet", DAY3, "registry", name="churn-model-0", key="team", value="ml")
    workload.event("RegisteredModelRenamed", DAY3, "registry", name="churn-model-0", new_name="churn")
    for event in workload.events[-2:]:
        state.observe(apply(event, state))
    assert state.row("registered_models", ("churn-model-0",)) is None
    assert state.row("registered_models", ("churn",))["lifecycle_stage"] == "active"
    assert [v["version"] for v in state.rows("model_versions", ("churn",))] == [1, 2]
    assert state.row("model_aliases", ("churn", "champion"))["version"] == 2
    assert state.row("registered_model_tags", ("churn", "team"))["value"] == "ml"


def test_deleting_a_version_removes_its_aliases_and_archiving_moves_other_versions() -> None:
    workload, state = _setup()
    assert state.row("model_versions", ("churn-model-0", 1))["stage"] == "NONE"
    workload.event("ModelVersionStageChanged", DAY3, "registry", name="churn-model-0", version=1, stage="PRODUCTION",
                   archive_existing_versions=True)
    workload.event("ModelVersionDeleted", DAY3, "registry", name="churn-model-0", version=2)
    for event in workload.events[-2:]:
        state.observe(apply(event, state))
    assert state.row("model_versions", ("churn-model-0", 2))["stage"] == "ARCHIVED"
    assert state.row("model_versions", ("churn-model-0", 2))["lifecycle_stage"] == "deleted"
    assert state.row("model_aliases", ("churn-model-0", "champion")) is None


def test_the_table_reference_in_docs_is_current() -> None:
    from pathlib import Path

    from ledgerflow.projector.reference import tables_markdown

    docs = Path(__file__).resolve().parents[2] / "docs" / "tables.md"
    assert docs.read_text() == tables_markdown(), "regenerate with: ledgerflow db reference > docs/tables.md"
