"""Per-server state of the MLflow tracking service: the write-side cache and the Default experiment.

MLflow clients assume experiment "0" ("Default") exists on an untouched server: ``mlflow.start_run()``
without an experiment logs into it. ledgerflow's log starts empty, so the first tracking request a
server answers appends its ``ExperimentCreated`` when the projection has no experiment "0" (and no
other experiment already carries the name). Creation is idempotent in the projector (same id and
name), so two servers racing to create it leave one experiment.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from ledgerflow.api.mlflow.protocol import actor_of, already_exists
from ledgerflow.api.mlflow.run_facts import ExperimentFacts, WriteFacts, projection_cursor
from ledgerflow.api.runtime import Runtime
from ledgerflow.api.writes import Producer, emit, producer_of
from ledgerflow.ingest.sdk.client import DEFAULT_EXPERIMENT_ID, DEFAULT_EXPERIMENT_NAME, experiment_id_for

ARTIFACT_SCHEME = "mlflow-artifacts:"
_state_lock = threading.Lock()


def default_artifact_location(experiment_id: str) -> str:
    """Where runs of an experiment keep artifacts unless told otherwise: served by this server (H3)."""
    return f"{ARTIFACT_SCHEME}/{experiment_id}"


@dataclass
class TrackingState:
    runtime: Runtime
    producer: Producer
    facts: WriteFacts
    #: serializes experiment creation and renames: names are unique, checked against the projection
    names_lock: threading.Lock = field(default_factory=threading.Lock)
    default_ready: bool = False
    default_lock: threading.Lock = field(default_factory=threading.Lock)

    def emit(self, request: Request, events: list[tuple[str, dict[str, Any]]], actor_fallback: str | None = None
             ) -> dict[str, Any]:
        """Append one MLflow call's events as one atomic batch, answering once they are durable."""
        return emit(self.runtime, self.producer, actor_of(request, actor_fallback), events)

    def ensure_default_experiment(self, request: Request) -> None:
        if self.default_ready:
            return
        with self.default_lock:
            if self.default_ready:
                return
            with projection_cursor(self.runtime) as cursor:
                present = cursor.execute("SELECT count(*) FROM experiments WHERE experiment_id = ? OR name = ?",
                                         [DEFAULT_EXPERIMENT_ID, DEFAULT_EXPERIMENT_NAME]).fetchone()[0]
            if not present:
                self.emit(request, [("ExperimentCreated", {
                    "experiment_id": DEFAULT_EXPERIMENT_ID, "name": DEFAULT_EXPERIMENT_NAME,
                    "artifact_location": default_artifact_location(DEFAULT_EXPERIMENT_ID), "tags": []})])
            self.default_ready = True

    def create_experiment(self, request: Request, name: str, artifact_location: str | None,
                          tags: list[dict[str, str]]) -> str:
        """Append an ExperimentCreated for a new name; RESOURCE_ALREADY_EXISTS if any experiment has it.

        The id is the one ledgerflow's SDK derives from the name, so SDK and MLflow clients agree on
        it; if that id is taken (the name once belonged to an experiment since renamed), a fresh one."""
        with self.names_lock:
            with projection_cursor(self.runtime) as cursor:
                if cursor.execute("SELECT 1 FROM experiments WHERE name = ?", [name]).fetchone():
                    raise already_exists(f"Experiment(name={name}) already exists.")
                experiment_id = experiment_id_for(name)
                if cursor.execute("SELECT 1 FROM experiments WHERE experiment_id = ?", [experiment_id]).fetchone():
                    experiment_id = uuid.uuid4().hex
            location = artifact_location or default_artifact_location(experiment_id)
            self.emit(request, [("ExperimentCreated", {"experiment_id": experiment_id, "name": name,
                                                       "artifact_location": location, "tags": tags})])
        self.facts.remember_experiment(ExperimentFacts({"experiment_id": experiment_id, "name": name,
                                                        "artifact_location": location, "lifecycle_stage": "active"}))
        return experiment_id


async def tracking_state(request: Request) -> TrackingState:
    """The app's tracking state, created on first use; makes sure the Default experiment exists.

    A coroutine, so that FastAPI resolves it on the event loop instead of another thread hop per
    request; the one blocking step (the first request's Default check) runs in the thread pool."""
    app = request.app
    state = getattr(app.state, "mlflow_tracking", None)
    if state is None:
        with _state_lock:
            state = getattr(app.state, "mlflow_tracking", None)
            if state is None:
                runtime: Runtime = app.state.runtime
                state = app.state.mlflow_tracking = TrackingState(runtime, producer_of(request), WriteFacts(runtime))
    if not state.default_ready:
        await run_in_threadpool(state.ensure_default_experiment, request)
    return state


State = Annotated[TrackingState, Depends(tracking_state)]
