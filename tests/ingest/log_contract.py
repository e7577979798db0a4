"""The contract every event log backend passes (embedded file log, Kafka).

A backend's test module subclasses :class:`EventLogContract` and provides a ``log_factory``
fixture: a callable returning a NEW handle to one fresh, empty log per test (calling it twice
gives two handles to the same log, as two processes would have).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ledgerflow.ingest.log import Entry, EventLog, LogRecord


def _payload(i: int, size: int = 40) -> bytes:
    return (f"event-{i:06d}-".encode() * size)[:size]


def _drain(log: EventLog, start=None) -> list[LogRecord]:
    return list(log.read_all(start, idle_timeout=5.0))


class EventLogContract:
    """Behaviour shared by every EventLog backend."""

    def test_empty_log_reads_nothing(self, log_factory: Callable[[], EventLog]) -> None:
        log = log_factory()
        assert _drain(log) == []
        with log.reader() as reader:
            assert reader.poll(10, timeout=0.2) == []

    def test_append_empty_batch_is_a_no_op(self, log_factory: Callable[[], EventLog]) -> None:
        log = log_factory()
        assert log.append_batch([]) == []
        assert _drain(log) == []

    def test_records_come_back_in_order_with_their_positions(self, log_factory: Callable[[], EventLog]) -> None:
        log = log_factory()
        entries = [Entry("run/a", _payload(i)) for i in range(50)]
        positions = log.append_batch(entries[:20]) + log.append_batch(entries[20:])
        records = _drain(log)
        assert [r.value for r in records] == [e.value for e in entries]
        assert [(r.partition, r.offset) for r in records] == positions
        assert all(r.damage is None for r in records)
        assert all(r.next_offset > r.offset for r in records)

    def test_reader_resumes_from_a_position(self, log_factory: Callable[[], EventLog]) -> None:
        log = log_factory()
        log.append_batch([Entry("run/a", _payload(i)) for i in range(10)])
        with log.reader() as reader:
            first = []
            while len(first) < 4:
                first += reader.poll(4 - len(first), timeout=1.0)
            resume_at = reader.position
        log.append_batch([Entry("run/a", _payload(i)) for i in range(10, 15)])
        rest = _drain(log, resume_at)
        assert [r.value for r in first + rest] == [_payload(i) for i in range(15)]

    def test_end_position_is_where_a_caught_up_reader_stands(self, log_factory: Callable[[], EventLog]) -> None:
        log = log_factory()
        log.append_batch([Entry("run/a", _payload(i)) for i in range(7)])
        end = log.end_position()
        with log.reader() as reader:
            got = 0
            while got < 7:
                got += len(reader.poll(100, timeout=1.0))
            assert {p: o for p, o in reader.position.items() if o} == {p: o for p, o in end.items() if o}

    def test_two_handles_see_each_others_appends(self, log_factory: Callable[[], EventLog]) -> None:
        first, second = log_factory(), log_factory()
        first.append_batch([Entry("run/a", b"from-first")])
        second.append_batch([Entry("run/a", b"from-second")])
        values = [r.value for r in _drain(first)]
        assert values == [b"from-first", b"from-second"]

    def test_poll_waits_for_new_records(self, log_factory: Callable[[], EventLog]) -> None:
        log = log_factory()
        with log.reader() as reader:
            assert reader.poll(10, timeout=0.1) == []
            log.append_batch([Entry("run/a", b"late")])
            got: list[LogRecord] = []
            for _ in range(20):
                got += reader.poll(10, timeout=0.5)
                if got:
                    break
            assert [r.value for r in got] == [b"late"]

    def test_large_record_round_trips(self, log_factory: Callable[[], EventLog]) -> None:
        log = log_factory()
        big = bytes(range(256)) * 4096  # 1 MiB, bigger than any read-ahead boundary
        log.append_batch([Entry("run/a", b"small"), Entry("run/a", big), Entry("run/a", b"after")])
        assert [r.value for r in _drain(log)] == [b"small", big, b"after"]

    @pytest.mark.parametrize("count", [1, 1000])
    def test_max_records_bounds_a_poll(self, log_factory: Callable[[], EventLog], count: int) -> None:
        log = log_factory()
        log.append_batch([Entry("run/a", _payload(i)) for i in range(count)])
        with log.reader() as reader:
            seen = 0
            for _ in range(count + 50):
                batch = reader.poll(7, timeout=0.5)
                assert len(batch) <= 7
                seen += len(batch)
                if seen == count:
                    break
        assert seen == count
