"""Rebuilding a database from the start of the log, optionally as of a moment or a position."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from ledgerflow.ingest.log import EventLog, Position
from ledgerflow.projector.runner import Projector, Totals
from ledgerflow.projector.store import ProjectionStore

ProgressCallback = Callable[..., None]


def replay(log: EventLog, db_path: str | Path, *, until: datetime | None = None, until_position: Position | None = None,
           progress: ProgressCallback | None = None, batch_records: int = 1000) -> Totals:
    """Project ``log`` from its start into the new database ``db_path`` and return the totals.

    With ``until`` only events that occurred at or before it are applied: "what did the registry
    look like on 1 November?". The result is a frozen snapshot the live projector refuses to advance.
    """
    store = ProjectionStore(db_path)
    projector = Projector(log, store, batch_records=batch_records, until=until, until_position=until_position)
    try:
        totals = projector.run_until_caught_up(
            (lambda batch: progress(projector.reader.position, projector.totals.points)) if progress else None)
        if progress:
            progress(projector.reader.position, totals.points, True)
        store.connection.execute("CHECKPOINT")
        return totals
    finally:
        projector.close()
        store.close()
