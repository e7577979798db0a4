"""What the MLflow write endpoints must know before they append: the write-side cache.

A write is checked against state (does the run exist, is it active, was this param logged with
another value, does this tag exist?). Reading the projection for that would make every
``log_metric`` wait for the projector to catch up with the log. Instead each server keeps a small
LRU of the runs and experiments it writes to: filled from the projection on a miss (a consistent
read, so it includes every acknowledged write), then kept current by every write this server
accepts. Entries older than ``max_age`` seconds are re-read, which bounds how long a write made
by another process (a second server, the SDK writing to the log directly) can go unseen; until
then such a conflicting write is caught by the projector, which dead-letters the later event
(docs/consistency.md). One lock per run serializes check-then-append for that run, so two
concurrent requests cannot both log different values of one param.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import duckdb

from ledgerflow.api.errors import ApiError
from ledgerflow.api.mlflow.protocol import does_not_exist, invalid
from ledgerflow.api.runtime import ProjectionLagError, Runtime

RUN_COLUMNS = ("run_id", "experiment_id", "run_name", "user_id", "status", "start_time", "end_time",
               "lifecycle_stage", "artifact_uri")
EXPERIMENT_COLUMNS = ("experiment_id", "name", "artifact_location", "lifecycle_stage")
DEFAULT_CAPACITY = 10_000  # runs (and experiments) remembered per server
DEFAULT_MAX_AGE = 60.0  # seconds before an entry is read again from the projection


@contextmanager
def projection_cursor(runtime: Runtime, consistent: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read cursor that sees every acknowledged write; a lagging projector answers 503, never stale data."""
    try:
        with runtime.read_cursor(consistent=consistent) as cursor:
            yield cursor
    except ProjectionLagError as e:
        raise ApiError(503, "PROJECTION_LAG", str(e)) from None


def run_not_found(run_id: str) -> ApiError:
    return does_not_exist(f"Run with id={run_id} not found")


def experiment_not_found(experiment_id: str) -> ApiError:
    return does_not_exist(f"No Experiment with id={experiment_id} exists")


@dataclass
class RunFacts:
    """One run as the write path sees it. Mutate only while holding ``lock``."""

    info: dict[str, Any]  # RUN_COLUMNS
    params: dict[str, str]
    tag_keys: set[str]
    inputs: set[tuple[str, str]]  # (dataset name, digest) already logged as inputs
    lock: threading.Lock
    model_inputs: set[str] = field(default_factory=set)  # logged models already logged as inputs
    loaded_at: float = field(default_factory=time.monotonic)

    @property
    def run_id(self) -> str:
        return self.info["run_id"]

    def check_active(self) -> None:
        """MLflow refuses writes to a deleted run with INVALID_PARAMETER_VALUE (400)."""
        if self.info["lifecycle_stage"] != "active":
            raise invalid(f"The run {self.run_id} must be in the 'active' state. Current state is "
                          f"{self.info['lifecycle_stage']}.")


@dataclass
class ExperimentFacts:
    info: dict[str, Any]  # EXPERIMENT_COLUMNS
    loaded_at: float = field(default_factory=time.monotonic)

    def check_active(self) -> None:
        if self.info["lifecycle_stage"] != "active":
            raise invalid(f"The experiment {self.info['experiment_id']} must be in the 'active' state. "
                          f"Current state is {self.info['lifecycle_stage']}.")


