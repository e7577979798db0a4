"""The projector: turns the event log into DuckDB tables, exactly once, and rebuilds them on demand.

``handlers`` (pure: event -> row effects) | ``store`` (DuckDB: cached state view, one transaction per
batch with its log position) | ``runner`` (poll, decode, dead-letter, commit) | ``rebuild`` (replay, time travel).
Only this package writes the database; it reads events through ``ledgerflow.ingest.log``.

Exports resolve lazily, so importing the pure core (``ledgerflow.projector.handlers``) never loads
duckdb or pyarrow.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "apply": "ledgerflow.projector.handlers",
    "Rejected": "ledgerflow.projector.effects",
    "ProjectorError": "ledgerflow.projector.errors",
    "WrongLogError": "ledgerflow.projector.errors",
    "StaleProjectionError": "ledgerflow.projector.errors",
    "replay": "ledgerflow.projector.rebuild",
    "Projector": "ledgerflow.projector.runner",
    "Totals": "ledgerflow.projector.runner",
    "ProjectionStore": "ledgerflow.projector.store",
    "table_checksums": "ledgerflow.projector.store",
    "database_checksums": "ledgerflow.projector.store",
    "TABLES": "ledgerflow.projector.tables",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ledgerflow.projector' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
