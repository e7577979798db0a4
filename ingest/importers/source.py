"""The reader port: one implementation per kind of MLflow store, all producing the same records."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

from ledgerflow.ingest.importers.records import (
    ArtifactFile,
    ExperimentRecord,
    LoggedModelRecord,
    RegisteredModelRecord,
    RunRecord,
)


class MlflowSource(ABC):
    """An MLflow store opened for reading. Runs are yielded one at a time so a large store fits in memory."""

    #: how messages name the store, e.g. ``sqlite:///data/mlflow.db``
    description: str

    @abstractmethod
    def experiments(self) -> list[ExperimentRecord]:
        """Every experiment, active and deleted, with its tags."""

    @abstractmethod
    def run_ids(self) -> list[str]:
        """The id of every run, active and deleted (read before writing, to find conflicts early)."""

    @abstractmethod
    def runs(self) -> Iterator[RunRecord]:
        """Every run with its params, tags, dataset inputs and full metric histories."""

    @abstractmethod
    def logged_models(self) -> list[LoggedModelRecord]:
        """Every MLflow 3 logged model the store keeps, with its params and tags."""

    @abstractmethod
    def logged_model_files(self, model: LoggedModelRecord) -> Iterator[ArtifactFile]:
        """The files of a logged model; raises ArtifactsUnavailable when its location cannot be read."""

    @abstractmethod
    def registered_models(self) -> list[RegisteredModelRecord]:
        """Every registered model with its tags, versions (deleted ones too where the store keeps them) and aliases."""

    @abstractmethod
    def artifact_files(self, run: RunRecord) -> Iterator[ArtifactFile]:
        """The files under the run's artifact root; raises ArtifactsUnavailable when the root cannot be read."""

    @abstractmethod
    def copy_artifact(self, file: ArtifactFile, destination: Path) -> tuple[int, str]:
        """Copy one file to ``destination`` atomically; return (size, sha256)."""

    @abstractmethod
    def hash_artifact(self, file: ArtifactFile) -> str:
        """The SHA-256 of one file's content, lowercase hex."""

    def close(self) -> None:  # noqa: B027 - a source without resources has nothing to release
        """Release files or connections."""

    def __enter__(self) -> MlflowSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ArtifactsUnavailable(Exception):  # noqa: N818 - a reason to skip, not a failure
    """A run's artifact root lives where this source cannot list it (s3://, an unknown proxy ...)."""
