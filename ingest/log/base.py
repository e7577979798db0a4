"""The event log port: append a batch durably, read from a position.

Both backends (the embedded file log and Kafka) implement it and pass one contract suite
(tests/ingest/log_contract.py). A log is a set of partitions, each a totally ordered
sequence of records addressed by increasing offsets. The embedded log has one partition whose
offsets are byte positions; Kafka partitions use Kafka offsets. A position maps each
partition to the next offset to read, which is exactly what the projector stores with its rows.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import NamedTuple

#: partition -> next offset to read. A partition missing from a position is read from its start.
Position = dict[int, int]


class Entry(NamedTuple):
    """One record to append: its ordering key (the event's entity key) and its encoded bytes."""

    key: str
    value: bytes


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One record read from a log.

    ``damage`` is None for a good record. When a reader has to skip bytes it cannot frame
    (a torn write after a crash, on-disk corruption), it still reports them as a record with
    ``damage`` saying why and ``value`` holding (a prefix of) the raw bytes, so the projector
    can dead-letter them instead of silently losing track.
    """

    partition: int
    offset: int
    next_offset: int
    value: bytes
    damage: str | None = None


class LogReader(ABC):
    """A cursor over a log that moves forward from a start position."""

    @abstractmethod
    def poll(self, max_records: int = 10_000, timeout: float = 0.0) -> list[LogRecord]:
        """Up to ``max_records`` next records, waiting at most ``timeout`` seconds when none are there yet."""

    @property
    @abstractmethod
    def position(self) -> Position:
        """The next offset to read in each partition: where a new reader would resume."""

    @abstractmethod
    def close(self) -> None:
        """Release the reader's files or connections."""

    def __enter__(self) -> LogReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventLog(ABC):
    """An append-only, durable log of encoded events."""

    #: the URI the log was opened with, for messages and the CLI
    uri: str

    @abstractmethod
    def append_batch(self, entries: Sequence[Entry]) -> list[tuple[int, int]]:
        """Append ``entries`` in order and return once they are durable, with their (partition, offset).

        Raises :class:`~ledgerflow.ingest.log.errors.DeliveryError` if any entry could not be
        made durable; the caller must then treat the whole batch as not acknowledged.
        """

    @abstractmethod
    def reader(self, start: Position | None = None) -> LogReader:
        """A reader positioned at ``start`` (None: the beginning of every partition)."""

    @abstractmethod
    def end_position(self) -> Position:
        """The position just after the last record currently in the log."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release resources; the log cannot be used afterwards."""

    def read_all(self, start: Position | None = None, batch: int = 10_000, idle_timeout: float = 10.0) -> Iterator[LogRecord]:
        """Every record from ``start`` up to the end of the log as it was when the call began.

        Stops early only if nothing arrives for ``idle_timeout`` seconds while the end is not reached
        (a writer that died mid-record and left nothing a reader could frame yet).
        """
        end = self.end_position()
        idle_since = time.monotonic()
        with self.reader(start) as reader:
            while not _reached(reader.position, end):
                records = reader.poll(batch, timeout=0.2)
                if records:
                    idle_since = time.monotonic()
                    yield from records
                elif time.monotonic() - idle_since > idle_timeout:
                    return

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _reached(position: Position, end: Position) -> bool:
    return all(position.get(partition, 0) >= offset for partition, offset in end.items())
