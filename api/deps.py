"""FastAPI dependencies shared by the routes: the runtime, and a read cursor that honours read-your-writes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import duckdb
from fastapi import Depends, Query, Request

from ledgerflow.api.errors import ApiError
from ledgerflow.api.runtime import ProjectionLagError, Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def read_cursor(
    runtime: Annotated[Runtime, Depends(get_runtime)],
    consistency: Annotated[str, Query(pattern="^(read-your-writes|eventual)$",
                                      description="read-your-writes (default) waits until every write acknowledged "
                                                  "before this request is visible; eventual answers at once")] = "read-your-writes",
) -> Iterator[duckdb.DuckDBPyConnection]:
    try:
        with runtime.read_cursor(consistent=consistency == "read-your-writes") as cursor:
            yield cursor
    except ProjectionLagError as e:
        raise ApiError(503, "PROJECTION_LAG", str(e)) from None


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
Cursor = Annotated[duckdb.DuckDBPyConnection, Depends(read_cursor)]
