"""TrackingClient: the explicit, run-id based API (like MlflowClient) that the fluent API uses.

The SDK only writes events; it never reads the store. What it knows about experiments and runs
is what this process created, which is enough to keep params immutable and artifacts placed.
"""

from __future__ import annotations

import getpass
import os
import threading
import time
import uuid
from array import array
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ledgerflow.errors import ConfigurationError
from ledgerflow.ingest.log.uri import open_log
from ledgerflow.ingest.sdk import validation
from ledgerflow.ingest.sdk.artifacts import files_to_store, run_artifact_root, store_file
from ledgerflow.ingest.sdk.entities import (
    Experiment,
    Metric,
    Param,
    Run,
    RunInfo,
    RunStatus,
    RunTag,
    dataset_record,
    friendly_run_name,
    input_tags,
)
from ledgerflow.ingest.sdk.errors import InvalidMetricValueError, InvalidStepError, ParamOverwriteError, RunStateError
from ledgerflow.ingest.sdk.outbox import Outbox
from ledgerflow.schemas import Event, make_envelope
from ledgerflow.settings import Settings

#: experiment ids are uuid5(EXPERIMENT_NAMESPACE, name).hex, so every process derives the same id
EXPERIMENT_NAMESPACE = uuid.UUID("6c656467-6572-466c-8f77-657870657269")
DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"
PARENT_RUN_TAG = "mlflow.parentRunId"


def experiment_id_for(name: str) -> str:
    """The deterministic id of an experiment name ("0" for MLflow's "Default")."""
    if name == DEFAULT_EXPERIMENT_NAME:
        return DEFAULT_EXPERIMENT_ID
    return uuid.uuid5(EXPERIMENT_NAMESPACE, name).hex


