"""The embedded file log: the shared contract, plus crash safety and concurrent writers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ledgerflow.ingest.log import Entry, EventLog
from ledgerflow.ingest.log.file import FileLog

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
