"""Reading an ``mlruns`` directory: MLflow's file store, one folder per experiment and run.

Layout (as written by mlflow 3.17 with MLFLOW_ALLOW_FILE_STORE=true): ``<exp>/meta.yaml``,
``<exp>/tags/<key>``, ``<exp>/<run>/meta.yaml`` with ``params/``, ``tags/`` and ``metrics/<key>``
(one ``timestamp value step`` line per point), ``<exp>/<run>/inputs/<id>/meta.yaml`` pointing at
``<exp>/datasets/<id>/meta.yaml``; deleted experiments move to ``.trash/``; the registry lives in
``models/<name>/`` with ``version-<n>/`` folders. Keys containing ``/`` are nested folders.
"""

from __future__ import annotations

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

#: the file store writes run status as the number of MLflow's RunStatus enum
_RUN_STATUS_NUMBERS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
_LOGGED_MODEL_STATUS_NUMBERS = {1: "PENDING", 2: "READY", 3: "UPLOAD_FAILED"}
_TRASH, _MODELS = ".trash", "models"


def looks_like_mlruns(directory: Path) -> bool:
    """Whether ``directory`` holds at least one experiment folder or the registry's ``models`` folder."""
    if (directory / _MODELS).is_dir():
        return True
    return any((child / "meta.yaml").is_file() for child in directory.iterdir() if child.is_dir())


