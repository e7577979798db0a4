"""The one error root of ledgerflow, and the error families every layer shares.

Subpackages raise specific subclasses; the API maps them to HTTP statuses in one place.
``transient`` says whether retrying the same call may succeed (a broker that is down)
or never will (a malformed key name).
"""

from __future__ import annotations


class LedgerflowError(Exception):
    """Root of every error ledgerflow raises on purpose."""

    transient: bool = False


class InvalidInputError(LedgerflowError, ValueError):
    """A caller passed a value ledgerflow refuses; the message names the value and the rule."""


class ConfigurationError(LedgerflowError, ValueError):
    """A tracking URI, environment variable or option is malformed or inconsistent."""
