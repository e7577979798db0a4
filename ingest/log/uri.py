"""Opening an event log from a URI, the one place that knows the URI schemes."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from ledgerflow.errors import ConfigurationError
from ledgerflow.ingest.log.base import EventLog
from ledgerflow.settings import Settings

LOG_SUBDIRECTORY = "events"


def log_directory(home: str | Path) -> Path:
    """Where the embedded log of a data home lives (``HOME/events``)."""
    return Path(home) / LOG_SUBDIRECTORY


def open_log(uri: str | None = None, settings: Settings | None = None) -> EventLog:
    """Open the log a URI names. None means $LEDGERFLOW_TRACKING_URI, else the embedded default.

    ``file:HOME`` (or a bare path) opens the embedded log of data home HOME, in ``HOME/events``.
    ``kafka://HOST:PORT[,HOST:PORT][/TOPIC]`` opens the Kafka topic (default ledgerflow.events).
    ``http://HOST:PORT`` (or https) writes through a ledgerflow server (append only; docs/server.md).
    """
    settings = settings or Settings.from_env()
    uri = uri or settings.tracking_uri or f"file:{settings.home}"
    scheme = urlsplit(uri).scheme
    if scheme in ("", "file") or (len(scheme) == 1 and uri[1:3] == ":\\"):
        path = uri[len("file:"):] if uri.startswith("file:") else uri
        if path.startswith("//"):
            path = urlsplit(uri).path
        if not path:
            raise ConfigurationError(f"tracking URI {uri!r} names no directory; use file:PATH")
        from ledgerflow.ingest.log.file import FileLog

        return FileLog(log_directory(path), fsync=settings.fsync)
    if scheme == "kafka":
        from ledgerflow.ingest.log.kafka import KafkaLog

        return KafkaLog.from_uri(uri, settings)
    if scheme in ("http", "https"):
        from ledgerflow.ingest.log.http import HttpLog

        return HttpLog(uri)
    raise ConfigurationError(
        f"unsupported tracking URI {uri!r}: use file:PATH, kafka://HOST:PORT[/TOPIC] or http://HOST:PORT"
    )
