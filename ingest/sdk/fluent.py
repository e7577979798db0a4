"""The fluent API: MLflow's module-level functions with the same names and signatures.

One process-wide TrackingClient (for the current tracking URI) and a stack of active runs,
shared by all threads so a background thread can log to the run the main thread started.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from ledgerflow.ingest.sdk import validation
from ledgerflow.ingest.sdk.client import (
    DEFAULT_EXPERIMENT_ID,
    DEFAULT_EXPERIMENT_NAME,
    TrackingClient,
    resolve_tracking_uri,
)
from ledgerflow.ingest.sdk.entities import Experiment, Run, RunData, RunInfo, RunStatus
from ledgerflow.ingest.sdk.errors import RunStateError
from ledgerflow.ingest.sdk.outbox import Outbox
from ledgerflow.settings import Settings

_lock = threading.RLock()
_tracking_uri: str | None = None
_client: TrackingClient | None = None
_outbox: Outbox | None = None
_experiment_id: str | None = None
_run_stack: list[ActiveRun] = []
_run_ids: list[str] = []  # run ids of _run_stack, read by the log_metric hot path
_last_run: ActiveRun | None = None
_exit_hook_registered = False


class ActiveRun(Run):
    """The run returned by :func:`start_run`; as a context manager it ends the run on exit.

    Leaving the block normally ends the run FINISHED, by an exception FAILED, by Ctrl-C KILLED.
    """

    def __init__(self, run: Run) -> None:
        super().__init__(run.info, run.data)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            status = RunStatus.FINISHED
        elif issubclass(exc_type, KeyboardInterrupt):
            status = RunStatus.KILLED
        else:
            status = RunStatus.FAILED
        if self.info.run_id in _run_ids:
            end_run(status)


# -- tracking URI and client ----------------------------------------------------------------

def set_tracking_uri(uri: str | os.PathLike[str]) -> None:
    """Where to log: ``file:PATH`` (a data home) or ``kafka://HOST:PORT[/TOPIC]``. Flushes the previous client."""
    global _tracking_uri, _client, _outbox
    resolved = resolve_tracking_uri(uri, Settings.from_env())
    with _lock:
        if _client is not None and _client.tracking_uri != resolved:
            old, _client, _outbox = _client, None, None
            old.close()
        _tracking_uri = resolved


def get_tracking_uri() -> str:
    """The URI set by set_tracking_uri, else $LEDGERFLOW_TRACKING_URI, else file: + $LEDGERFLOW_HOME."""
    return _tracking_uri or resolve_tracking_uri(None, Settings.from_env())


def get_client() -> TrackingClient:
    """The TrackingClient the fluent API writes through (created on first use)."""
    global _client, _outbox
    client = _client
    if client is None:
        with _lock:
            if _client is None:
                _client = TrackingClient(get_tracking_uri())
                _outbox = _client._outbox
            client = _client
    return client


def flush() -> None:
    """Block until everything logged before this call is durable; raise DeliveryFailedError if it is not."""
    if _client is not None:
        _client.flush()


# -- experiments ----------------------------------------------------------------------------

def set_experiment(experiment_name: str | None = None, experiment_id: str | None = None) -> Experiment:
    """Make an experiment active for new runs, creating it (by its deterministic id) on first use."""
    global _experiment_id
    if (experiment_name is None) == (experiment_id is None):
        raise RunStateError("set_experiment needs exactly one of experiment_name or experiment_id")
    client = get_client()
    with _lock:
        if experiment_name is not None:
            experiment = client.ensure_experiment(experiment_name)
        else:
            experiment_id = validation.experiment_id(experiment_id)
            if experiment_id == DEFAULT_EXPERIMENT_ID:
                experiment = client.ensure_experiment(DEFAULT_EXPERIMENT_NAME)
            else:  # an id from elsewhere: the SDK cannot look its name up
                experiment = client.known_experiment(experiment_id) or Experiment(experiment_id, "")
        _experiment_id = experiment.experiment_id
        return experiment


# -- runs -----------------------------------------------------------------------------------

def start_run(run_id: str | None = None, experiment_id: str | None = None, run_name: str | None = None,
              nested: bool = False, tags: Mapping[str, Any] | None = None, description: str | None = None,
              parent_run_id: str | None = None) -> ActiveRun:
    """Start a new run (or resume ``run_id``) and make it active; nest under the active run with nested=True."""
    global _exit_hook_registered
    client = get_client()
    with _lock:
        if _run_stack and not nested and parent_run_id is None:
            raise RunStateError(
                f"run {_run_ids[-1]} is already active; end it with end_run() first, or pass nested=True "
                "to start a child run"
            )
        if parent_run_id is None and nested and _run_stack:
            parent_run_id = _run_ids[-1]
        experiment = experiment_id if experiment_id is not None else (_experiment_id or DEFAULT_EXPERIMENT_ID)
        if run_id is not None:
            if run_id in _run_ids:
                raise RunStateError(f"run {run_id} is already active")
            run = client.resume_run(run_id, validation.experiment_id(experiment))
            if tags:
                client.set_tags(run_id, tags)
        else:
            run = client.create_run(experiment, tags=tags, run_name=run_name, parent_run_id=parent_run_id,
                                    description=description)
        active = ActiveRun(run)
        _run_stack.append(active)
        _run_ids.append(run.info.run_id)
        if not _exit_hook_registered:
            atexit.register(_end_runs_at_exit)  # after the outbox's hook, so it runs before it
            _exit_hook_registered = True
        return active


