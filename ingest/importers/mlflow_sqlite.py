"""Reading MLflow's SQL schema from a sqlite file with the standard library, read-only.

The tables are MLflow's (``experiments``, ``runs``, ``metrics``, ``model_versions`` ...; checked against
a database made by mlflow 3.17). Columns that older MLflow versions lack are read as NULL, and only
the ``default`` workspace is imported (MLflow 3's workspaces are off unless configured).
"""

from __future__ import annotations

import itertools
import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ledgerflow.ingest.importers import local_artifacts
from ledgerflow.ingest.importers.errors import SourceError, SourceReadError
from ledgerflow.ingest.importers.records import (
    ArtifactFile,
    DatasetInputRecord,
    ExperimentRecord,
    LoggedModelRecord,
    MetricHistory,
    ModelVersionRecord,
    RegisteredModelRecord,
    RunOutput,
    RunRecord,
)
from ledgerflow.ingest.importers.source import MlflowSource

REQUIRED_TABLES = ("experiments", "runs", "params", "tags", "metrics")
DEFAULT_WORKSPACE = "default"
_RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
#: logged_models.status holds the number of MLflow's LoggedModelStatus enum
_LOGGED_MODEL_STATUSES = {1: "PENDING", 2: "READY", 3: "UPLOAD_FAILED"}


