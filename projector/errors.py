"""Errors of the projector."""

from __future__ import annotations

from ledgerflow.errors import ConfigurationError, LedgerflowError


class ProjectorError(LedgerflowError):
    """The projection database cannot be opened or written."""


class WrongLogError(ConfigurationError):
    """The database was built from a different log, or is a time-travel snapshot that must not advance."""


class StaleProjectionError(ConfigurationError):
    """The database was built by a ledgerflow whose tables differ (STATE_VERSION); rebuild it from the log."""