def end_run(status: str = RunStatus.FINISHED) -> None:
    """End the active run with ``status`` once all its metrics are durable; no-op without an active run."""
    global _last_run
    with _lock:
        if not _run_stack:
            return
        run = _run_stack[-1]
        get_client().set_terminated(run.info.run_id, status)
        _run_stack.pop()
        _run_ids.pop()
        _last_run = run


def active_run() -> ActiveRun | None:
    """The innermost active run, or None."""
    return _run_stack[-1] if _run_stack else None


def last_active_run() -> ActiveRun | None:
    """The active run, else the run that ended last in this process."""
    return _run_stack[-1] if _run_stack else _last_run


def _current_run_id() -> str:
    """The active run's id, starting a run first if there is none (as MLflow does)."""
    if _run_ids:
        return _run_ids[-1]
    return start_run().info.run_id


def _end_runs_at_exit() -> None:
    """At interpreter exit, end runs still active (FINISHED, as MLflow does); errors go to stderr."""
    while _run_stack:
        try:
            end_run()
        except Exception as e:  # nobody left to raise to
            print(f"ledgerflow: could not end run {_run_ids[-1]} at exit: {e}", file=sys.stderr)
            _run_stack.pop()
            _run_ids.pop()


# -- logging --------------------------------------------------------------------------------

def log_metric(key: str, value: float, step: int | None = None, timestamp: int | None = None, *,
               synchronous: bool | None = None, run_id: str | None = None) -> None:
    """Buffer one metric point (step default 0, timestamp default now in ms); returns in about a microsecond."""
    if run_id is None:
        run_id = _run_ids[-1] if _run_ids else _current_run_id()
    else:
        validation.run_id(run_id)
    (_outbox or get_client()._outbox).add_point(run_id, key, value, step, timestamp)
    if synchronous:
        flush()


def log_metrics(metrics: Mapping[str, float], step: int | None = None, timestamp: int | None = None, *,
                synchronous: bool | None = None, run_id: str | None = None) -> None:
    """Buffer several metrics with one step and one timestamp."""
    if not isinstance(metrics, Mapping):
        raise validation.InvalidKeyError(f"metrics must be a dict of key -> value, got {type(metrics).__name__}")
    if run_id is None:
        run_id = _current_run_id()
    else:
        validation.run_id(run_id)
    if timestamp is None:
        from ledgerflow.ingest.sdk.client import _now_ms

        timestamp = _now_ms()
    outbox = _outbox or get_client()._outbox
    for key, value in metrics.items():
        outbox.add_point(run_id, key, value, step, timestamp)
    if synchronous:
        flush()


def log_param(key: str, value: Any, *, synchronous: bool | None = None) -> Any:
    """Log one param of the active run; returns ``value``. Logging a different value again raises."""
    get_client().log_param(_current_run_id(), key, value)
    if synchronous:
        flush()
    return value


def log_params(params: Mapping[str, Any], *, synchronous: bool | None = None, run_id: str | None = None) -> None:
    get_client().log_params(run_id or _current_run_id(), params)
    if synchronous:
        flush()


def set_tag(key: str, value: Any, *, synchronous: bool | None = None) -> None:
    get_client().set_tag(_current_run_id(), key, value)
    if synchronous:
        flush()


def set_tags(tags: Mapping[str, Any], *, synchronous: bool | None = None) -> None:
    get_client().set_tags(_current_run_id(), tags)
    if synchronous:
        flush()


def delete_tag(key: str) -> None:
    get_client().delete_tag(_current_run_id(), key)


def log_input(dataset: Any, context: str | None = None, tags: Mapping[str, Any] | None = None) -> None:
    """Record a dataset the active run used (lf.Dataset or any MLflow-Dataset-like object)."""
    get_client().log_input(_current_run_id(), dataset, context=context, tags=tags)


def log_artifact(local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    """Copy a file (or directory) into the active run's artifact directory and record it."""
    get_client().log_artifact(_current_run_id(), local_path, artifact_path)


def _reset_for_tests() -> None:
    """Forget the fluent state (flushing and closing the client); for test isolation."""
    global _tracking_uri, _client, _outbox, _experiment_id, _last_run
    with _lock:
        client, _client, _outbox = _client, None, None
        _run_stack.clear()
        _run_ids.clear()
        _tracking_uri = _experiment_id = _last_run = None
        if client is not None:
            client.close()


__all__ = [
    "ActiveRun", "RunData", "RunInfo", "active_run", "delete_tag", "end_run", "flush", "get_client",
    "get_tracking_uri", "last_active_run", "log_artifact", "log_input", "log_metric", "log_metrics", "log_param",
    "log_params", "set_experiment", "set_tag", "set_tags", "set_tracking_uri", "start_run",
]
