"""Helpers for the artifact tests: runs written as events, SQL over the projection, raw HTTP requests."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from typing import Any
from urllib.parse import urlparse

import httpx

from tests.api.serving import RunningServer

SERVICE = "/api/2.0/mlflow-artifacts/artifacts"


def _url(server: RunningServer | str) -> str:
    return server if isinstance(server, str) else server.url


def start_run_with_events(server: RunningServer | str, experiment_id: str = "0", user: str = "ana",
                          artifact_uri: str | None = None, run_id: str | None = None) -> str:
    """A run created through ledgerflow's own ingest endpoint, with MLflow's proxied artifact URI."""
    run_id = run_id or uuid.uuid4().hex
    uri = artifact_uri or f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"
    fields = {"run_id": run_id, "experiment_id": experiment_id, "run_name": "artifacts-test",
              "start_time": int(time.time() * 1000), "status": "RUNNING", "user_id": user, "tags": [],
              "artifact_uri": uri}
    response = httpx.post(f"{_url(server)}/api/v1/events", json={"events": [{"type": "RunStarted", "fields": fields}]})
    assert response.status_code == 200, response.text
    return run_id


def log_events(server: RunningServer, *events: tuple[str, dict[str, Any]]) -> None:
    body = {"events": [{"type": kind, "fields": fields} for kind, fields in events]}
    response = httpx.post(f"{server.url}/api/v1/events", json=body)
    assert response.status_code == 200, response.text


def sql(server: RunningServer | str, query: str) -> list[dict[str, Any]]:
    response = httpx.post(f"{_url(server)}/api/v1/sql", json={"sql": query}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    names = [c["name"] for c in body["columns"]]
    return [dict(zip(names, row, strict=True)) for row in body["rows"]]


def raw_request(server: RunningServer, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
    """A request whose path is sent byte for byte (httpx and requests remove ``..`` segments first)."""
    address = urlparse(server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        connection.putheader("Content-Length", str(len(body or b"")))
        connection.endheaders(body or b"")
        response = connection.getresponse()
        payload = response.read()
    finally:
        connection.close()
    try:
        return response.status, json.loads(payload) if payload else {}
    except ValueError:
        return response.status, {"raw": payload[:200]}
