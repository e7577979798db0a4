"""A real MLflow history made with the mlflow package, and an entity-by-entity comparison with a projection.

``build_history`` drives MlflowClient against any tracking URI (sqlite, file store) the way a team's
month of work would; ``assert_same_history`` reads the same store back through MlflowClient and
compares every experiment, run, param, tag, metric point, input, artifact, model, version and
alias with what the projector made of the imported events.
"""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

LONG_SERIES_POINTS = 12_345  # more than one MetricsLogged event holds (10,000)
BASE_TIME = 1_760_000_000_000  # ms; fixed so start/end times are distinguishable from "now"
#: MLflow's LoggedModelStatus names -> ledgerflow's (the wire enum says UPLOAD_FAILED)
LOGGED_MODEL_STATUS = {"PENDING": "PENDING", "READY": "READY", "FAILED": "UPLOAD_FAILED"}


@dataclass
class History:
    """Ids of what build_history made, for the assertions."""

    experiments: dict[str, str] = field(default_factory=dict)  # name -> id
    runs: dict[str, str] = field(default_factory=dict)  # label -> run id
    deleted_versions: set[int] = field(default_factory=set)
    logged_models: dict[str, str] = field(default_factory=dict)  # label -> model id


def ledgerflow_cli() -> str:
    script = Path(sys.executable).parent / "ledgerflow"
    assert script.exists(), f"no ledgerflow console script next to {sys.executable}: is the package installed?"
    return str(script)


