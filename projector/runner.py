"""The projector loop: poll a batch, decode, apply, commit rows and position together.

Kept apart from ``apply`` (pure) and ``store`` (DuckDB) so each can be read on its own. Nothing a
single record contains can stop the loop: damaged bytes, undecodable events, unknown schemas,
duplicates and rejected events go to ``dead_letters`` with the reason and their log position.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ledgerflow.ingest.log import EventLog, LogRecord, Position
from ledgerflow.projector.effects import Rejected
from ledgerflow.projector.handlers import apply, audit_row
from ledgerflow.projector.store import ProjectionStore
from ledgerflow.projector.unit_of_work import UnitOfWork
from ledgerflow.schemas import Event, EventDecodeError, check_series, decode

# which cached tables to prefetch for the events of a batch: body field -> tables keyed by it
_PREFETCH_BY_FIELD = {
    "experiment_id": ("experiments",),
    "run_id": ("runs",),
    "name": ("registered_models", "registered_model_tags", "model_versions", "model_version_tags", "model_aliases"),
    "new_name": ("registered_models",),
}
_PREFETCH_BY_TYPE = {"ParamsLogged": ("params", "run_id"), "RunTagDeleted": ("tags", "run_id"),
                     "ExperimentTagDeleted": ("experiment_tags", "experiment_id")}


@dataclass
class BatchResult:
    records: int = 0
    applied: int = 0
    dead_letters: int = 0
    skipped: int = 0  # beyond a time-travel bound
    points: int = 0


@dataclass
class Totals(BatchResult):
    batches: int = 0
    by_type: dict[str, int] = field(default_factory=dict)

    def add(self, batch: BatchResult, by_type: dict[str, int]) -> None:
        self.batches += 1
        for name in ("records", "applied", "dead_letters", "skipped", "points"):
            setattr(self, name, getattr(self, name) + getattr(batch, name))
        for key, value in by_type.items():
            self.by_type[key] = self.by_type.get(key, 0) + value


class Projector:
    """Projects ``log`` into ``store``, resuming from the position stored in the database.

    ``until`` (an aware datetime) applies only events that occurred at or before it;
    ``until_position`` stops at that position. Both make a time-travel snapshot.
    """

    def __init__(self, log: EventLog, store: ProjectionStore, *, batch_records: int = 1000,
                 until: datetime | None = None, until_position: Position | None = None) -> None:
        self.log, self.store = log, store
        self.batch_records = batch_records
        self.until, self.until_position = until, until_position
        extra = {}
        if until is not None:
            extra["until"] = until.isoformat()
        if until_position is not None:
            extra["until_position"] = ",".join(f"{p}:{o}" for p, o in sorted(until_position.items()))
        store.bind_log(log.uri, **extra)
        self.reader = log.reader(store.positions())
        self.totals = Totals()

    def close(self) -> None:
        self.reader.close()

    def step(self, timeout: float = 0.5) -> BatchResult:
        """Poll one batch and commit it. Returns what it did (records == 0: nothing new)."""
        records = self.reader.poll(self.batch_records, timeout=timeout)
        if self.until_position is not None:
            records = [r for r in records if r.offset < self.until_position.get(r.partition, 0)]
        result = BatchResult(records=len(records))
        if not records:
            return result
        by_type: dict[str, int] = {}
        work, audit, dead = UnitOfWork(), [], []
        decoded = self._decode(records, dead)
        self._prefetch([event for _, event in decoded])
        known = self.store.known_event_ids([str(e.event_id) for _, e in decoded])
        seen: set[str] = set()
        for record, event in decoded:
            if self.until is not None and event.occurred_at > self.until:
                result.skipped += 1
                continue
            event_id = str(event.event_id)
            if event_id in known or event_id in seen:
                dead.append(_dead(record, f"duplicate event id {event_id}: already applied", event))
                continue
            try:
                effects = apply(event, self.store)
            except Rejected as e:
                dead.append(_dead(record, f"rejected: {e}", event))
                continue
            except Exception as e:  # a projection bug must not stop the projector either
                dead.append(_dead(record, f"internal error applying {event.type}: {type(e).__name__}: {e}", event))
                continue
            seen.add(event_id)
            self.store.observe(effects)
            for effect in effects:
                work.add(effect)
            audit.append(audit_row(event, record.partition, record.offset))
            by_type[event.type] = by_type.get(event.type, 0) + 1
        position = {**self.reader.position}
        if self.until_position is not None:
            last: dict[int, int] = {}
            for record in records:
                last[record.partition] = record.next_offset
            position = {**self.store.positions(), **last}
        self.store.commit_batch(work, audit, dead, position)
        result.applied, result.dead_letters, result.points = len(audit), len(dead), work.points
        self.totals.add(result, by_type)
        return result

    def _decode(self, records: list[LogRecord], dead: list[dict[str, Any]]) -> list[tuple[LogRecord, Event]]:
        decoded = []
        for record in records:
            if record.damage is not None:
                dead.append(_dead(record, f"damaged log record: {record.damage}"))
                continue
            try:
                event = decode(record.value)
            except EventDecodeError as e:
                dead.append(_dead(record, f"undecodable: {e}"))
                continue
            if event.type == "MetricsLogged":
                try:
                    for series in event.body["series"]:
                        check_series(series)
                except EventDecodeError as e:
                    dead.append(_dead(record, f"undecodable: {e}", event))
                    continue
            decoded.append((record, event))
        return decoded

    def _prefetch(self, events: list[Event]) -> None:
        wanted: dict[str, set[Any]] = {}
        for event in events:
            body = event.body
            for field_name, tables in _PREFETCH_BY_FIELD.items():
                value = body.get(field_name)
                if value is not None and not (field_name == "run_id" and "name" in body):
                    for table in tables:
                        wanted.setdefault(table, set()).add(value)
            extra = _PREFETCH_BY_TYPE.get(event.type)
            if extra:
                wanted.setdefault(extra[0], set()).add(body[extra[1]])
        for table, prefixes in wanted.items():
            self.store.prefetch(table, prefixes)

    def run_until_caught_up(self, progress: Callable[[BatchResult], None] | None = None) -> Totals:
        """Apply everything in the log up to its end as of now (or up to the time-travel bound)."""
        end = self.log.end_position()
        if self.until_position is not None:
            end = {p: min(o, self.until_position.get(p, 0)) for p, o in end.items()}
        idle = 0
        while not all(self.reader.position.get(p, 0) >= o for p, o in end.items()):
            result = self.step(timeout=0.5)
            if progress:
                progress(result)
            if result.records == 0:
                idle += 1
                if idle > 20:  # 10 s without a record while short of the end: a torn tail still being written
                    break
            else:
                idle = 0
            if self.until_position is not None and result.records == 0 and all(
                    self.store.positions().get(p, 0) >= o for p, o in end.items()):
                break
        return self.totals

    def run_forever(self, stop: threading.Event, on_batch: Callable[[BatchResult], None] | None = None) -> Totals:
        """Tail the log until ``stop`` is set."""
        while not stop.is_set():
            result = self.step(timeout=0.5)
            if on_batch and result.records:
                on_batch(result)
        return self.totals


def _dead(record: LogRecord, reason: str, event: Event | None = None) -> dict[str, Any]:
    return {"log_partition": record.partition, "log_offset": record.offset, "reason": reason,
            "event_id": str(event.event_id) if event is not None else None,
            "event_type": event.type if event is not None else None, "raw": bytes(record.value)}