class SqliteSource(MlflowSource):
    """An MLflow tracking database in a sqlite file (``sqlite:///path/mlflow.db``)."""

    def __init__(self, path: Path, description: str, *, proxied_artifact_root: Path | None = None) -> None:
        self.description = description
        self.proxied_artifact_root = proxied_artifact_root
        if not path.is_file():
            raise SourceError(f"{description}: no such file {path}")
        try:
            self._db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
            tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as e:
            raise SourceError(f"{description}: {path} is not a readable sqlite database: {e}") from None
        missing = [t for t in REQUIRED_TABLES if t not in tables]
        if missing:
            self._db.close()
            raise SourceError(f"{description}: {path} is not an MLflow tracking database "
                              f"(no {', '.join(missing)} table{'s' if len(missing) > 1 else ''})")
        self._tables = tables
        self._columns = {t: {row[1] for row in self._db.execute(f'PRAGMA table_info("{t}")')} for t in tables}

    def close(self) -> None:
        self._db.close()

    # ---- helpers ------------------------------------------------------------------------------

    def _query(self, sql: str, parameters: tuple = ()) -> list[dict[str, Any]]:
        try:
            cursor = self._db.execute(sql, parameters)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except sqlite3.Error as e:
            raise SourceReadError(f"{self.description}: reading failed: {e} (query: {sql.split()[0:6]})") from e

    def _column(self, table: str, column: str, alias: str | None = None) -> str:
        """``column`` if the table has it (older MLflow schemas lack some), else NULL under the same name."""
        name = alias or column
        return f'"{column}" AS "{name}"' if column in self._columns.get(table, ()) else f'NULL AS "{name}"'

    def _workspace_filter(self, table: str) -> str:
        return f" AND workspace = '{DEFAULT_WORKSPACE}'" if "workspace" in self._columns.get(table, ()) else ""

    # ---- tracking -----------------------------------------------------------------------------

    def experiments(self) -> list[ExperimentRecord]:
        tags: dict[str, dict[str, str]] = {}
        if "experiment_tags" in self._tables:
            for row in self._query('SELECT experiment_id, "key", value FROM experiment_tags ORDER BY experiment_id, "key"'):
                tags.setdefault(str(row["experiment_id"]), {})[row["key"]] = row["value"] or ""
        rows = self._query(
            "SELECT experiment_id, name, artifact_location, lifecycle_stage, "
            f"{self._column('experiments', 'creation_time')}, {self._column('experiments', 'last_update_time')} "
            f"FROM experiments WHERE 1 = 1{self._workspace_filter('experiments')} ORDER BY experiment_id")
        return [ExperimentRecord(experiment_id=str(r["experiment_id"]), name=r["name"],
                                 artifact_location=r["artifact_location"], lifecycle_stage=r["lifecycle_stage"] or "active",
                                 creation_time=r["creation_time"], last_update_time=r["last_update_time"],
                                 tags=tags.get(str(r["experiment_id"]), {})) for r in rows]

    def _experiment_ids(self) -> set[str]:
        return {e.experiment_id for e in self.experiments()}

    def run_ids(self) -> list[str]:
        experiments = self._experiment_ids()
        return [r["run_uuid"] for r in self._query("SELECT run_uuid, experiment_id FROM runs ORDER BY run_uuid")
                if str(r["experiment_id"]) in experiments]

    def runs(self) -> Iterator[RunRecord]:
        experiments = self._experiment_ids()
        rows = self._query(
            "SELECT run_uuid, experiment_id, user_id, status, start_time, end_time, lifecycle_stage, artifact_uri, "
            f"{self._column('runs', 'name')}, {self._column('runs', 'deleted_time')} "
            "FROM runs ORDER BY experiment_id, start_time, run_uuid")
        for row in rows:
            if str(row["experiment_id"]) in experiments:
                yield self._run(row)

    def _run(self, row: dict[str, Any]) -> RunRecord:
        run_id = row["run_uuid"]
        tags = {r["key"]: r["value"] or "" for r in
                self._query('SELECT "key", value FROM tags WHERE run_uuid = ? ORDER BY "key"', (run_id,))}
        params = {r["key"]: r["value"] for r in
                  self._query('SELECT "key", value FROM params WHERE run_uuid = ? ORDER BY "key"', (run_id,))}
        metrics = self._metrics(run_id)
        status = row["status"] if row["status"] in _RUN_STATUSES else "RUNNING"
        return RunRecord(run_id=run_id, experiment_id=str(row["experiment_id"]),
                         run_name=row["name"] or tags.get("mlflow.runName", ""), user_id=row["user_id"] or "",
                         status=status, start_time=int(row["start_time"] or 0), end_time=row["end_time"],
                         lifecycle_stage=row["lifecycle_stage"] or "active", artifact_uri=row["artifact_uri"],
                         deleted_time=row["deleted_time"], params=params, tags=tags, inputs=self._inputs(run_id),
                         metrics=metrics, outputs=self._outputs(run_id))

    def _metrics(self, run_id: str) -> dict[str, MetricHistory]:
        """Columns built straight from the rows, in (timestamp, step, value) order per key, NaN restored."""
        try:
            rows = self._db.execute(
                'SELECT "key", step, timestamp, value, is_nan FROM metrics WHERE run_uuid = ? '
                'ORDER BY "key", timestamp, step, is_nan, value', (run_id,)).fetchall()
        except sqlite3.Error as e:
            raise SourceReadError(f"{self.description}: reading the metrics of run {run_id} failed: {e}") from e
        metrics: dict[str, MetricHistory] = {}
        for key, group in itertools.groupby(rows, key=lambda row: row[0]):
            _, steps, timestamps, values, nans = zip(*group, strict=True)
            if any(nans):  # MLflow stores NaN as 0 with is_nan set
                values = tuple(math.nan if nan else value for value, nan in zip(values, nans, strict=True))
            metrics[key] = MetricHistory([s or 0 for s in steps], list(timestamps), [float(v) for v in values])
        return metrics

    def _outputs(self, run_id: str) -> list[RunOutput]:
        if "inputs" not in self._tables:
            return []
        rows = self._query("SELECT destination_id, step FROM inputs WHERE source_type = 'RUN_OUTPUT' AND source_id = ? "
                           "AND destination_type = 'MODEL_OUTPUT' ORDER BY destination_id, step", (run_id,))
        return [RunOutput(r["destination_id"], int(r["step"] or 0)) for r in rows]

    def _inputs(self, run_id: str) -> list[DatasetInputRecord]:
        if not {"inputs", "datasets"} <= self._tables:
            return []
        rows = self._query(
            "SELECT i.input_uuid, d.name, d.digest, d.dataset_source_type, d.dataset_source, "
            f"{self._column('datasets', 'dataset_schema')}, {self._column('datasets', 'dataset_profile')} "
            "FROM inputs i JOIN datasets d ON d.dataset_uuid = i.source_id "
            "WHERE i.destination_type = 'RUN' AND i.destination_id = ? AND i.source_type = 'DATASET' "
            "ORDER BY d.name, d.digest, i.input_uuid", (run_id,))
        records = []
        for r in rows:
            tags = {}
            if "input_tags" in self._tables:
                tags = {t["name"]: t["value"] for t in self._query(
                    "SELECT name, value FROM input_tags WHERE input_uuid = ? ORDER BY name", (r["input_uuid"],))}
            records.append(DatasetInputRecord(name=r["name"], digest=r["digest"], source_type=r["dataset_source_type"],
                                              source=r["dataset_source"], schema=r["dataset_schema"],
                                              profile=r["dataset_profile"], tags=tags))
        return records

    # ---- logged models (MLflow 3) -------------------------------------------------------------

    def logged_models(self) -> list[LoggedModelRecord]:
        if "logged_models" not in self._tables:
            return []
        experiments = self._experiment_ids()
        records = []
        for m in self._query("SELECT model_id, experiment_id, name, artifact_location, creation_timestamp_ms, "
                             "last_updated_timestamp_ms, status, lifecycle_stage, model_type, source_run_id, "
                             "status_message FROM logged_models ORDER BY creation_timestamp_ms, model_id"):
            if str(m["experiment_id"]) not in experiments:
                continue
            model_id = m["model_id"]
            params = {r["param_key"]: r["param_value"] for r in self._query(
                "SELECT param_key, param_value FROM logged_model_params WHERE model_id = ? ORDER BY param_key",
                (model_id,))} if "logged_model_params" in self._tables else {}
            tags = {r["tag_key"]: r["tag_value"] for r in self._query(
                "SELECT tag_key, tag_value FROM logged_model_tags WHERE model_id = ? ORDER BY tag_key",
                (model_id,))} if "logged_model_tags" in self._tables else {}
            records.append(LoggedModelRecord(
                model_id=model_id, experiment_id=str(m["experiment_id"]), name=m["name"],
                artifact_location=m["artifact_location"], creation_time=m["creation_timestamp_ms"],
                last_updated_time=m["last_updated_timestamp_ms"],
                status=_LOGGED_MODEL_STATUSES.get(m["status"], "PENDING"), status_message=m["status_message"],
                lifecycle_stage=m["lifecycle_stage"] or "active", model_type=m["model_type"],
                source_run_id=m["source_run_id"], params=params, tags=tags))
        return records

    def logged_model_files(self, model: LoggedModelRecord) -> Iterator[ArtifactFile]:
        return local_artifacts.walk(local_artifacts.local_root(model.artifact_location, self.proxied_artifact_root))

    # ---- registry -----------------------------------------------------------------------------

    def registered_models(self) -> list[RegisteredModelRecord]:
        if "registered_models" not in self._tables:
            return []
        models = []
        for m in self._query("SELECT name, creation_time, last_updated_time, description FROM registered_models "
                             f"WHERE 1 = 1{self._workspace_filter('registered_models')} ORDER BY name"):
            name = m["name"]
            models.append(RegisteredModelRecord(
                name=name, creation_time=m["creation_time"], last_updated_time=m["last_updated_time"],
                description=m["description"], tags=self._pairs("registered_model_tags", name),
                versions=tuple(self._versions(name)), aliases=self._aliases(name)))
        return models

    def _pairs(self, table: str, name: str, version: int | None = None) -> dict[str, str]:
        if table not in self._tables:
            return {}
        sql = f'SELECT "key", value FROM {table} WHERE name = ?{self._workspace_filter(table)}'
        parameters: tuple = (name,)
        if version is not None:
            sql, parameters = sql + " AND version = ?", (name, version)
        return {r["key"]: r["value"] or "" for r in self._query(sql + ' ORDER BY "key"', parameters)}

    def _versions(self, name: str) -> Iterator[ModelVersionRecord]:
        if "model_versions" not in self._tables:
            return
        rows = self._query(
            "SELECT version, creation_time, last_updated_time, description, current_stage, source, run_id, "
            f"{self._column('model_versions', 'storage_location')}, {self._column('model_versions', 'run_link')}, "
            f"{self._column('model_versions', 'model_id')} FROM model_versions "
            f"WHERE name = ?{self._workspace_filter('model_versions')} ORDER BY version", (name,))
        for v in rows:
            yield ModelVersionRecord(version=int(v["version"]), creation_time=v["creation_time"],
                                     last_updated_time=v["last_updated_time"], description=v["description"],
                                     stage=v["current_stage"] or "None", source=v["source"], run_id=v["run_id"],
                                     storage_location=v["storage_location"], run_link=v["run_link"] or None,
                                     model_id=v["model_id"],
                                     tags=self._pairs("model_version_tags", name, int(v["version"])))

    def _aliases(self, name: str) -> dict[str, int]:
        if "registered_model_aliases" not in self._tables:
            return {}
        rows = self._query("SELECT alias, version FROM registered_model_aliases "
                           f"WHERE name = ?{self._workspace_filter('registered_model_aliases')} ORDER BY alias", (name,))
        return {r["alias"]: int(r["version"]) for r in rows}

    # ---- artifacts ----------------------------------------------------------------------------

    def artifact_files(self, run: RunRecord) -> Iterator[ArtifactFile]:
        return local_artifacts.walk(local_artifacts.local_root(run.artifact_uri, self.proxied_artifact_root))

    def copy_artifact(self, file: ArtifactFile, destination: Path) -> tuple[int, str]:
        return local_artifacts.copy(file, destination)

    def hash_artifact(self, file: ArtifactFile) -> str:
        return local_artifacts.sha256_of(file.location)
