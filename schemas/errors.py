"""Errors of the event catalog and the wire format."""

from __future__ import annotations

from ledgerflow.errors import InvalidInputError, LedgerflowError


class SchemaError(LedgerflowError):
    """The .avsc catalog itself is broken: unreadable file, bad JSON, a published schema edited."""


class EventDecodeError(LedgerflowError):
    """Bytes from a log are not a readable ledgerflow event (bad marker, truncated, corrupt body)."""


class UnknownFingerprintError(EventDecodeError):
    """The bytes name a writer schema (by fingerprint) that this catalog does not hold."""


class EventEncodeError(InvalidInputError):
    """An event's fields do not match its schema: a missing, unknown or mistyped field."""
