"""Importers of history kept elsewhere: ``ledgerflow import-mlflow`` (docs/import-mlflow.md).

An MLflow store (a sqlite database, an ``mlruns`` directory or a tracking server) is read by one
reader per kind into plain records (``records``), translated into events by a pure function
(``translate``) and appended to the target log (``writer``), skipping what an earlier import wrote.
"""

from ledgerflow.ingest.importers.errors import (
    ArtifactCopyError,
    MlflowImportError,
    SourceError,
    SourceReadError,
    TargetConflictError,
)
from ledgerflow.ingest.importers.importer import Importer, ImportOptions, ImportSummary, import_mlflow

__all__ = [
    "ArtifactCopyError", "ImportOptions", "ImportSummary", "Importer", "MlflowImportError", "SourceError",
    "SourceReadError", "TargetConflictError", "import_mlflow",
]
