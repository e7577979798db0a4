"""Fixtures shared by the whole suite: a temp data home, a temp embedded log, a real Kafka broker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledgerflow.ingest.log.file import FileLog

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ledgerflow data home, also set as $LEDGERFLOW_HOME for code that reads it."""
    home = tmp_path / "ledgerflow-data"
    monkeypatch.setenv("LEDGERFLOW_HOME", str(home))
    monkeypatch.delenv("LEDGERFLOW_TRACKING_URI", raising=False)
    return home


@pytest.fixture
def file_log(tmp_path: Path) -> Iterator[FileLog]:
    """A fresh embedded log in a temp directory."""
    log = FileLog(tmp_path / "events")
    yield log
    log.close()


# ---- Kafka ------------------------------------------------------------------------------
