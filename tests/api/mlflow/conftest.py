"""Fixtures for driving the real ``mlflow`` client against a real ``ledgerflow server``.

``mlflow_server`` runs once on the embedded log and once on Kafka; ``mlflow_embedded_server`` only
embedded. ``mlflow_client`` is an ``MlflowClient`` on that server, and the fluent API
(``mlflow.start_run`` ...) is pointed at it too. The fluent API keeps process-wide state (the
tracking URI, the active experiment, a stack of active runs): every test starts and ends with
none of it, so tests cannot leak runs or experiments into each other.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# set before mlflow is imported: no usage telemetry from tests, and no retry storms that turn an
# expected 5xx into minutes of backoff
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")

import mlflow  # noqa: E402
import mlflow.tracking.fluent as fluent  # noqa: E402
from mlflow import MlflowClient  # noqa: E402

from tests.api.serving import RunningServer, log_uri_for, serving  # noqa: E402


def _reset_fluent_state() -> None:
    """No active runs, no active experiment, no tracking URI (the fluent API's process-wide state)."""
    while mlflow.active_run() is not None:
        try:
            mlflow.end_run()
        except Exception:  # the run's server is gone: drop the run from the stack all the same
            fluent._active_run_stack.get().pop()
    fluent._active_experiment_id = None
    fluent._last_active_run_id.set(None)
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None unsets it (and MLFLOW_TRACKING_URI)


@pytest.fixture(params=["embedded", "kafka"])
def mlflow_server(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                  ) -> Iterator[RunningServer]:
    """A running ledgerflow server (embedded log, then Kafka) that the fluent mlflow API talks to."""
    home = tmp_path / "home"
    home.mkdir()
    with serving(log_uri_for(request, home), home) as running:
        yield from _pointed_at(running, monkeypatch)


@pytest.fixture
def mlflow_embedded_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningServer]:
    """The same on the embedded log only, for behaviour that does not depend on the log backend."""
    home = tmp_path / "home"
    home.mkdir()
    with serving(f"file:{home}", home) as running:
        yield from _pointed_at(running, monkeypatch)


def _pointed_at(running: RunningServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningServer]:
    _reset_fluent_state()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", running.url)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    mlflow.set_tracking_uri(running.url)
    try:
        yield running
    finally:
        _reset_fluent_state()


@pytest.fixture
def mlflow_client(mlflow_server: RunningServer) -> MlflowClient:
    return MlflowClient(tracking_uri=mlflow_server.url)


@pytest.fixture
def embedded_client(mlflow_embedded_server: RunningServer) -> MlflowClient:
    return MlflowClient(tracking_uri=mlflow_embedded_server.url)
