"""The event log port over HTTP: the SDK writes through a ledgerflow server (``http://HOST:PORT``).

``append_batch`` POSTs the encoded events to ``/api/v1/events`` as length-prefixed Avro frames
(the server decodes and validates each one, appends the batch to its own log and answers only once
it is durable). Stdlib only (http.client), so the SDK stays light. Reading is not offered over
HTTP: query the server instead (``lf.Client``, docs/server.md).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import struct
import threading
from collections.abc import Iterator, Sequence
from urllib.parse import urlsplit

from ledgerflow.errors import ConfigurationError
from ledgerflow.ingest.log.base import Entry, EventLog, LogReader, LogRecord, Position
from ledgerflow.ingest.log.errors import DeliveryError, LogError, LogUnavailableError

AVRO_CONTENT_TYPE = "application/vnd.ledgerflow.events+avro"
EVENTS_PATH = "/api/v1/events"
POSITION_PATH = "/api/v1/log/position"
#: one request stays well under the server's limits (64 MiB, 10,000 events)
MAX_REQUEST_BYTES = 32 * 1024 * 1024
MAX_REQUEST_EVENTS = 5_000
_FRAME = struct.Struct("<I")


def frame_events(values: Sequence[bytes]) -> bytes:
    """The ingest body: ``[u32 little-endian length][single-object encoded event]`` per event."""
    return b"".join(_FRAME.pack(len(v)) + bytes(v) for v in values)


def _chunks(entries: Sequence[Entry]) -> Iterator[Sequence[Entry]]:
    """Consecutive slices of ``entries`` that each fit one request."""
    start, size = 0, 0
    for i, entry in enumerate(entries):
        grown = size + len(entry.value) + _FRAME.size
        if i > start and (grown > MAX_REQUEST_BYTES or i - start >= MAX_REQUEST_EVENTS):
            yield entries[start:i]
            start, grown = i, len(entry.value) + _FRAME.size
        size = grown
    if start < len(entries):
        yield entries[start:]


class HttpLog(EventLog):
    """Append-only access to the log of a ledgerflow server.

    A batch larger than one request (32 MiB or 5,000 events) is sent as several requests; if a later
    one fails, the earlier ones are already durable, and the SDK's retry re-sends them with the same
    event ids (the projector drops the duplicates, see docs/consistency.md).
    """

    def __init__(self, uri: str, *, timeout: float = 60.0) -> None:
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(f"tracking URI {uri!r}: expected http://HOST:PORT or https://HOST:PORT")
        try:
            port = parts.port
        except ValueError:
            raise ConfigurationError(f"tracking URI {uri!r} has an invalid port") from None
        self.uri = uri.rstrip("/")
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, port
        self._prefix = parts.path.rstrip("/")  # a server mounted under a path prefix
        self._timeout = timeout
        self._lock = threading.Lock()
        self._connection: http.client.HTTPConnection | None = None
        self._closed = False

    # ---- HTTP plumbing -------------------------------------------------------------------------

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            if self._https:
                self._connection = http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout,
                                                               context=ssl.create_default_context())
            else:
                self._connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        return self._connection

    def _drop_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _request(self, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """One request on the kept-alive connection; a stale connection is retried once on a fresh one."""
        if self._closed:
            raise LogError(f"the log {self.uri} is closed")
        headers = dict(headers or {})
        for attempt in (1, 2):
            connection = self._connect()
            try:
                connection.request(method, self._prefix + path, body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                self._drop_connection()  # the server closed an idle keep-alive connection: reconnect
                if attempt == 2:
                    raise LogUnavailableError(f"the ledgerflow server at {self.uri} dropped the connection: {e}") from e
            except (OSError, http.client.HTTPException) as e:
                self._drop_connection()
                reason = "timed out" if isinstance(e, socket.timeout) else f"{type(e).__name__}: {e}"
                raise LogUnavailableError(f"cannot reach the ledgerflow server at {self.uri}: {reason}") from e
        raise AssertionError("unreachable")

    def _error_message(self, status: int, data: bytes) -> str:
        try:
            body = json.loads(data)
            return f"{body['error_code']}: {body['message']}"
        except (ValueError, KeyError, TypeError):
            return data[:500].decode("utf-8", "replace") or f"HTTP {status}"

    # ---- the port ------------------------------------------------------------------------------

    def append_batch(self, entries: Sequence[Entry]) -> list[tuple[int, int]]:
        """POST the events as Avro frames; returns once the server reports them durable in its log."""
        positions: list[tuple[int, int]] = []
        with self._lock:
            for chunk in _chunks(entries):
                body = frame_events([entry.value for entry in chunk])
                status, data = self._request("POST", EVENTS_PATH, body, {"Content-Type": AVRO_CONTENT_TYPE})
                if status != 200:
                    message = (f"the ledgerflow server at {self.uri} refused {len(chunk)} events "
                               f"(HTTP {status}): {self._error_message(status, data)}")
                    raise DeliveryError(message)
                try:
                    positions.extend((int(p), int(o)) for p, o in json.loads(data)["positions"])
                except (ValueError, KeyError, TypeError) as e:
                    raise DeliveryError(f"the server at {self.uri} answered the write with an unreadable body: "
                                        f"{data[:200]!r}") from e
        return positions

    def end_position(self) -> Position:
        with self._lock:
            status, data = self._request("GET", POSITION_PATH)
        if status != 200:
            error = LogUnavailableError if status == 503 else LogError
            raise error(f"the ledgerflow server at {self.uri} did not give its log position "
                        f"(HTTP {status}): {self._error_message(status, data)}")
        return {int(p): int(o) for p, o in json.loads(data)["end_position"].items()}

    def reader(self, start: Position | None = None) -> LogReader:
        raise LogError(f"{self.uri}: the event log cannot be read over HTTP; query the server instead "
                       "(lf.Client, or the query API documented in docs/server.md)")

    def read_all(self, start: Position | None = None, batch: int = 10_000,
                 idle_timeout: float = 10.0) -> Iterator[LogRecord]:
        return self.reader(start)  # type: ignore[return-value]  # always raises

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop_connection()
