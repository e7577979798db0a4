"""The embedded file log: the shared contract, plus crash safety and concurrent writers."""

from __future__ import annotations

import fcntl
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ledgerflow.ingest.log import Entry, EventLog, LogError, LogRecord
from ledgerflow.ingest.log.file import HEADER_SIZE, FileLog, frame_header

from .log_contract import EventLogContract


class TestFileLogContract(EventLogContract):
    @pytest.fixture
    def log_factory(self, tmp_path: Path) -> Iterator[Callable[[], EventLog]]:
        handles: list[FileLog] = []

        def factory() -> EventLog:
            handles.append(FileLog(tmp_path / "events", segment_bytes=64 * 1024))  # small: exercise rolling
            return handles[-1]

        yield factory
        for handle in handles:
            handle.close()


# ---- crash safety and concurrency ------------------------------------------------------------

WRITER = r"""
import sys
from ledgerflow.ingest.log import Entry
from ledgerflow.ingest.log.file import FileLog
log = FileLog(sys.argv[1], segment_bytes=int(sys.argv[4]))
name, batches = sys.argv[2], int(sys.argv[3])
for b in range(batches):
    # record sizes vary so frames straddle read-ahead chunks and segment ends
    log.append_batch([Entry(f"run/{name}", f"{name}:{b}:{i}:".encode() * (1 + (b * 7 + i) % 300)) for i in range(20)])
    print(f"acked {b}", flush=True)
"""


def _spawn_writer(directory: Path, name: str, batches: int, segment_bytes: int = 1 << 20) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(directory), name, str(batches), str(segment_bytes)],
        stdout=subprocess.PIPE, text=True,
    )


def _good_values(directory: Path) -> tuple[list[bytes], list[LogRecord]]:
    log = FileLog(directory)
    try:
        records = list(log.read_all(idle_timeout=2.0))
    finally:
        log.close()
    return [r.value for r in records if r.damage is None], [r for r in records if r.damage]


def test_sigkilled_writers_never_lose_acknowledged_records(tmp_path: Path) -> None:
    directory = tmp_path / "events"
    rng = random.Random(7)
    acked: list[tuple[str, int]] = []
    for attempt in range(6):
        name = f"w{attempt}"
        writer = _spawn_writer(directory, name, batches=100_000, segment_bytes=256 * 1024)
        assert writer.stdout is not None
        target = rng.randint(3, 40)
        last = -1
        for line in writer.stdout:
            last = int(line.split()[1])
            if last >= target:
                break
        time.sleep(rng.random() * 0.02)  # land the kill at an arbitrary point of a later append
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        acked += [(name, b) for b in range(last + 1)]
    values, damaged = _good_values(directory)
    batches_seen = {tuple(v.split(b":")[:2]) for v in values}
    for name, batch in acked:
        assert (name.encode(), str(batch).encode()) in batches_seen, f"acknowledged batch {name}:{batch} lost"
    # within each writer, records are in append order
    for attempt in range(6):
        own = [tuple(map(int, v.split(b":")[1:3])) for v in values if v.startswith(f"w{attempt}:".encode())]
        assert own == sorted(own)
    assert all("torn" in r.damage or "corrupt" in r.damage for r in damaged)


def test_a_segment_truncated_mid_record_keeps_everything_before_it_and_accepts_appends(tmp_path: Path) -> None:
    directory = tmp_path / "events"
    log = FileLog(directory)
    log.append_batch([Entry("run/a", f"event {i}".encode() * 50) for i in range(10)])
    segment = log.segment_path(log.segment_bases()[-1])
    size = segment.stat().st_size
    with open(segment, "r+b") as f:
        f.truncate(size - 123)  # the last record loses its tail, as after a crash mid-write
    values, damaged = _good_values(directory)
    assert values == [f"event {i}".encode() * 50 for i in range(9)]
    assert len(damaged) == 1 and damaged[0].damage.startswith("torn record")
    log.append_batch([Entry("run/a", b"after the crash")])
    values, damaged = _good_values(directory)
    assert values[-1] == b"after the crash" and len(values) == 10 and len(damaged) == 1
    log.close()


def test_a_corrupt_record_in_the_middle_is_skipped_and_reported(tmp_path: Path) -> None:
    directory = tmp_path / "events"
    log = FileLog(directory)
    positions = log.append_batch([Entry("run/a", f"event {i}".encode() * 20) for i in range(5)])
    segment = log.segment_path(0)
    with open(segment, "r+b") as f:
        f.seek(positions[2][1] + HEADER_SIZE + 5)
        f.write(b"X")  # a flipped byte inside record 2's payload
    values, damaged = _good_values(directory)
    assert values == [f"event {i}".encode() * 20 for i in (0, 1, 3, 4)]
    assert len(damaged) == 1 and "corrupt" in damaged[0].damage
    assert damaged[0].offset == positions[2][1] and damaged[0].next_offset == positions[3][1]
    log.close()