def resolve_tracking_uri(uri: str | os.PathLike[str] | None, settings: Settings) -> str:
    """The absolute tracking URI: ``file:/abs/path``, ``kafka://...`` or ``http(s)://HOST:PORT`` (a server)."""
    text = os.fspath(uri) if uri is not None else (settings.tracking_uri or f"file:{settings.home}")
    scheme = urlsplit(text).scheme.lower()
    if scheme in ("http", "https"):
        return text.rstrip("/")
    if scheme == "kafka":
        return text
    if scheme not in ("", "file"):
        raise ConfigurationError(f"unsupported tracking URI {text!r}: use file:PATH, kafka://HOST:PORT[/TOPIC] "
                                 "or http://HOST:PORT")
    path = text[len("file:"):] if text.startswith("file:") else text
    if path.startswith("//"):
        path = urlsplit(text).path
    if not path:
        raise ConfigurationError(f"tracking URI {text!r} names no directory; use file:PATH")
    return f"file:{Path(path).absolute()}"


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class TrackingClient:
    """Write experiments, runs, params, tags, metrics, inputs and artifacts as events to one log.

    Options default to the environment (:class:`~ledgerflow.settings.Settings`): buffer_max_points
    (LEDGERFLOW_BUFFER_MAX_POINTS), buffer_full 'block'|'raise' (LEDGERFLOW_BUFFER_FULL),
    flush_interval seconds (LEDGERFLOW_FLUSH_INTERVAL), actor (LEDGERFLOW_ACTOR, else the OS user).
    """

    def __init__(self, tracking_uri: str | os.PathLike[str] | None = None, *, settings: Settings | None = None,
                 buffer_max_points: int | None = None, buffer_full: str | None = None,
                 flush_interval: float | None = None, max_points_per_event: int = 10_000,
                 actor: str | None = None) -> None:
        self._settings = settings or Settings.from_env()
        self.tracking_uri = resolve_tracking_uri(tracking_uri, self._settings)
        if self.tracking_uri.startswith("file:"):
            self.home = Path(self.tracking_uri[len("file:"):])
        else:
            self.home = self._settings.home.absolute()
        self.actor = actor or self._settings.actor or _os_user()
        full = buffer_full or self._settings.buffer_full
        if full not in ("block", "raise"):
            raise ConfigurationError(f"buffer_full must be 'block' or 'raise', not {full!r}")
        self._outbox = Outbox(
            lambda: open_log(self.tracking_uri, self._settings), actor=self.actor,
            max_points=buffer_max_points or self._settings.buffer_max_points, buffer_full=full,
            flush_interval=flush_interval or self._settings.flush_interval,
            max_points_per_event=max_points_per_event,
        )
        self._state_lock = threading.Lock()
        self._experiments: dict[str, Experiment] = {}
        self._runs: dict[str, Run] = {}

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def producer_id(self) -> str:
        return self._outbox.producer_id

    def _event(self, event_type: str, entity_key: str, **fields: Any) -> Event:
        envelope = make_envelope(actor=self.actor, producer_id=self._outbox.producer_id, sequence=0,
                                 entity_key=entity_key)  # the sequence is assigned in log order at delivery
        return Event(event_type, {"envelope": envelope, **fields})

    def _emit(self, event_type: str, entity_key: str, **fields: Any) -> None:
        self._outbox.add_event(self._event(event_type, entity_key, **fields))

    def flush(self) -> None:
        """Return once everything logged before the call is durable; raise DeliveryFailedError otherwise."""
        self._outbox.flush()

    def close(self) -> None:
        """Flush and release the log; the client cannot be used afterwards."""
        self._outbox.close()

    def __enter__(self) -> TrackingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- experiments ------------------------------------------------------------------------

    def create_experiment(self, name: str, artifact_location: str | None = None,
                          tags: Mapping[str, Any] | None = None) -> str:
        """Emit ExperimentCreated for ``name`` and return its deterministic id (re-creation is idempotent)."""
        name = validation.experiment_name(name)
        experiment_id = experiment_id_for(name)
        tag_records = validation.tags_list(tags)
        location = artifact_location or (self.home / "artifacts" / experiment_id).absolute().as_uri()
        self._emit("ExperimentCreated", f"experiment/{experiment_id}", experiment_id=experiment_id, name=name,
                   artifact_location=location, tags=tag_records)
        with self._state_lock:
            self._experiments[experiment_id] = Experiment(experiment_id, name, location,
                                                          {t["key"]: t["value"] for t in tag_records})
        return experiment_id

    def ensure_experiment(self, name: str) -> Experiment:
        """The experiment named ``name``, emitting ExperimentCreated the first time this process uses it."""
        experiment_id = experiment_id_for(validation.experiment_name(name))
        if experiment_id not in self._experiments:
            self.create_experiment(name)
        return self._experiments[experiment_id]

    def known_experiment(self, experiment_id: str) -> Experiment | None:
        """The experiment if this process created it."""
        return self._experiments.get(experiment_id)

    # -- runs -------------------------------------------------------------------------------

    def create_run(self, experiment_id: str, start_time: int | None = None, tags: Mapping[str, Any] | None = None,
                   run_name: str | None = None, *, parent_run_id: str | None = None,
                   description: str | None = None) -> Run:
        """Start a new RUNNING run (RunStarted) and return it."""
        experiment_id = validation.experiment_id(experiment_id)
        if experiment_id == DEFAULT_EXPERIMENT_ID and experiment_id not in self._experiments:
            self.ensure_experiment(DEFAULT_EXPERIMENT_NAME)
        if parent_run_id is not None:
            validation.run_id(parent_run_id)
        tag_map = {t["key"]: t["value"] for t in validation.tags_list(tags)}
        run_name = validation.run_name(run_name or tag_map.get("mlflow.runName") or friendly_run_name())
        start = _now_ms() if start_time is None else validation.integer("start_time", "start_time", start_time)
        run_id = uuid.uuid4().hex
        tag_map.setdefault("mlflow.user", self.actor)
        tag_map["mlflow.runName"] = run_name
        if parent_run_id is not None:
            tag_map[PARENT_RUN_TAG] = parent_run_id
        if description is not None:
            tag_map["mlflow.note.content"] = validation.tag_value("mlflow.note.content", description)
        artifact_uri = run_artifact_root(self.home.absolute(), experiment_id, run_id).as_uri()
        self._emit("RunStarted", f"run/{run_id}", run_id=run_id, experiment_id=experiment_id, run_name=run_name,
                   parent_run_id=parent_run_id, start_time=start, status=RunStatus.RUNNING, user_id=self.actor,
                   artifact_uri=artifact_uri, tags=[{"key": k, "value": v} for k, v in tag_map.items()])
        info = RunInfo(run_id=run_id, experiment_id=experiment_id, run_name=run_name, user_id=self.actor,
                       status=RunStatus.RUNNING, start_time=start, artifact_uri=artifact_uri,
                       parent_run_id=parent_run_id)
        run = Run(info)
        run.data.tags.update(tag_map)
        with self._state_lock:
            self._runs[run_id] = run
        return run

    def resume_run(self, run_id: str, experiment_id: str) -> Run:
        """Mark an existing run RUNNING again (as mlflow.start_run(run_id=...) does)."""
        run_id = validation.run_id(run_id)
        run = self._runs.get(run_id)
        if run is None:
            artifact_uri = run_artifact_root(self.home.absolute(), experiment_id, run_id).as_uri()
            run = Run(RunInfo(run_id=run_id, experiment_id=experiment_id, run_name=run_id, user_id=self.actor,
                              status=RunStatus.RUNNING, start_time=_now_ms(), artifact_uri=artifact_uri))
            with self._state_lock:
                self._runs[run_id] = run
        self._emit("RunStatusChanged", f"run/{run_id}", run_id=run_id, status=RunStatus.RUNNING, end_time=None)
        run.info.status, run.info.end_time = RunStatus.RUNNING, None
        return run

    def get_run(self, run_id: str) -> Run:
        """What this process logged about a run (params and tags, not metrics)."""
        try:
            return self._runs[run_id]
        except KeyError:
            raise RunStateError(f"run {run_id!r} was not created or resumed by this process; "
                                "the SDK writes events and cannot read other runs") from None

    def set_terminated(self, run_id: str, status: str = RunStatus.FINISHED, end_time: int | None = None) -> None:
        """End a run (RunStatusChanged with end time) after all its metrics, and wait until it is durable."""
        run_id = validation.run_id(run_id)
        status = status or RunStatus.FINISHED
        if status not in RunStatus.ALL:
            raise RunStateError(f"unknown run status {status!r}: use one of {', '.join(RunStatus.ALL)}")
        end = _now_ms() if end_time is None else validation.integer("end_time", "end_time", end_time)
        self._emit("RunStatusChanged", f"run/{run_id}", run_id=run_id, status=status,
                   end_time=end if status in RunStatus.TERMINATED else None)
        run = self._runs.get(run_id)
        if run is not None:
            run.info.status = status
            run.info.end_time = end if status in RunStatus.TERMINATED else None
        self.flush()

    # -- metrics ----------------------------------------------------------------------------

    def log_metric(self, run_id: str, key: str, value: float, timestamp: int | None = None,
                   step: int | None = None) -> None:
        """Buffer one point (MlflowClient's argument order: timestamp before step)."""
        self._outbox.add_point(validation.run_id(run_id), key, value, step, timestamp)

    def log_metric_series(self, run_id: str, key: str, values: Any, steps: Any = None,
                          timestamps: Any = None) -> None:
        """Log a whole array of points as packed MetricsLogged events, with no per-point Python work.

        ``values``: floats (list, array.array or numpy); ``steps`` default 0..n-1; ``timestamps``
        (ms) default now. Series longer than max_points_per_event are split into several events.
        """
        from ledgerflow.schemas.metric_columns import pack_series

        run_id = validation.run_id(run_id)
        validation.check_key(key, "metric key")
        values = _column(key, "values", values, "iufb")
        n = len(values)
        steps = array("q", range(n)) if steps is None else _column(key, "steps", steps, "iu")
        timestamps = array("q", [_now_ms()]) * n if timestamps is None else _column(key, "timestamps", timestamps, "iu")
        try:
            whole = pack_series(key, steps, timestamps, values)
        except ValueError:
            raise InvalidStepError(f"metric {key!r}: values, steps and timestamps differ in length "
                                   f"({n}, {len(steps)}, {len(timestamps)})") from None
        except (TypeError, OverflowError) as e:
            raise InvalidMetricValueError(f"metric {key!r}: values must hold numbers, steps and timestamps "
                                          f"int64 integers: {e}") from None
        cap = self._outbox.max_points_per_event * 8
        for start in range(0, len(whole["values"]), cap):
            record = {column: whole[column][start:start + cap] for column in ("steps", "timestamps", "values")}
            record["key"] = key
            self._outbox.add_event(self._event("MetricsLogged", f"run/{run_id}", run_id=run_id, series=[record]),
                                   weight=len(record["values"]) // 8)

    # -- params and tags --------------------------------------------------------------------

    def log_param(self, run_id: str, key: str, value: Any) -> Any:
        """Log one immutable param; returns ``value`` as MLflow does."""
        self.log_params(run_id, {key: value})
        return value

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log params as one ParamsLogged event. Same value again is a no-op; a different one raises."""
        run_id = validation.run_id(run_id)
        if not isinstance(params, Mapping):
            raise validation.InvalidKeyError(f"params must be a dict of key -> value, got {type(params).__name__}")
        checked = {validation.check_key(k, "param key"): validation.param_value(k, v) for k, v in params.items()}
        self._log_checked_params(run_id, checked)

    def _log_checked_params(self, run_id: str, checked: dict[str, str]) -> None:
        with self._state_lock:
            logged = self._params_of(run_id)
            for key, value in checked.items():
                if key in logged and logged[key] != value:
                    raise ParamOverwriteError(
                        f"param {key!r} of run {run_id} was already logged as {logged[key]!r}; it cannot change to "
                        f"{value!r} (params are immutable: log a new key or start a new run)"
                    )
            new = {k: v for k, v in checked.items() if k not in logged}
            if not new:
                return
            self._emit("ParamsLogged", f"run/{run_id}", run_id=run_id,
                       params=[{"key": k, "value": v} for k, v in new.items()])
            logged.update(new)

    def _params_of(self, run_id: str) -> dict[str, str]:
        run = self._runs.get(run_id)
        if run is None:  # a run of another process: remember what this process logged to it
            run = self._runs[run_id] = Run(RunInfo(run_id, "", run_id, "", RunStatus.RUNNING, 0))
        return run.data.params

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        self.set_tags(run_id, {key: value})

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Set (overwrite) tags as one RunTagsSet event."""
        run_id = validation.run_id(run_id)
        records = validation.tags_list(tags)
        if records:
            self._emit("RunTagsSet", f"run/{run_id}", run_id=run_id, tags=records)
            run = self._runs.get(run_id)
            if run is not None:
                run.data.tags.update({r["key"]: r["value"] for r in records})

    def delete_tag(self, run_id: str, key: str) -> None:
        run_id = validation.run_id(run_id)
        self._emit("RunTagDeleted", f"run/{run_id}", run_id=run_id, key=validation.check_key(key, "tag key"))
        run = self._runs.get(run_id)
        if run is not None:
            run.data.tags.pop(key, None)

    def log_batch(self, run_id: str, metrics: Sequence[Metric] = (), params: Sequence[Param] = (),
                  tags: Sequence[RunTag] = ()) -> None:
        """Metrics, params and tags at once, within MLflow's batch limits (1000 metrics, 100 params, 100 tags).

        Everything is checked before anything is logged, so a bad entry logs nothing.
        """
        run_id = validation.run_id(run_id)
        metrics, params, tags = list(metrics), list(params), list(tags)
        validation.batch_sizes(len(metrics), len(params), len(tags))
        checked_params: dict[str, str] = {}
        for param in params:
            key = validation.check_key(param.key, "param key")
            value = validation.param_value(key, param.value)
            if checked_params.get(key, value) != value:
                raise ParamOverwriteError(f"log_batch: param {key!r} appears twice with different values")
            checked_params[key] = value
        tag_map = {validation.check_key(t.key, "tag key"): validation.tag_value(t.key, t.value) for t in tags}
        # checked before anything is logged; staging is per key, so a batch costs one lock, not one per point
        staged = self._outbox.stage_points((getattr(m, "key", None), getattr(m, "value", None),
                                            getattr(m, "step", None), getattr(m, "timestamp", None)) for m in metrics)
        if checked_params:
            self._log_checked_params(run_id, checked_params)
        if tag_map:
            self.set_tags(run_id, tag_map)
        self._outbox.add_staged(run_id, staged)

    # -- inputs and artifacts ---------------------------------------------------------------

    def log_input(self, run_id: str, dataset: Any, context: str | None = None,
                  tags: Mapping[str, Any] | None = None) -> None:
        """Record that the run used ``dataset`` (any object with MLflow Dataset attributes, or lf.Dataset)."""
        run_id = validation.run_id(run_id)
        record = dataset_record(dataset)
        self._emit("DatasetInputLogged", f"run/{run_id}", run_id=run_id, dataset=record,
                   context=None if context is None else str(context), tags=input_tags(dict(tags or {})))

    def log_artifact(self, run_id: str, local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Copy a file (or a directory's files) under the data home and emit ArtifactLogged per file."""
        run_id = validation.run_id(run_id)
        run = self._runs.get(run_id)
        experiment_id = run.info.experiment_id if run is not None and run.info.experiment_id else "unknown-experiment"
        root = run_artifact_root(self.home.absolute(), experiment_id, run_id)
        for source, relative in list(files_to_store(local_path, artifact_path)):
            destination = root / relative
            size, sha256 = store_file(source, destination)
            self._emit("ArtifactLogged", f"run/{run_id}", run_id=run_id, path=relative, uri=destination.as_uri(),
                       size=size, sha256=sha256)


def _column(key: str, what: str, column: Any, kinds: str) -> Any:
    """A bulk column checked for shape and element kind, without a per-point Python loop."""
    error = InvalidMetricValueError if what == "values" else InvalidStepError
    if hasattr(column, "__array__") and not isinstance(column, array):
        import numpy

        data = numpy.asarray(column)
        if data.ndim != 1 or data.dtype.kind not in kinds:
            raise error(f"metric {key!r}: {what} must be a 1-d array of "
                        f"{'numbers' if what == 'values' else 'integers'}, got a {data.ndim}-d {data.dtype} array")
        return data
    if isinstance(column, (str, bytes)) or not isinstance(column, Iterable):
        raise error(f"metric {key!r}: {what} must be a sequence, got {type(column).__name__}")
    return column if isinstance(column, (list, tuple, array)) else list(column)
