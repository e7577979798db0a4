"""The embedded event log: a directory of append-only segment files on local disk.

Format (docs/event-log.md): each record is framed as ``magic "LFE1" | u32 length | u32 crc32 |
payload``, little-endian, the CRC covering the length and the payload. Offsets are global byte
positions; a segment file is named by the offset of its first byte, like Kafka's. Appends from
any number of processes are serialised by ``flock`` on ``log.lock`` and are atomic as a batch
from a reader's point of view: a reader never yields a half-written frame.

Crash safety: a writer killed mid-append leaves a torn frame at the end of the active segment.
Readers report the torn bytes as a damaged record and carry on at the next good frame; frames
before it are untouched because nothing is ever rewritten.
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

from ledgerflow.ingest.log.base import Entry, EventLog, LogReader, LogRecord, Position
from ledgerflow.ingest.log.errors import DeliveryError, LogError, RecordTooLargeError

MAGIC = b"LFE1"
_HEADER = struct.Struct("<4sII")  # magic, payload length, crc32(length bytes + payload)
HEADER_SIZE = _HEADER.size
MAX_RECORD_BYTES = 64 * 1024 * 1024
DEFAULT_SEGMENT_BYTES = 128 * 1024 * 1024
FORMAT_FILE = "LEDGERFLOW_LOG"
FORMAT_LINE = "ledgerflow event log, format 1\n"
_READ_CHUNK = 4 * 1024 * 1024
_DAMAGE_SAMPLE = 4096  # bytes of a damaged region kept in its LogRecord


def frame_header(payload: bytes) -> bytes:
    """The header written before ``payload``: magic, length, and the CRC of length and payload."""
    length = struct.pack("<I", len(payload))
    return _HEADER.pack(MAGIC, len(payload), zlib.crc32(payload, zlib.crc32(length)))


def _segment_name(base: int) -> str:
    return f"{base:020d}.seg"


class FileLog(EventLog):
    """The embedded log in ``directory`` (created if missing).

    ``fsync="always"`` makes :meth:`append_batch` return only after ``fdatasync``: the batch
    survives a power loss. ``fsync="never"`` leaves flushing to the OS: a process crash loses
    nothing, a machine crash may lose the last seconds.
    """

    def __init__(self, directory: str | os.PathLike[str], *, fsync: str = "always",
                 segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        if fsync not in ("always", "never"):
            raise ValueError(f"fsync policy must be 'always' or 'never', not {fsync!r}")
        self.directory = Path(directory)
        self.uri = f"file:{self.directory.resolve()}"
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        self._thread_lock = threading.Lock()
        self._closed = False
        self._open_directory()
        self._lock_fd = os.open(self.directory / "log.lock", os.O_RDWR | os.O_CREAT, 0o644)
        self._write_fd: int | None = None
        self._write_base: int | None = None

    def _open_directory(self) -> None:
        marker = self.directory / FORMAT_FILE
        try:
            if self.directory.exists() and not marker.exists() and any(self.directory.iterdir()):
                raise LogError(f"{self.directory} exists and is not a ledgerflow event log (no {FORMAT_FILE} file)")
            (self.directory / "segments").mkdir(parents=True, exist_ok=True)
            if not marker.exists():
                marker.write_text(FORMAT_LINE)
            elif marker.read_text() != FORMAT_LINE:
                raise LogError(f"{self.directory}: unsupported log format {marker.read_text().strip()!r}")
        except OSError as e:
            raise LogError(f"cannot open event log {self.directory}: {e}") from e

    # -- segments -------------------------------------------------------------------------

    def segment_bases(self) -> list[int]:
        """Base offsets of the segment files, oldest first."""
        names = os.listdir(self.directory / "segments")
        return sorted(int(name[:-4]) for name in names if name.endswith(".seg") and name[:-4].isdigit())

    def segment_path(self, base: int) -> Path:
        return self.directory / "segments" / _segment_name(base)

    def _active_for_append(self) -> tuple[int, int]:
        """(fd, base) of the segment to append to, rolling to a new one when it is full. Lock held."""
        bases = self.segment_bases()
        if not bases:
            bases = [0]
        base = bases[-1]
        if base != self._write_base:
            self._close_write_fd()
            self._write_fd = os.open(self.segment_path(base), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._write_base = base
            self._sync_directory()
        assert self._write_fd is not None
        size = os.fstat(self._write_fd).st_size
        if size >= self.segment_bytes:
            self._close_write_fd()
            base += size
            self._write_fd = os.open(self.segment_path(base), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._write_base = base
            self._sync_directory()
        return self._write_fd, base

    def _sync_directory(self) -> None:
        fd = os.open(self.directory / "segments", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _close_write_fd(self) -> None:
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = self._write_base = None

    # -- the port -------------------------------------------------------------------------

    def append_batch(self, entries: Sequence[Entry]) -> list[tuple[int, int]]:
        if self._closed:
            raise LogError(f"{self.uri} is closed")
        if not entries:
            return []
        frames = []
        for entry in entries:
            if len(entry.value) > MAX_RECORD_BYTES:
                raise RecordTooLargeError(
                    f"event of {len(entry.value)} bytes exceeds the {MAX_RECORD_BYTES} byte record limit"
                )
            frames.append(frame_header(entry.value))
            frames.append(entry.value)
        data = b"".join(frames)
        try:
            with self._thread_lock:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
                try:
                    fd, base = self._active_for_append()
                    start = base + os.fstat(fd).st_size
                    view = memoryview(data)
                    while view:
                        written = os.write(fd, view)
                        view = view[written:]
                finally:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                if self.fsync == "always":
                    # outside the lock: concurrent writers' fsyncs overlap (group commit), and a
                    # completed fdatasync covers every byte written to the file before it.
                    os.fdatasync(fd)
        except OSError as e:
            raise DeliveryError(f"append to {self.uri} failed, the batch is not stored: {e}") from e
        positions = []
        offset = start
        for entry in entries:
            positions.append((0, offset))
            offset += HEADER_SIZE + len(entry.value)
        return positions

    def reader(self, start: Position | None = None) -> FileLogReader:
        return FileLogReader(self, (start or {}).get(0, 0))

    def end_position(self) -> Position:
        bases = self.segment_bases()
        if not bases:
            return {0: 0}
        return {0: bases[-1] + self.segment_path(bases[-1]).stat().st_size}

    def count_records(self, start: int, end: int, limit: int = 100_000) -> int:
        """How many frames lie between offsets ``start`` and ``end`` (at most ``limit``), by hopping
        from header to header; lets /metrics report projector lag in events, not bytes."""
        count, offset = 0, start
        bases = self.segment_bases()
        while offset < end and count < limit:
            base = max((b for b in bases if b <= offset), default=None)
            if base is None:
                break
            try:
                with open(self.segment_path(base), "rb") as segment:
                    size = os.fstat(segment.fileno()).st_size
                    while offset < min(end, base + size) and count < limit:
                        segment.seek(offset - base)
                        header = segment.read(HEADER_SIZE)
                        if len(header) < HEADER_SIZE or header[:4] != MAGIC:
                            return count
                        offset += HEADER_SIZE + _HEADER.unpack(header)[1]
                        count += 1
            except FileNotFoundError:
                break
            if offset >= base + size and not [b for b in bases if b == offset]:
                break
        return count

    def writer_active(self) -> bool:
        """Whether some process holds the append lock right now (a write may be in flight)."""
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        return False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close_write_fd()
            os.close(self._lock_fd)


class FileLogReader(LogReader):
    """Reads frames forward from a global byte offset, across segment files.

    At each offset there is either a good frame (yielded), a complete but corrupt one (skipped to
    the next good frame, reported as damage), or an incomplete one. An incomplete frame is
    waited for while a writer holds the append lock; with no writer active it is torn for good
    and reported as damage, and reading continues after it.
    """

    def __init__(self, log: FileLog, offset: int) -> None:
        self._log = log
        self._offset = offset
        self._chunk = b""
        self._chunk_start = -1  # global offset of self._chunk[0]

    @property
    def position(self) -> Position:
        return {0: self._offset}

    def close(self) -> None:
        self._chunk = b""

    def poll(self, max_records: int = 10_000, timeout: float = 0.0) -> list[LogRecord]:
        deadline = time.monotonic() + timeout
        pause = 0.002
        while True:
            records = self._read_available(max_records)
            if records or time.monotonic() >= deadline:
                return records
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 0.05)

    def _read_available(self, max_records: int) -> list[LogRecord]:
        records: list[LogRecord] = []
        while len(records) < max_records:
            bases = self._log.segment_bases()
            current = [b for b in bases if b <= self._offset]
            if not current:
                if bases:
                    raise LogError(f"offset {self._offset} is before the oldest segment ({bases[0]}) of {self._log.uri}")
                return records
            base = current[-1]
            later = [b for b in bases if b > base]
            size = self._log.segment_path(base).stat().st_size
            end = base + size
            if self._offset > end:
                raise LogError(f"offset {self._offset} is past the end ({end}) of segment {base} of {self._log.uri}")
            with open(self._log.segment_path(base), "rb") as segment:
                complete = self._read_segment(segment, base, end, records, max_records, sealed=bool(later))
            if not complete:
                return records
            if not later:
                return records
            if later[0] != end:
                raise LogError(f"segment {base} of {self._log.uri} ends at {end} but the next starts at {later[0]}")
            self._offset = end  # on to the next segment
        return records

    def _read_segment(self, segment, base: int, end: int, records: list[LogRecord], max_records: int,
                      sealed: bool) -> bool:
        """Append records from this segment up to ``end`` (its size when the poll began); True when all read."""
        while self._offset < end:
            if len(records) >= max_records:
                return False
            header = self._bytes(segment, base, self._offset, HEADER_SIZE, end)
            if len(header) < HEADER_SIZE:
                return self._incomplete(segment, base, end, records, sealed)
            magic, length, crc = _HEADER.unpack(header)
            if magic != MAGIC or length > MAX_RECORD_BYTES:
                if not self._skip_corrupt(segment, base, end, records):
                    return self._incomplete(segment, base, end, records, sealed)
                continue
            if self._offset + HEADER_SIZE + length > end:
                return self._incomplete(segment, base, end, records, sealed)
            payload = self._bytes(segment, base, self._offset + HEADER_SIZE, length, end)
            if zlib.crc32(payload, zlib.crc32(header[4:8])) != crc:
                if not self._skip_corrupt(segment, base, end, records):
                    return self._incomplete(segment, base, end, records, sealed)
                continue
            next_offset = self._offset + HEADER_SIZE + length
            records.append(LogRecord(0, self._offset, next_offset, payload))
            self._offset = next_offset
        return True

    def _bytes(self, segment, base: int, offset: int, count: int, end: int) -> bytes:
        """``count`` bytes at global ``offset`` (fewer at the end), served from a read-ahead chunk."""
        start = offset - self._chunk_start
        if self._chunk_start < 0 or start < 0 or start + count > len(self._chunk):
            segment.seek(offset - base)
            self._chunk = segment.read(max(_READ_CHUNK, count))
            self._chunk_start = offset
            start = 0
        return self._chunk[start:start + count]

    def _skip_corrupt(self, segment, base: int, end: int, records: list[LogRecord]) -> bool:
        """Skip to the next intact frame after a corrupt one; False if there is none (yet)."""
        resume = self._next_good_frame(segment, base, end, self._offset + 1)
        if resume is None:
            return False
        records.append(self._damage(segment, base, resume, "corrupt record skipped"))
        return True

    def _incomplete(self, segment, base: int, end: int, records: list[LogRecord], sealed: bool) -> bool:
        """An unfinished frame at the tail: wait for its writer, or report it torn if there is none."""
        if not sealed:
            if self._log.writer_active():
                return False
            if self._log.segment_path(base).stat().st_size != end - base:
                return False  # it grew meanwhile: read again
        resume = self._next_good_frame(segment, base, end, self._offset + 1)
        records.append(self._damage(segment, base, resume if resume is not None else end, "torn record"))
        return resume is None

    def _next_good_frame(self, segment, base: int, end: int, from_offset: int) -> int | None:
        """Offset of the next intact frame at or after ``from_offset`` in this segment, if any."""
        segment.seek(from_offset - base)
        data = segment.read(end - from_offset)
        index = data.find(MAGIC)
        while index != -1:
            if index + HEADER_SIZE <= len(data):
                _, length, crc = _HEADER.unpack_from(data, index)
                stop = index + HEADER_SIZE + length
                if stop <= len(data) and zlib.crc32(data[index + HEADER_SIZE:stop], zlib.crc32(data[index + 4:index + 8])) == crc:
                    return from_offset + index
            index = data.find(MAGIC, index + 1)
        return None

    def _damage(self, segment, base: int, until: int, reason: str) -> LogRecord:
        segment.seek(self._offset - base)
        sample = segment.read(min(_DAMAGE_SAMPLE, until - self._offset))
        record = LogRecord(0, self._offset, until, sample,
                           damage=f"{reason}: {until - self._offset} bytes at offset {self._offset}")
        self._offset = until
        self._chunk_start = -1
        return record