def test_an_incomplete_record_is_awaited_while_a_writer_holds_the_lock(tmp_path: Path) -> None:
    directory = tmp_path / "events"
    log = FileLog(directory)
    log.append_batch([Entry("run/a", b"complete")])
    partial = frame_header(b"x" * 100) + b"x" * 40  # a writer mid-write
    lock = os.open(directory / "log.lock", os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        with open(log.segment_path(0), "ab") as f:
            f.write(partial)
        other = FileLog(directory)
        with other.reader() as reader:
            assert [r.value for r in reader.poll(10, timeout=0.2)] == [b"complete"]
            assert reader.poll(10, timeout=0.2) == []  # waits, reports no damage
            fcntl.flock(lock, fcntl.LOCK_UN)  # the "writer" died without finishing
            damaged = reader.poll(10, timeout=1.0)
            assert len(damaged) == 1 and damaged[0].damage.startswith("torn record")
        other.close()
    finally:
        os.close(lock)
        log.close()


def test_two_writer_processes_at_once_interleave_whole_batches(tmp_path: Path) -> None:
    directory = tmp_path / "events"
    FileLog(directory).close()
    writers = [_spawn_writer(directory, name, batches=60, segment_bytes=128 * 1024) for name in ("alpha", "beta")]
    for writer in writers:
        writer.communicate(timeout=120)
        assert writer.returncode == 0
    values, damaged = _good_values(directory)
    assert damaged == []
    assert len(values) == 2 * 60 * 20
    for name in ("alpha", "beta"):
        own = [tuple(map(int, v.split(b":")[1:3])) for v in values if v.startswith(f"{name}:".encode())]
        assert own == [(b, i) for b in range(60) for i in range(20)]
    # batches are atomic: the 20 records of a batch are contiguous
    prefixes = [tuple(v.split(b":")[:2]) for v in values]
    for start in range(0, len(prefixes), 20):
        assert len(set(prefixes[start:start + 20])) == 1


def test_a_directory_that_is_not_a_log_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(LogError, match="is not a ledgerflow event log"):
        FileLog(tmp_path)


def test_appending_to_a_closed_log_raises(tmp_path: Path) -> None:
    log = FileLog(tmp_path / "events")
    log.close()
    with pytest.raises(LogError, match="is closed"):
        log.append_batch([Entry("run/a", b"x")])


def test_segments_roll_and_offsets_stay_global(tmp_path: Path) -> None:
    log = FileLog(tmp_path / "events", segment_bytes=1000)
    positions = [log.append_batch([Entry("run/a", bytes([i]) * 300)])[0] for i in range(10)]
    # 312-byte frames, rolled once a segment reaches 1000 bytes: 4 records per segment
    assert log.segment_bases() == [positions[0][1], positions[4][1], positions[8][1]] == [0, 1248, 2496]
    assert [r.value[0] for r in log.read_all()] == list(range(10))
    log.close()


def test_a_reader_tailing_a_log_that_another_process_appends_to_sees_every_record_once(tmp_path: Path) -> None:
    directory = tmp_path / "events"
    FileLog(directory).close()
    writer = _spawn_writer(directory, "live", batches=300, segment_bytes=64 * 1024)  # rolls segments often
    log = FileLog(directory)
    seen: list[bytes] = []
    damaged: list[LogRecord] = []
    with log.reader() as reader:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for record in reader.poll(50, timeout=0.01):  # small polls race the writer's appends
                (damaged if record.damage else seen).append(record if record.damage else record.value)
            if writer.poll() is not None and len(seen) >= 300 * 20:
                break
    writer.communicate(timeout=60)
    log.close()
    assert damaged == []
    assert [tuple(map(int, v.split(b":")[1:3])) for v in seen] == [(b, i) for b in range(300) for i in range(20)]


def test_records_between_two_offsets_are_counted_across_segments(tmp_path: Path) -> None:
    log = FileLog(tmp_path / "events", segment_bytes=1000)
    positions = [log.append_batch([Entry("run/a", bytes(300))])[0][1] for _ in range(10)]
    end = log.end_position()[0]
    assert log.count_records(0, end) == 10
    assert log.count_records(positions[3], end) == 7
    assert log.count_records(positions[3], positions[8]) == 5
    assert log.count_records(0, end, limit=4) == 4
    log.close()
