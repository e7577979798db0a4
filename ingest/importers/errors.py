"""Errors of ``ledgerflow import-mlflow``."""

from __future__ import annotations

from ledgerflow.errors import InvalidInputError, LedgerflowError


class MlflowImportError(LedgerflowError):
    """Root of the importer's errors."""


class SourceError(MlflowImportError, InvalidInputError):
    """The SOURCE is not an MLflow store the importer can read; the message names it and says why."""


class SourceReadError(MlflowImportError):
    """An MLflow store that opened fine failed while being read (a server error, a damaged file)."""


class TargetConflictError(MlflowImportError):
    """The target log already holds entities that contradict the source; nothing was written."""


class ArtifactCopyError(MlflowImportError):
    """An artifact file could not be read from the source or written to the ledgerflow artifact store."""
