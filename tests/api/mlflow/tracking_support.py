"""Helpers for the tracking tests: raw MLflow REST calls and SQL over the projection."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.serving import RunningServer

API = "/api/2.0/mlflow"


def rest(server: RunningServer, method: str, path: str, body: dict[str, Any] | None = None,
         params: dict[str, Any] | None = None) -> httpx.Response:
    """One MLflow REST call, bypassing the client (for requests the client would never send)."""
    return httpx.request(method, f"{server.url}{API}{path}", json=body, params=params, timeout=60)


def sql(server: RunningServer, query: str) -> list[dict[str, Any]]:
    """Rows of a read-only query through the server's SQL endpoint (what any SQL user sees)."""
    response = httpx.post(f"{server.url}/api/v1/sql", json={"sql": query}, timeout=60)
    assert response.status_code == 200, response.text
    payload = response.json()
    names = [c["name"] for c in payload["columns"]]
    return [dict(zip(names, row, strict=True)) for row in payload["rows"]]


def event_types(server: RunningServer, column: str, value: str) -> list[str]:
    """The types of the events recorded for one experiment or run, in log order."""
    assert column in ("experiment_id", "run_id")
    rows = sql(server, f"SELECT event_type FROM events WHERE {column} = '{value}' ORDER BY log_partition, log_offset")
    return [row["event_type"] for row in rows]
