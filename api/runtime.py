"""A server's moving parts: the log it writes to, the in-process projector thread, read cursors.

Read-your-writes: a read first notes the log's end position, then waits (bounded) until the
projector has committed at least that far. A client that wrote and then reads therefore sees its
write, in both modes (docs/consistency.md).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from ledgerflow.api.sql import harden_database
from ledgerflow.ingest.log import EventLog, Position
from ledgerflow.projector import ProjectionStore, Projector

log = logging.getLogger("ledgerflow.server")
READ_CURSORS = 8


@dataclass
class Counters:
    """What /metrics exposes."""

    ingested_events: int = 0
    ingested_points: int = 0
    projected_events: int = 0
    projected_points: int = 0
    projector_errors: int = 0
    last_batch_at: float = field(default_factory=time.time)


class ProjectionLagError(Exception):
    """The projection did not reach the position a read needs within the wait bound."""


class Runtime:
    """Owns the log, the projection database and the projector thread of one server process."""

    def __init__(self, log_: EventLog, db_path: Path, *, read_wait: float = 5.0,
                 artifact_root: Path | None = None) -> None:
        self.log = log_
        self.db_path = db_path
        #: the proxied artifact store (MLflow's mlflow-artifacts API); defaults beside the database
        self.artifact_root = artifact_root if artifact_root is not None else db_path.parent / "artifacts"
        self.read_wait = read_wait
        self.counters = Counters()
        self.store = ProjectionStore(db_path)
        harden_database(self.store.connection)  # POST /api/v1/sql runs untrusted SELECTs on this database
        self.projector = Projector(log_, self.store)
        self._committed: Position = dict(self.projector.reader.position)
        self._progress = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._project, name="ledgerflow-projector", daemon=True)
        self._cursors: queue.Queue[duckdb.DuckDBPyConnection] = queue.Queue()
        for _ in range(READ_CURSORS):
            self._cursors.put(self.store.connection.cursor())
        self.started_at_end: Position = {}
        self.ready = threading.Event()

    def start(self) -> None:
        self.started_at_end = self.log.end_position()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        while not self._cursors.empty():
            self._cursors.get_nowait().close()
        self.projector.close()
        self.store.close()
        self.log.close()

    # ---- the projector thread ----------------------------------------------------------------

    def _project(self) -> None:
        pause = 0.1
        while not self._stop.is_set():
            try:
                result = self.projector.step(timeout=0.2)
            except Exception:  # a failed transaction: the store rolled back; retry from the committed position
                self.counters.projector_errors += 1
                log.exception("projector batch failed; retrying in %.1f s", pause)
                self._stop.wait(pause)
                pause = min(pause * 2, 5.0)
                self.projector.close()
                self.projector = Projector(self.log, self.store)
                continue
            pause = 0.1
            if result.records:
                self.counters.projected_events += result.applied
                self.counters.projected_points += result.points
                self.counters.last_batch_at = time.time()
            with self._progress:
                self._committed = dict(self.projector.reader.position)
                self._progress.notify_all()
            if not self.ready.is_set() and _reached(self._committed, self.started_at_end):
                self.ready.set()

    # ---- reads ---------------------------------------------------------------------------------

    @property
    def committed_position(self) -> Position:
        with self._progress:
            return dict(self._committed)

    def wait_until_projected(self, target: Position, timeout: float | None = None) -> None:
        """Block until the projection has reached ``target``; raise ProjectionLagError after ``timeout``."""
        deadline = time.monotonic() + (self.read_wait if timeout is None else timeout)
        with self._progress:
            while not _reached(self._committed, target):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ProjectionLagError(
                        f"the projection has not reached the log position of this request within "
                        f"{self.read_wait:g} s (at {_fmt(self._committed)}, need {_fmt(target)}); retry shortly")
                self._progress.wait(remaining)

    @contextmanager
    def read_cursor(self, consistent: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """A DuckDB cursor for one request; with ``consistent`` it first waits for read-your-writes."""
        if consistent:
            self.wait_until_projected(self.log.end_position())
        cursor = self._cursors.get()
        try:
            yield cursor
        finally:
            cursor.abort()  # drop any half-read result, or the next request on this cursor fails
            self._cursors.put(cursor)

    def lag(self) -> tuple[int, int, float]:
        """(offsets behind the log end, events behind, seconds since the last applied batch when behind).

        Kafka offsets count records; the embedded log's are bytes, so its events are counted by
        hopping over frame headers (capped at 100,000)."""
        end, committed = self.log.end_position(), self.committed_position
        behind = sum(max(0, offset - committed.get(p, 0)) for p, offset in end.items())
        count_records = getattr(self.log, "count_records", None)
        events = count_records(committed.get(0, 0), end.get(0, 0)) if count_records and behind else behind
        return behind, events, (time.time() - self.counters.last_batch_at) if behind else 0.0


def _reached(position: Position, target: Position) -> bool:
    return all(position.get(p, 0) >= o for p, o in target.items())


def _fmt(position: Position) -> str:
    return ",".join(f"{p}:{o}" for p, o in sorted(position.items())) or "the start"
