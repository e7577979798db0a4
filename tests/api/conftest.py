"""Fixtures for the API tests: a real server, on the embedded log and on Kafka."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.serving import RunningServer, log_uri_for, serving


@pytest.fixture(params=["embedded", "kafka"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningServer]:
    """A running server, once on the embedded log and once on the real Kafka broker."""
    home = tmp_path / "home"
    home.mkdir()
    with serving(log_uri_for(request, home), home) as running:
        yield running


@pytest.fixture
def embedded_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A running server on the embedded log only (for tests that do not depend on the backend)."""
    home = tmp_path / "home"
    home.mkdir()
    with serving(f"file:{home}", home) as running:
        yield running
