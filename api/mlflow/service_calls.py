"""How the registry and logged-model endpoints run: one :class:`Call` per request.

The request's fields are read on the event loop; the work (DuckDB reads, log appends) blocks, so it
runs in a worker thread. A write that must check state first (does the model exist? which version
number is next?) reads the projection with read-your-writes and appends while holding the app's
write lock for that service, so two requests of this server process cannot both pass the same check.
A second server process writing the same log can still race; :meth:`Call.write` turns a lost race
into a 409 instead of a false success (docs/mlflow.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import duckdb
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ledgerflow.api.errors import ApiError
from ledgerflow.api.mlflow.protocol import actor_of, request_fields
from ledgerflow.api.runtime import ProjectionLagError, Runtime
from ledgerflow.api.writes import emit, producer_of

_locks_guard = threading.Lock()


@dataclass
class Call:
    """One MLflow request: its fields (query + JSON body), path parameters and the server runtime."""

    request: Request
    fields: dict[str, Any]

    @property
    def runtime(self) -> Runtime:
        return self.request.app.state.runtime

    @property
    def path(self) -> dict[str, str]:
        return dict(self.request.path_params)

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor that sees every write acknowledged before this call (503 if the projector lags)."""
        try:
            with self.runtime.read_cursor(consistent=True) as cursor:
                yield cursor
        except ProjectionLagError as e:
            raise ApiError(503, "PROJECTION_LAG", str(e)) from None

    def write(self, events: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Append the events as one atomic batch and wait until they are projected.

        The check before a write holds only within this server process: another process writing the
        same log may have changed the entity in between, and then the projector rejects the event
        into ``dead_letters``. That is looked up here by log position and answered 409
        RESOURCE_CONFLICT, so a client never gets a success for a write that did not take effect.
        """
        positions = emit(self.runtime, producer_of(self.request), actor_of(self.request), events)["positions"]
        with self.read() as cursor:
            rejected = cursor.execute(
                "SELECT d.event_type, d.reason, d.log_partition, d.log_offset FROM dead_letters d "
                "JOIN (SELECT unnest(?) AS p, unnest(?) AS o) k ON d.log_partition = k.p AND d.log_offset = k.o "
                "ORDER BY d.log_partition, d.log_offset", [[p for p, _ in positions], [o for _, o in positions]]
            ).fetchall()
        if rejected:
            event_type, reason, partition, offset = rejected[0]
            raise ApiError(409, "RESOURCE_CONFLICT",
                           f"the {event_type} event was appended but could not apply ({reason}): another writer "
                           f"changed the same entity first (dead letter at partition {partition}, offset "
                           f"{offset}); read the entity again and retry")

    def write_lock(self, service: str) -> threading.Lock:
        """The lock that serializes check-then-append writes of ``service`` in this server process."""
        state = self.request.app.state
        with _locks_guard:
            locks: dict[str, threading.Lock] | None = getattr(state, "mlflow_write_locks", None)
            if locks is None:
                locks = state.mlflow_write_locks = {}
            return locks.setdefault(service, threading.Lock())


Handler = Callable[[Call], dict[str, Any]]


def route(router: APIRouter, method: str, path: str) -> Callable[[Handler], Handler]:
    """Register ``handler(call) -> JSON object`` for ``method path``; it runs in a worker thread."""
    def register(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> JSONResponse:
            call = Call(request, await request_fields(request))
            return JSONResponse(await run_in_threadpool(handler, call))

        endpoint.__name__ = f"{handler.__name__}_{method.lower()}"
        endpoint.__doc__ = handler.__doc__
        router.add_api_route(path, endpoint, methods=[method], name=endpoint.__name__,
                             summary=(handler.__doc__ or "").strip().split("\n")[0] or None)
        return handler

    return register