def run_cli(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``ledgerflow ARGUMENTS`` as a user types it."""
    return subprocess.run([ledgerflow_cli(), *arguments], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


@contextmanager
def working_directory(path: Path):
    """MLflow puts default artifact roots under ./mlruns of the current directory: keep them in ``path``."""
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def build_history(tracking_uri: str, workdir: Path) -> History:
    """Experiments (one renamed, one deleted), runs (nested, failed, killed, deleted), params, tags, metric
    histories (steps, NaN, +/-inf, a series longer than one event), a dataset input, artifacts, and a
    registry with versions, tags, a stage, an alias and a deleted version."""
    from mlflow import MlflowClient
    from mlflow.entities import Dataset, DatasetInput, InputTag, LoggedModelOutput, LoggedModelStatus, Metric, Param

    history = History()
    with working_directory(workdir):
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        vision = client.create_experiment("vision", tags={"team": "cv", "owner": "ana"})
        scratch = client.create_experiment("scratch", tags={"temporary": "yes"})
        renamed = client.create_experiment("nlp-old")
        client.rename_experiment(renamed, "nlp")
        history.experiments = {"vision": vision, "scratch": scratch, "nlp": renamed}

        parent = client.create_run(vision, start_time=BASE_TIME, run_name="baseline",
                                   tags={"team": "cv", "mlflow.note.content": "first try"})
        parent_id = parent.info.run_id
        client.log_batch(parent_id, params=[Param("lr", "0.01"), Param("optimizer", "adam"), Param("batch_size", "64")])
        client.log_batch(parent_id, metrics=[Metric("loss", 1.0 / (step + 1), BASE_TIME + step * 10, step)
                                             for step in range(100)])
        client.log_batch(parent_id, metrics=[Metric("odd", math.nan, BASE_TIME + 1, 0),
                                             Metric("odd", math.inf, BASE_TIME + 2, 1),
                                             Metric("odd", -math.inf, BASE_TIME + 3, 2),
                                             Metric("odd", 0.5, BASE_TIME + 4, 2)])
        for start in range(0, LONG_SERIES_POINTS, 1000):
            client.log_batch(parent_id, metrics=[Metric("lr_schedule", 0.1 * 0.999 ** step, BASE_TIME + step, step)
                                                 for step in range(start, min(start + 1000, LONG_SERIES_POINTS))])
        client.set_tag(parent_id, "stage", "tuning")
        client.log_inputs(parent_id, datasets=[DatasetInput(
            Dataset(name="churn-train", digest="a1b2c3d4", source_type="local", source='{"uri": "/data/train.csv"}',
                    schema='{"mlflow_colspec": [{"type": "double", "name": "x"}]}', profile='{"num_rows": 1000}'),
            tags=[InputTag("mlflow.data.context", "training")])])
        classifier = client.create_logged_model(vision, name="classifier", source_run_id=parent_id,
                                                params={"depth": "3"}, tags={"framework": "sklearn"},
                                                model_type="Classifier")
        client.finalize_logged_model(classifier.model_id, LoggedModelStatus.READY)
        client.log_outputs(parent_id, [LoggedModelOutput(classifier.model_id, step=99)])
        abandoned = client.create_logged_model(vision, name="abandoned", source_run_id=parent_id)
        client.finalize_logged_model(abandoned.model_id, LoggedModelStatus.FAILED)
        history.logged_models = {"classifier": classifier.model_id, "abandoned": abandoned.model_id}
        client.log_text(parent_id, "what we tried and why\n", "notes/readme.txt")
        client.log_dict(parent_id, {"layers": [64, 32], "dropout": 0.1}, "config/model.json")
        client.set_terminated(parent_id, "FINISHED", end_time=BASE_TIME + 60_000)

        child = client.create_run(vision, start_time=BASE_TIME + 1000, run_name="fold-1",
                                  tags={"mlflow.parentRunId": parent_id})
        client.log_metric(child.info.run_id, "val_accuracy", 0.91, timestamp=BASE_TIME + 2000, step=3)
        client.log_param(child.info.run_id, "fold", "1")
        client.set_terminated(child.info.run_id, "FINISHED", end_time=BASE_TIME + 3000)

        failed = client.create_run(vision, start_time=BASE_TIME + 5000, run_name="oom")
        client.log_metric(failed.info.run_id, "loss", 2.5, timestamp=BASE_TIME + 5001, step=0)
        client.set_terminated(failed.info.run_id, "FAILED", end_time=BASE_TIME + 6000)

        killed = client.create_run(renamed, start_time=BASE_TIME + 7000, run_name="stopped")
        client.set_terminated(killed.info.run_id, "KILLED", end_time=BASE_TIME + 8000)

        running = client.create_run(renamed, start_time=BASE_TIME + 9000, run_name="still-going")
        client.set_tag(running.info.run_id, "note", "x" * 5000)

        deleted = client.create_run(vision, start_time=BASE_TIME + 10_000, run_name="mistake")
        client.log_param(deleted.info.run_id, "lr", "10")
        client.log_metric(deleted.info.run_id, "loss", 99.0, timestamp=BASE_TIME + 10_001, step=0)
        client.delete_run(deleted.info.run_id)

        in_scratch = client.create_run(scratch, start_time=BASE_TIME + 11_000, run_name="throwaway")
        client.set_terminated(in_scratch.info.run_id, "FINISHED", end_time=BASE_TIME + 11_500)
        client.delete_experiment(scratch)

        history.runs = {"parent": parent_id, "child": child.info.run_id, "failed": failed.info.run_id,
                        "killed": killed.info.run_id, "running": running.info.run_id,
                        "deleted": deleted.info.run_id, "in_scratch": in_scratch.info.run_id}

        client.create_registered_model("churn", tags={"domain": "retention"}, description="predicts churn")
        source = f"runs:/{parent_id}/model"
        client.create_model_version("churn", source, run_id=parent_id, tags={"validated": "yes"}, description="first")
        client.create_model_version("churn", source, run_id=parent_id)
        client.create_model_version("churn", source, run_id=parent_id, description="bad one")
        client.transition_model_version_stage("churn", "1", "Production")
        client.transition_model_version_stage("churn", "2", "Staging")
        client.set_registered_model_alias("churn", "champion", "2")
        client.set_model_version_tag("churn", "2", "reviewed_by", "bo")
        client.delete_model_version("churn", "3")
        history.deleted_versions = {3}
        client.update_registered_model("churn", description="predicts churn within 30 days")
        client.create_registered_model("empty-model")
        client.set_registered_model_tag("empty-model", "status", "placeholder")
    return history


# ---- reading the projection ------------------------------------------------------------------------

def _same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _point(step: int, timestamp: int, value: float) -> tuple[int, int, Any]:
    return (step, timestamp, "NaN" if math.isnan(value) else value)


class Projection:
    """Read-only queries over a projected DuckDB file."""

    def __init__(self, path: Path) -> None:
        self.db = duckdb.connect(str(path), read_only=True)

    def close(self) -> None:
        self.db.close()

    def rows(self, sql: str, *parameters: Any) -> list[dict[str, Any]]:
        cursor = self.db.execute(sql, list(parameters))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def pairs(self, table: str, where: str, *parameters: Any) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self.rows(f"SELECT key, value FROM {table} WHERE {where}", *parameters)}

    def dead_letters(self) -> list[dict[str, Any]]:
        return self.rows("SELECT reason FROM dead_letters")


def assert_same_history(client: Any, projection: Projection, *, deleted_versions: set[int] | None = None,
                        check_artifact_hashes: bool = True, copied_artifacts: bool = False) -> dict[str, int]:
    """Compare everything MlflowClient reads from the source store with the projection; returns what was compared.

    ``copied_artifacts``: the import ran with --copy-artifacts, so experiments and runs point at the
    ledgerflow artifact store (mlflow-artifacts:/<experiment>/<run>/artifacts) instead of MLflow's locations.
    """
    from mlflow.entities import ViewType

    compared = {"experiments": 0, "runs": 0, "metric points": 0, "artifacts": 0, "versions": 0, "logged models": 0}
    experiments = client.search_experiments(view_type=ViewType.ALL, max_results=1000)
    assert len(projection.rows("SELECT experiment_id FROM experiments")) == len(experiments)
    for experiment in experiments:
        [row] = projection.rows("SELECT * FROM experiments WHERE experiment_id = ?", experiment.experiment_id)
        location = f"mlflow-artifacts:/{experiment.experiment_id}" if copied_artifacts else experiment.artifact_location
        assert (row["name"], row["artifact_location"], row["lifecycle_stage"], row["creation_time"],
                row["last_update_time"]) == (experiment.name, location, experiment.lifecycle_stage,
                                             experiment.creation_time, experiment.last_update_time), experiment
        assert projection.pairs("experiment_tags", "experiment_id = ?", experiment.experiment_id) == experiment.tags
        compared["experiments"] += 1

    runs = client.search_runs([e.experiment_id for e in experiments], run_view_type=ViewType.ALL, max_results=50_000)
    assert len(projection.rows("SELECT run_id FROM runs")) == len(runs)
    for run in runs:
        info, run_id = run.info, run.info.run_id
        [row] = projection.rows("SELECT * FROM runs WHERE run_id = ?", run_id)
        artifact_uri = (f"mlflow-artifacts:/{info.experiment_id}/{run_id}/artifacts" if copied_artifacts
                        else info.artifact_uri)
        assert (row["experiment_id"], row["run_name"], row["user_id"], row["status"], row["start_time"],
                row["end_time"], row["lifecycle_stage"], row["artifact_uri"]) == (
            info.experiment_id, info.run_name, info.user_id, info.status, info.start_time, info.end_time,
            info.lifecycle_stage, artifact_uri), run_id
        assert row["parent_run_id"] == run.data.tags.get("mlflow.parentRunId")
        assert projection.pairs("params", "run_id = ?", run_id) == run.data.params
        assert projection.pairs("tags", "run_id = ?", run_id) == run.data.tags
        latest = {r["key"]: r["value"] for r in projection.rows("SELECT key, value FROM latest_metrics WHERE run_id = ?",
                                                                run_id)}
        assert latest.keys() == run.data.metrics.keys()
        assert all(_same_float(latest[k], v) for k, v in run.data.metrics.items()), (latest, run.data.metrics)
        for key in run.data.metrics:
            mlflow_points = sorted(_point(m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, key))
            ours = sorted(_point(r["step"], r["timestamp"], r["value"]) for r in projection.rows(
                "SELECT step, timestamp, value FROM metrics WHERE run_id = ? AND key = ?", run_id, key))
            assert ours == mlflow_points, (run_id, key, len(ours), len(mlflow_points))
            compared["metric points"] += len(ours)
        mlflow_inputs = sorted(
            (i.dataset.name, i.dataset.digest, i.dataset.source_type, i.dataset.source, i.dataset.schema,
             i.dataset.profile, {t.key: t.value for t in i.tags}.get("mlflow.data.context", ""))
            for i in run.inputs.dataset_inputs)
        ours_inputs = sorted(tuple(r.values()) for r in projection.rows(
            "SELECT d.name, d.digest, d.source_type, d.source, d.schema, d.profile, i.context FROM run_inputs i "
            "JOIN datasets d USING (dataset_id) WHERE i.run_id = ?", run_id))
        assert ours_inputs == mlflow_inputs
        compared["artifacts"] += _assert_same_artifacts(client, projection, run_id, check_artifact_hashes)
        outputs = sorted((o.model_id, o.step) for o in run.outputs.model_outputs) if run.outputs else []
        assert sorted(tuple(r.values()) for r in projection.rows(
            "SELECT model_id, step FROM run_outputs WHERE run_id = ?", run_id)) == outputs
        compared["runs"] += 1

    for logged in client.search_logged_models([e.experiment_id for e in experiments], max_results=1000):
        [row] = projection.rows("SELECT * FROM logged_models WHERE model_id = ?", logged.model_id)
        location = (f"mlflow-artifacts:/{logged.experiment_id}/models/{logged.model_id}/artifacts" if copied_artifacts
                    else logged.artifact_location)
        assert (row["experiment_id"], row["name"], row["artifact_location"], row["model_type"] or "",
                row["source_run_id"], row["status"], row["creation_time"], row["last_updated_time"]) == (
            logged.experiment_id, logged.name, location, logged.model_type or "", logged.source_run_id,
            LOGGED_MODEL_STATUS[str(logged.status)],
            logged.creation_timestamp, logged.last_updated_timestamp), logged.model_id
        assert projection.pairs("logged_model_params", "model_id = ?", logged.model_id) == logged.params
        assert projection.pairs("logged_model_tags", "model_id = ?", logged.model_id) == logged.tags
        compared["logged models"] += 1

    models = client.search_registered_models(max_results=1000)
    assert {r["name"] for r in projection.rows("SELECT name FROM registered_models WHERE lifecycle_stage = 'active'")} \
        == {m.name for m in models}
    for model in models:
        [row] = projection.rows("SELECT * FROM registered_models WHERE name = ?", model.name)
        assert (row["description"] or "", row["creation_time"], row["last_updated_time"]) == (
            model.description or "", model.creation_timestamp, model.last_updated_timestamp), model.name
        assert projection.pairs("registered_model_tags", "name = ?", model.name) == model.tags
        aliases = {r["alias"]: r["version"] for r in projection.rows("SELECT alias, version FROM model_aliases "
                                                                     "WHERE name = ?", model.name)}
        assert aliases == {alias: int(version) for alias, version in model.aliases.items()}
        versions = client.search_model_versions(f"name = '{model.name}'")
        ours = {r["version"]: r for r in projection.rows("SELECT * FROM model_versions WHERE name = ?", model.name)}
        for version in versions:
            row = ours[int(version.version)]
            assert (row["lifecycle_stage"], row["stage"], row["description"] or "", row["source"], row["run_id"],
                    row["creation_time"], row["last_updated_time"]) == (
                "active", version.current_stage.upper(), version.description or "", version.source, version.run_id,
                version.creation_timestamp, version.last_updated_timestamp), (model.name, version.version)
            tags = projection.pairs("model_version_tags", "name = ? AND version = ?", model.name, int(version.version))
            assert tags == version.tags
            compared["versions"] += 1
        deleted = {number for number, row in ours.items() if row["lifecycle_stage"] == "deleted"}
        assert len(ours) - len(deleted) == len(versions)
        if deleted_versions is not None and model.name == "churn":
            assert deleted == deleted_versions
    return compared


def _assert_same_artifacts(client: Any, projection: Projection, run_id: str, check_hashes: bool) -> int:
    listed: dict[str, int] = {}
    pending = [None]
    while pending:
        directory = pending.pop()
        for entry in client.list_artifacts(run_id, directory):
            if entry.is_dir:
                pending.append(entry.path)
            else:
                listed[entry.path] = entry.file_size
    ours = {r["path"]: r for r in projection.rows("SELECT path, size, sha256, uri FROM artifacts WHERE run_id = ?",
                                                   run_id)}
    assert {path: r["size"] for path, r in ours.items()} == listed, run_id
    if check_hashes:
        for path, row in ours.items():
            assert row["sha256"] == hashlib.sha256(_artifact_bytes(client, run_id, path)).hexdigest(), path
    return len(listed)


def _artifact_bytes(client: Any, run_id: str, path: str) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        return Path(client.download_artifacts(run_id, path, scratch)).read_bytes()