class MlrunsSource(MlflowSource):
    """An MLflow ``mlruns`` directory (``file:///path/mlruns`` or a plain path)."""

    def __init__(self, root: Path, description: str, *, proxied_artifact_root: Path | None = None) -> None:
        import yaml  # only this reader needs it

        self._yaml = yaml
        self.description = description
        self.root = root
        self.proxied_artifact_root = proxied_artifact_root
        if not root.is_dir():
            raise SourceError(f"{description}: no such directory {root}")
        if not looks_like_mlruns(root):
            raise SourceError(f"{description}: {root} is not an MLflow mlruns directory "
                              "(no experiment folder with a meta.yaml, no models folder)")

    # ---- files --------------------------------------------------------------------------------

    def _meta(self, path: Path) -> dict[str, Any]:
        try:
            data = self._yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, self._yaml.YAMLError) as e:
            raise SourceReadError(f"{self.description}: cannot read {path}: {e}") from e
        if not isinstance(data, dict):
            raise SourceReadError(f"{self.description}: {path} does not hold a mapping")
        return data

    def _values(self, directory: Path) -> dict[str, str]:
        """Key -> content of every file under ``directory`` (params and tags); nested folders make '/' keys."""
        if not directory.is_dir():
            return {}
        try:
            return {p.relative_to(directory).as_posix(): p.read_text(encoding="utf-8")
                    for p in sorted(directory.rglob("*")) if p.is_file()}
        except (OSError, UnicodeDecodeError) as e:
            raise SourceReadError(f"{self.description}: cannot read {directory}: {e}") from e

    def _experiment_folders(self) -> Iterator[Path]:
        for parent in (self.root, self.root / _TRASH):
            if parent.is_dir():
                for child in sorted(parent.iterdir()):
                    if child.is_dir() and child.name not in (_TRASH, _MODELS) and (child / "meta.yaml").is_file():
                        yield child

    # ---- tracking -----------------------------------------------------------------------------

    def experiments(self) -> list[ExperimentRecord]:
        records = []
        for folder in self._experiment_folders():
            meta = self._meta(folder / "meta.yaml")
            records.append(ExperimentRecord(
                experiment_id=str(meta.get("experiment_id", folder.name)), name=str(meta["name"]),
                artifact_location=meta.get("artifact_location"),
                lifecycle_stage=meta.get("lifecycle_stage") or "active",
                creation_time=meta.get("creation_time"), last_update_time=meta.get("last_update_time"),
                tags=self._values(folder / "tags")))
        return records

    def _run_folders(self) -> Iterator[Path]:
        for experiment in self._experiment_folders():
            for child in sorted(experiment.iterdir()):
                if child.is_dir() and (child / "meta.yaml").is_file() and child.name not in ("tags", "datasets", _MODELS):
                    yield child

    def run_ids(self) -> list[str]:
        return sorted(str(self._meta(folder / "meta.yaml").get("run_id") or folder.name) for folder in self._run_folders())

    def runs(self) -> Iterator[RunRecord]:
        for folder in self._run_folders():
            yield self._run(folder)

    def _run(self, folder: Path) -> RunRecord:
        meta = self._meta(folder / "meta.yaml")
        tags = self._values(folder / "tags")
        status = meta.get("status")
        status = _RUN_STATUS_NUMBERS.get(status, status) if isinstance(status, int) else str(status or "RUNNING")
        return RunRecord(
            run_id=str(meta.get("run_id") or meta.get("run_uuid") or folder.name),
            experiment_id=str(meta.get("experiment_id", folder.parent.name)),
            run_name=str(meta.get("run_name") or tags.get("mlflow.runName", "")),
            user_id=str(meta.get("user_id") or ""), status=status if status in _RUN_STATUS_NUMBERS.values() else "RUNNING",
            start_time=int(meta.get("start_time") or 0), end_time=meta.get("end_time"),
            lifecycle_stage=meta.get("lifecycle_stage") or "active", artifact_uri=meta.get("artifact_uri"),
            deleted_time=meta.get("deleted_time"), params=self._values(folder / "params"), tags=tags,
            inputs=self._inputs(folder), metrics=self._metrics(folder / "metrics"), outputs=self._outputs(folder))

    def _outputs(self, run_folder: Path) -> list[RunOutput]:
        directory = run_folder / "outputs"
        if not directory.is_dir():
            return []
        outputs = []
        for meta_file in sorted(directory.glob("*/meta.yaml")):
            link = self._meta(meta_file)
            if link.get("source_type") == "RUN_OUTPUT" and link.get("destination_type") == "MODEL_OUTPUT":
                outputs.append(RunOutput(str(link["destination_id"]), int(link.get("step") or 0)))
        return sorted(outputs, key=lambda o: (o.model_id, o.step))

    def _metrics(self, directory: Path) -> dict[str, MetricHistory]:
        metrics: dict[str, MetricHistory] = {}
        if not directory.is_dir():
            return metrics
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            points = metrics.setdefault(path.relative_to(directory).as_posix(), MetricHistory())
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError as e:
                raise SourceReadError(f"{self.description}: cannot read {path}: {e}") from e
            for number, line in enumerate(lines, 1):
                fields = line.split()
                if not fields:
                    continue
                try:
                    timestamp, value = int(fields[0]), float(fields[1])
                    step = int(fields[2]) if len(fields) > 2 else 0
                except (IndexError, ValueError):
                    raise SourceReadError(f"{self.description}: {path} line {number} is not "
                                          f"'timestamp value step': {line[:80]!r}") from None
                points.append(step, timestamp, value)
        return metrics

    def _inputs(self, run_folder: Path) -> list[DatasetInputRecord]:
        directory = run_folder / "inputs"
        if not directory.is_dir():
            return []
        records = []
        for input_folder in sorted(directory.iterdir()):
            if not (input_folder / "meta.yaml").is_file():
                continue
            link = self._meta(input_folder / "meta.yaml")
            if link.get("source_type") != "DATASET" or link.get("destination_type", "RUN") != "RUN":
                continue
            dataset_meta = run_folder.parent / "datasets" / str(link["source_id"]) / "meta.yaml"
            if not dataset_meta.is_file():
                raise SourceReadError(f"{self.description}: {input_folder} names dataset {link['source_id']}, "
                                      f"but {dataset_meta} is missing")
            d = self._meta(dataset_meta)
            records.append(DatasetInputRecord(
                name=str(d["name"]), digest=str(d["digest"]), source_type=str(d["source_type"]), source=str(d["source"]),
                schema=d.get("schema"), profile=d.get("profile"),
                tags={str(k): str(v) for k, v in (link.get("tags") or {}).items()}))
        return sorted(records, key=lambda r: (r.name, r.digest))

    # ---- logged models (MLflow 3): <experiment>/models/<model_id>/ ------------------------------

    def logged_models(self) -> list[LoggedModelRecord]:
        records = []
        for experiment in self._experiment_folders():
            for meta_file in sorted((experiment / _MODELS).glob("*/meta.yaml")):
                m, folder = self._meta(meta_file), meta_file.parent
                status = m.get("status")
                records.append(LoggedModelRecord(
                    model_id=str(m.get("model_id") or folder.name), experiment_id=str(m.get("experiment_id")),
                    name=str(m.get("name") or ""), artifact_location=str(m.get("artifact_location") or ""),
                    creation_time=m.get("creation_timestamp"), last_updated_time=m.get("last_updated_timestamp"),
                    status=_LOGGED_MODEL_STATUS_NUMBERS.get(status, "PENDING") if isinstance(status, int)
                    else str(status or "PENDING").removeprefix("LOGGED_MODEL_"),
                    status_message=m.get("status_message"), lifecycle_stage=m.get("lifecycle_stage") or "active",
                    model_type=m.get("model_type"), source_run_id=m.get("source_run_id"),
                    params=self._values(folder / "params"), tags=self._values(folder / "tags")))
        return sorted(records, key=lambda r: (r.creation_time or 0, r.model_id))

    def logged_model_files(self, model: LoggedModelRecord) -> Iterator[ArtifactFile]:
        return local_artifacts.walk(local_artifacts.local_root(model.artifact_location, self.proxied_artifact_root))

    # ---- registry -----------------------------------------------------------------------------

    def registered_models(self) -> list[RegisteredModelRecord]:
        models_root = self.root / _MODELS
        if not models_root.is_dir():
            return []
        records = []
        for model_folder in sorted(p for p in models_root.iterdir() if (p / "meta.yaml").is_file()):
            meta = self._meta(model_folder / "meta.yaml")
            versions = []
            for version_meta in sorted(model_folder.glob("version-*/meta.yaml"), key=lambda p: int(p.parent.name[8:])):
                v = self._meta(version_meta)
                versions.append(ModelVersionRecord(
                    version=int(v["version"]), creation_time=v.get("creation_timestamp"),
                    last_updated_time=v.get("last_updated_timestamp"), description=v.get("description"),
                    stage=str(v.get("current_stage") or "None"), source=v.get("source"), run_id=v.get("run_id"),
                    storage_location=v.get("storage_location"), tags=self._values(version_meta.parent / "tags"),
                    run_link=v.get("run_link") or None, model_id=v.get("model_id")))
            aliases = {alias: int(value.strip()) for alias, value in self._values(model_folder / "aliases").items()}
            records.append(RegisteredModelRecord(
                name=str(meta.get("name") or model_folder.name),
                creation_time=meta.get("creation_timestamp"), last_updated_time=meta.get("last_updated_timestamp"),
                description=meta.get("description"), tags=self._values(model_folder / "tags"),
                versions=tuple(versions), aliases=aliases))
        return records

    # ---- artifacts ----------------------------------------------------------------------------

    def artifact_files(self, run: RunRecord) -> Iterator[ArtifactFile]:
        return local_artifacts.walk(local_artifacts.local_root(run.artifact_uri, self.proxied_artifact_root))

    def copy_artifact(self, file: ArtifactFile, destination: Path) -> tuple[int, str]:
        return local_artifacts.copy(file, destination)

    def hash_artifact(self, file: ArtifactFile) -> str:
        return local_artifacts.sha256_of(file.location)
