"""One import: read the target's history, check for conflicts, then write the source's history.

Order of work: scan the target log (what is there already), read the source's experiments,
run ids and registry (to refuse conflicts before anything is written), then experiments, runs one
at a time (with their artifacts) and the registry, skipping every event the target already holds.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ledgerflow.errors import ConfigurationError
from ledgerflow.ingest.importers.errors import ArtifactCopyError, TargetConflictError
from ledgerflow.ingest.importers.records import ExperimentRecord, LoggedModelRecord, RegisteredModelRecord, RunRecord
from ledgerflow.ingest.importers.source import ArtifactsUnavailable, MlflowSource
from ledgerflow.ingest.importers.target import TargetIndex, scan_target
from ledgerflow.ingest.importers.translate import (
    ArtifactReference,
    PlannedEvent,
    artifact_event_id,
    experiment_created_id,
    experiment_events,
    logged_model_created_id,
    logged_model_events,
    model_events,
    registered_model_created_id,
    run_events,
    run_last_time,
    run_started_id,
)
from ledgerflow.ingest.importers.writer import EventWriter
from ledgerflow.ingest.log import EventLog, open_log
from ledgerflow.ingest.sdk.validation import check_relative_path
from ledgerflow.schemas import default_catalog
from ledgerflow.settings import Settings

#: stage name, items done, items in all (None while unknown)
ProgressCallback = Callable[[str, int, int | None], None]
MAX_LISTED_CONFLICTS = 10


@dataclass(frozen=True)
class ImportOptions:
    """``artifacts``: record artifact references at all. ``copy_artifacts``: also copy the files into
    ``artifact_store`` (a data home's ``artifacts`` folder) and point runs at the copies."""

    artifacts: bool = True
    copy_artifacts: bool = False
    artifact_store: Path | None = None


@dataclass
class ImportSummary:
    """What the source holds, what was written, and what was already in the target."""

    source: str
    target: str
    found: Counter[str] = field(default_factory=Counter)  # experiments, runs, metric points, ... in the source
    written: Counter[str] = field(default_factory=Counter)  # event type -> events appended
    points_written: int = 0
    already_present: int = 0  # events skipped because the target holds their ids
    points_already_present: int = 0  # metric points earlier imports wrote
    artifacts_copied: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def events_written(self) -> int:
        return sum(self.written.values())


def find_conflicts(experiments: list[ExperimentRecord], run_ids: list[str], models: list[RegisteredModelRecord],
                   index: TargetIndex, logged_models: Sequence[LoggedModelRecord] = ()) -> list[str]:
    """Entities of the source the target already holds with another identity; each line says which and why."""
    conflicts = []
    ids_by_name = index.experiment_ids_by_name()
    for experiment in experiments:
        if experiment_created_id(experiment) in index.event_ids:
            continue  # imported before: whatever happened to it since in ledgerflow stands
        known = index.experiments.get(experiment.experiment_id)
        if known is not None and known != experiment.name:
            conflicts.append(f"experiment id {experiment.experiment_id} is {known!r} in the target but "
                             f"{experiment.name!r} in the source")
        holder = ids_by_name.get(experiment.name)
        if holder is not None and holder != experiment.experiment_id:
            conflicts.append(f"experiment name {experiment.name!r} belongs to experiment id {holder} in the target, "
                             f"to id {experiment.experiment_id} in the source")
    for run_id in run_ids:
        if run_id in index.runs and run_started_id(run_id) not in index.event_ids:
            conflicts.append(f"run {run_id} already exists in the target and was not imported from MLflow")
    for model in models:
        if model.name in index.active_models and registered_model_created_id(model) not in index.event_ids:
            conflicts.append(f"registered model {model.name!r} already exists in the target with another history")
    for logged in logged_models:
        if logged.model_id in index.logged_models and logged_model_created_id(logged.model_id) not in index.event_ids:
            conflicts.append(f"logged model {logged.model_id} already exists in the target and was not imported")
    return conflicts


class Importer:
    """Writes one MLflow source into one log; :meth:`run` does the whole import once."""

    def __init__(self, source: MlflowSource, log: EventLog, options: ImportOptions | None = None,
                 progress: ProgressCallback | None = None) -> None:
        self.source, self.log = source, log
        self.options = options or ImportOptions()
        if self.options.copy_artifacts and self.options.artifact_store is None:
            raise ValueError("copy_artifacts needs artifact_store, the ledgerflow artifact folder to copy into")
        self.progress = progress or (lambda stage, done, total: None)
        self.summary = ImportSummary(source=source.description, target=log.uri)
        self._relocations: list[tuple[str, str]] = []  # (original artifact root, copied root), for model versions
        catalog = default_catalog()
        #: the MLflow 3 logged-model events, when this ledgerflow's event catalog has them
        self._logged_models_supported = all(t in catalog.versions for t in ("LoggedModelCreated", "RunOutputsLogged"))

    def run(self) -> ImportSummary:
        self.progress("reading the target log", 0, None)
        index = scan_target(self.log, lambda records: self.progress("reading the target log", records, None))
        self.progress("reading the source", 0, None)
        experiments, run_ids = self.source.experiments(), self.source.run_ids()
        models, logged_models = self.source.registered_models(), self._logged_models()
        self._refuse_conflicts(find_conflicts(experiments, run_ids, models, index, logged_models))
        writer = EventWriter(self.log, index.event_ids)
        found = self.summary.found
        found["experiments"], found["runs"], found["logged models"] = len(experiments), len(run_ids), len(logged_models)
        for experiment in experiments:
            writer.add_all(experiment_events(self._relocated_experiment(experiment)))
        for logged in logged_models:
            writer.add_all(logged_model_events(self._relocated_logged_model(logged)))
        self.progress("runs", 0, len(run_ids))
        for done, run in enumerate(self.source.runs(), 1):
            writer.add_all(self._run_events(run, index))
            self.progress("runs", done, len(run_ids))
        for model in models:
            found["registered models"] += 1
            found["model versions"] += len(model.versions)
            found["aliases"] += len(model.aliases)
            writer.add_all(model_events(self._relocated_model(model)))
        writer.flush()
        self.summary.written = writer.written
        self.summary.points_written = writer.points_written
        self.summary.already_present += writer.already_present
        return self.summary

    def _logged_models(self) -> list[LoggedModelRecord]:
        logged_models = self.source.logged_models()
        if logged_models and not self._logged_models_supported:
            self.summary.warnings.append(f"{len(logged_models)} MLflow 3 logged models not imported: this ledgerflow's "
                                         "event catalog has no LoggedModelCreated event")
            return []
        return logged_models

    def _refuse_conflicts(self, conflicts: list[str]) -> None:
        if not conflicts:
            return
        shown = "\n  ".join(conflicts[:MAX_LISTED_CONFLICTS])
        more = f"\n  ... and {len(conflicts) - MAX_LISTED_CONFLICTS} more" if len(conflicts) > MAX_LISTED_CONFLICTS else ""
        raise TargetConflictError(
            f"the target {self.log.uri} already holds {len(conflicts)} entit{'y' if len(conflicts) == 1 else 'ies'} "
            f"that contradict {self.source.description}; nothing was written:\n  {shown}{more}\n"
            "Import into another log (--to), or rename the clashing experiment in one of the two stores first.")

    def _run_events(self, run: RunRecord, index: TargetIndex) -> list[PlannedEvent]:
        found = self.summary.found
        found["params"] += len(run.params)
        found["metric points"] += sum(len(history) for history in run.metrics.values())
        found["dataset inputs"] += len(run.inputs)
        imported = index.points_of(run.run_id)
        self.summary.points_already_present += sum(min(imported.get(key, 0), len(history))
                                                   for key, history in run.metrics.items())
        artifacts = self._artifacts(run, index) if self.options.artifacts else []
        return run_events(self._relocated_run(run), imported_points=imported, artifacts=artifacts,
                          outputs=self._logged_models_supported)

    # ---- artifacts ------------------------------------------------------------------------------

    def _copied_root(self, experiment_id: str, run_id: str) -> str:
        """Where the ledgerflow server serves a copied run's artifacts (its mlflow-artifacts:/ layout)."""
        return f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"

    def _artifacts(self, run: RunRecord, index: TargetIndex) -> list[ArtifactReference]:
        try:
            files = list(self.source.artifact_files(run))
        except ArtifactsUnavailable as e:
            self.summary.warnings.append(f"run {run.run_id}: artifacts not imported: {e}")
            return []
        references = []
        root = self._copied_root(run.experiment_id, run.run_id) if self.options.copy_artifacts else run.artifact_uri
        for file in files:
            self.summary.found["artifact files"] += 1
            check_relative_path(file.path, "artifact path", ArtifactCopyError)
            uri = f"{(root or '').rstrip('/')}/{file.path}"
            if artifact_event_id(run.run_id, file.path, uri, file.size) in index.event_ids:
                self.summary.already_present += 1  # known before hashing, so a re-run reads no file again
                continue
            size = file.size
            if self.options.copy_artifacts:
                assert self.options.artifact_store is not None
                destination = self.options.artifact_store / run.experiment_id / run.run_id / "artifacts" / file.path
                size, sha256 = self.source.copy_artifact(file, destination)
                self.summary.artifacts_copied += 1
            else:
                sha256 = self.source.hash_artifact(file)
            references.append(ArtifactReference(path=file.path, uri=uri, size=size, sha256=sha256,
                                                logged_at=file.modified_time or run_last_time(run)))
        return references

    # ---- where artifacts live after a copy ------------------------------------------------------

    def _relocated_experiment(self, experiment: ExperimentRecord) -> ExperimentRecord:
        if not self.options.copy_artifacts:
            return experiment
        return dataclasses.replace(experiment, artifact_location=f"mlflow-artifacts:/{experiment.experiment_id}")

    def _relocated_run(self, run: RunRecord) -> RunRecord:
        if not self.options.copy_artifacts:
            return run
        copied = self._copied_root(run.experiment_id, run.run_id)
        if run.artifact_uri:
            self._relocations.append((run.artifact_uri.rstrip("/"), copied))
        return dataclasses.replace(run, artifact_uri=copied)

    def _relocated_logged_model(self, model: LoggedModelRecord) -> LoggedModelRecord:
        """With --copy-artifacts, a logged model's files are copied (no event names files of a logged model)
        to where the ledgerflow server serves <experiment>/models/<model_id>/artifacts."""
        if not self.options.copy_artifacts:
            return model
        assert self.options.artifact_store is not None
        relative = Path(model.experiment_id) / "models" / model.model_id / "artifacts"
        try:
            files = list(self.source.logged_model_files(model))
        except ArtifactsUnavailable as e:
            self.summary.warnings.append(f"logged model {model.model_id}: files not copied: {e}")
            return model
        for file in files:
            check_relative_path(file.path, "artifact path", ArtifactCopyError)
            destination = self.options.artifact_store / relative / file.path
            if destination.is_file() and destination.stat().st_size == file.size:
                continue  # copied by an earlier run of this import
            self.source.copy_artifact(file, destination)
            self.summary.artifacts_copied += 1
        copied = f"mlflow-artifacts:/{relative.as_posix()}"
        self._relocations.append((model.artifact_location.rstrip("/"), copied))
        return dataclasses.replace(model, artifact_location=copied)

    def _relocated_model(self, model: RegisteredModelRecord) -> RegisteredModelRecord:
        """Versions stored inside a copied run's artifacts point into the copy."""
        if not self.options.copy_artifacts:
            return model
        versions = []
        for version in model.versions:
            location = version.storage_location
            matches = [(original, copied) for original, copied in self._relocations
                       if location and (location == original or location.startswith(original + "/"))]
            if matches:
                original, copied = max(matches, key=lambda pair: len(pair[0]))
                location = copied + location[len(original):]
            versions.append(dataclasses.replace(version, storage_location=location))
        return dataclasses.replace(model, versions=tuple(versions))


def target_of(target: str | None, settings: Settings) -> tuple[str, Path]:
    """(log URI, data home) an import writes to: ``--to``, else the tracking URI, else the data home.

    The data home receives copied artifacts: the log's own folder for ``file:``, else $LEDGERFLOW_HOME.
    """
    uri = target or settings.tracking_uri or f"file:{settings.home}"
    scheme = urlsplit(uri).scheme.lower()
    if scheme in ("http", "https"):
        raise ConfigurationError(
            f"cannot import into {uri}: an import first reads the target log to skip what is already there, and a "
            "server's log is append-only over HTTP. Import into the server's own log instead: --to file:HOME "
            "(the server picks the events up while running) or --to kafka://HOST:PORT/TOPIC")
    if scheme == "kafka":
        return uri, settings.home.absolute()
    path = uri[len("file:"):] if uri.startswith("file:") else uri
    if path.startswith("//"):
        path = urlsplit(uri).path
    return f"file:{Path(path).absolute()}", Path(path).absolute()


def import_mlflow(source: str, target: str | None = None, *, artifacts: bool = True, copy_artifacts: bool = False,
                  artifacts_destination: Path | None = None, mlflow_artifacts_dir: Path | None = None,
                  progress: ProgressCallback | None = None, settings: Settings | None = None) -> ImportSummary:
    """Import the MLflow store ``source`` into the log ``target`` (docs/import-mlflow.md).

    ``artifacts_destination``: where copies go (the server's --artifacts-destination), default HOME/artifacts.
    ``mlflow_artifacts_dir``: where the source's ``mlflow-artifacts:/`` files are (an MLflow server's
    --artifacts-destination), for a sqlite or mlruns source.
    """
    from ledgerflow.ingest.importers.sources import open_source

    settings = settings or Settings.from_env()
    log_uri, home = target_of(target, settings)
    options = ImportOptions(artifacts=artifacts or copy_artifacts, copy_artifacts=copy_artifacts,
                            artifact_store=(artifacts_destination or home / "artifacts").absolute())
    with open_source(source, proxied_artifact_root=mlflow_artifacts_dir) as mlflow_store:
        log = open_log(log_uri, settings)
        try:
            return Importer(mlflow_store, log, options, progress).run()
        finally:
            log.close()