class WriteFacts:
    """The per-server cache of runs and experiments the MLflow write endpoints consult."""

    def __init__(self, runtime: Runtime, capacity: int | None = None, max_age: float | None = None) -> None:
        self.runtime = runtime
        self.capacity = DEFAULT_CAPACITY if capacity is None else capacity
        self.max_age = DEFAULT_MAX_AGE if max_age is None else max_age
        self._guard = threading.Lock()
        self._runs: OrderedDict[str, RunFacts] = OrderedDict()
        self._experiments: OrderedDict[str, ExperimentFacts] = OrderedDict()
        # a run's lock outlives its cache entry while any request still holds it, so an evicted and
        # reloaded run never has two locks
        self._run_locks: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
        self.misses = 0

    # ---- runs ------------------------------------------------------------------------------------

    def run_lock(self, run_id: str) -> threading.Lock:
        with self._guard:
            lock = self._run_locks.get(run_id)
            if lock is None:
                lock = threading.Lock()
                self._run_locks[run_id] = lock
            return lock

    def _fresh(self, entry: RunFacts | ExperimentFacts | None) -> bool:
        return entry is not None and time.monotonic() - entry.loaded_at < self.max_age

    def cached_run(self, run_id: str) -> RunFacts | None:
        with self._guard:
            entry = self._runs.get(run_id)
            if entry is not None:
                self._runs.move_to_end(run_id)
            return entry

    @contextmanager
    def writing(self, run_id: str) -> Iterator[RunFacts]:
        """The run's facts, held under the run's lock for a check-then-append; 404 when it does not exist.

        The entry is looked up after the lock is taken, so a reload by another request can never
        leave this one checking an outdated copy."""
        lock = self.run_lock(run_id)
        with lock:
            entry = self.cached_run(run_id)
            if not self._fresh(entry):
                with projection_cursor(self.runtime) as cursor:
                    entry = self._load_run(cursor, run_id, lock)
                self.remember_run(entry)
            assert entry is not None
            yield entry

    def _load_run(self, cursor: duckdb.DuckDBPyConnection, run_id: str, lock: threading.Lock) -> RunFacts:
        self.misses += 1
        row = cursor.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE run_id = ?", [run_id]).fetchone()
        if row is None:
            raise run_not_found(run_id)
        params = dict(cursor.execute("SELECT key, value FROM params WHERE run_id = ?", [run_id]).fetchall())
        tag_keys = {key for (key,) in cursor.execute("SELECT key FROM tags WHERE run_id = ?", [run_id]).fetchall()}
        inputs = set(cursor.execute("SELECT d.name, d.digest FROM run_inputs i JOIN datasets d "
                                    "ON d.dataset_id = i.dataset_id WHERE i.run_id = ?", [run_id]).fetchall())
        models = {model_id for (model_id,) in cursor.execute(
            "SELECT model_id FROM run_model_inputs WHERE run_id = ?", [run_id]).fetchall()}
        return RunFacts(dict(zip(RUN_COLUMNS, row, strict=True)), params, tag_keys, inputs, lock, model_inputs=models)

    def new_run(self, info: dict[str, Any], params: dict[str, str], tag_keys: set[str]) -> RunFacts:
        """Facts of a run this server just created (no read needed)."""
        entry = RunFacts(info, params, tag_keys, set(), self.run_lock(info["run_id"]))
        self.remember_run(entry)
        return entry

    def remember_run(self, entry: RunFacts) -> None:
        with self._guard:
            self._runs[entry.run_id] = entry
            self._runs.move_to_end(entry.run_id)
            while len(self._runs) > self.capacity:
                self._runs.popitem(last=False)

    def runs_changed(self, run_ids: list[str], **changes: Any) -> None:
        """Apply a change made by a multi-run write (an experiment deleted or restored) to cached runs."""
        for run_id in run_ids:
            entry = self.cached_run(run_id)
            if entry is not None:
                with entry.lock:
                    entry.info.update(changes)

    # ---- experiments -----------------------------------------------------------------------------

    def experiment(self, experiment_id: str) -> ExperimentFacts:
        with self._guard:
            entry = self._experiments.get(experiment_id)
        if self._fresh(entry):
            return entry  # type: ignore[return-value]
        with projection_cursor(self.runtime) as cursor:
            row = cursor.execute(f"SELECT {', '.join(EXPERIMENT_COLUMNS)} FROM experiments WHERE experiment_id = ?",
                                 [experiment_id]).fetchone()
        if row is None:
            raise experiment_not_found(experiment_id)
        entry = ExperimentFacts(dict(zip(EXPERIMENT_COLUMNS, row, strict=True)))
        self.remember_experiment(entry)
        return entry

    def remember_experiment(self, entry: ExperimentFacts) -> None:
        with self._guard:
            self._experiments[entry.info["experiment_id"]] = entry
            self._experiments.move_to_end(entry.info["experiment_id"])
            while len(self._experiments) > self.capacity:
                self._experiments.popitem(last=False)

    def forget_experiment(self, experiment_id: str) -> None:
        with self._guard:
            self._experiments.pop(experiment_id, None)
