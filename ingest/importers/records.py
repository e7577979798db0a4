"""A small model of what an MLflow store holds, as the readers hand it to the translation.

Every reader (SQL database, mlruns directory, REST server) produces these plain records, so the
translation into events is written once and knows nothing about where the history came from.
Times are milliseconds since the Unix epoch, as MLflow stores them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ExperimentRecord:
    experiment_id: str
    name: str
    artifact_location: str | None
    lifecycle_stage: str  # 'active' or 'deleted'
    creation_time: int | None
    last_update_time: int | None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class MetricHistory:
    """Every point of one metric key as three parallel columns: histories run to millions of points,
    so no object per point."""

    steps: list[int] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.values)

    def append(self, step: int, timestamp: int, value: float) -> None:
        self.steps.append(step)
        self.timestamps.append(timestamp)
        self.values.append(value)


@dataclass(frozen=True, slots=True)
class DatasetInputRecord:
    name: str
    digest: str
    source_type: str
    source: str
    schema: str | None
    profile: str | None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def context(self) -> str | None:
        """How the run used the dataset; MLflow keeps it as the input tag ``mlflow.data.context``."""
        return self.tags.get("mlflow.data.context") or None


@dataclass(frozen=True, slots=True)
class ArtifactFile:
    """One file under a run's artifact root. Its hash is computed only if its reference is still to be written."""

    path: str  # relative to the run's artifact root, '/'-separated
    size: int
    modified_time: int | None  # ms, when the source knows it
    location: str  # where the source reads the content: a local path, or the path the server serves


@dataclass(frozen=True, slots=True)
class RunOutput:
    """A logged model a run recorded as its output (MLflow 3), and at which step."""

    model_id: str
    step: int


@dataclass(slots=True)
class RunRecord:
    run_id: str
    experiment_id: str
    run_name: str
    user_id: str
    status: str  # RUNNING, SCHEDULED, FINISHED, FAILED, KILLED
    start_time: int
    end_time: int | None
    lifecycle_stage: str
    artifact_uri: str | None
    deleted_time: int | None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    inputs: list[DatasetInputRecord] = field(default_factory=list)
    #: metric key -> every point logged, in the order the store keeps them
    metrics: dict[str, MetricHistory] = field(default_factory=dict)
    outputs: list[RunOutput] = field(default_factory=list)

    @property
    def parent_run_id(self) -> str | None:
        return self.tags.get("mlflow.parentRunId") or None


@dataclass(frozen=True, slots=True)
class ModelVersionRecord:
    version: int
    creation_time: int | None
    last_updated_time: int | None
    description: str | None
    stage: str  # MLflow's current_stage: None, Staging, Production, Archived, Deleted_Internal
    source: str | None
    run_id: str | None
    storage_location: str | None
    tags: dict[str, str] = field(default_factory=dict)
    run_link: str | None = None
    model_id: str | None = None  # the MLflow 3 logged model it was registered from

    @property
    def deleted(self) -> bool:
        """MLflow's SQL store keeps a deleted version's row (and number) with this internal stage."""
        return self.stage == "Deleted_Internal"


@dataclass(frozen=True, slots=True)
class RegisteredModelRecord:
    name: str
    creation_time: int | None
    last_updated_time: int | None
    description: str | None
    tags: dict[str, str] = field(default_factory=dict)
    versions: tuple[ModelVersionRecord, ...] = ()
    aliases: dict[str, int] = field(default_factory=dict)  # alias -> version


@dataclass(frozen=True, slots=True)
class LoggedModelRecord:
    """An MLflow 3 logged model: the files ``log_model`` wrote, which a model version may point at."""

    model_id: str
    experiment_id: str
    name: str
    artifact_location: str
    creation_time: int | None
    last_updated_time: int | None
    status: str  # PENDING, READY or UPLOAD_FAILED
    status_message: str | None
    lifecycle_stage: str
    model_type: str | None
    source_run_id: str | None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
