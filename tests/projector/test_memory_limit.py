"""The DuckDB memory limit: sized to the machine by default, the environment's when set, and used."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ledgerflow.projector import ProjectionStore
from ledgerflow.settings import Settings, default_duckdb_memory_limit


def _megabytes(limit: str) -> int:
    assert limit.endswith("MB"), limit
    return int(limit[:-2])


def test_default_is_a_quarter_of_memory_and_never_below_256mb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGERFLOW_DUCKDB_MEMORY_LIMIT", raising=False)
    physical_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    assert _megabytes(Settings.from_env().duckdb_memory_limit) == max(256, physical_mb // 4)
    assert _megabytes(default_duckdb_memory_limit()) >= 256


def test_the_store_opens_duckdb_with_the_configured_limit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LEDGERFLOW_DUCKDB_MEMORY_LIMIT", "300MB")
    store = ProjectionStore(tmp_path / "state.duckdb")
    try:
        limit = store.connection.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    finally:
        store.close()
    assert limit.replace(" ", "") in ("286.1MiB", "300.0MB"), limit  # DuckDB shows 300MB in binary units
