"""Errors of the event logs."""

from __future__ import annotations

from ledgerflow.errors import LedgerflowError


class LogError(LedgerflowError):
    """An event log cannot be opened, written or read."""


class LogUnavailableError(LogError):
    """The log's storage or broker cannot be reached right now; retrying may succeed."""

    transient = True


class DeliveryError(LogError):
    """An append was not acknowledged durably. Nothing in the failed batch may be assumed stored."""

    transient = True


class RecordTooLargeError(LogError):
    """A single record exceeds what the log accepts; split the batch."""
