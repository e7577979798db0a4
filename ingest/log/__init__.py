"""Event logs: the port (:class:`EventLog`) and its backends, chosen by URI.

``file:PATH`` (or a bare path): the embedded log in PATH. ``kafka://HOST:PORT[,HOST:PORT][/TOPIC]``:
Apache Kafka. See :func:`open_log`.
"""

from ledgerflow.ingest.log.base import Entry, EventLog, LogReader, LogRecord, Position
from ledgerflow.ingest.log.errors import DeliveryError, LogError, LogUnavailableError, RecordTooLargeError
from ledgerflow.ingest.log.uri import open_log

__all__ = [
    "DeliveryError", "Entry", "EventLog", "LogError", "LogReader", "LogRecord", "LogUnavailableError",
    "Position", "RecordTooLargeError", "open_log",
]
