"""A real ledgerflow server (uvicorn on loopback) over a temp data home, for tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from ledgerflow.api.app import create_app
from ledgerflow.api.runtime import Runtime
from ledgerflow.ingest.log import EventLog, open_log


@dataclass
class RunningServer:
    url: str
    runtime: Runtime
    log_uri: str
    home: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(log: EventLog, log_uri: str, home: Path) -> tuple[RunningServer, uvicorn.Server, threading.Thread]:
    runtime = Runtime(log, home / "state.duckdb", artifact_root=home / "artifacts")
    runtime.start()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    else:
        raise RuntimeError("the test server did not become healthy within 60 s")
    return RunningServer(url, runtime, log_uri, home), server, thread


@contextmanager
def serving(log_uri: str, home: Path) -> Iterator[RunningServer]:
    """A healthy server on ``log_uri`` for the duration of the block, then stopped."""
    running, server, thread = start_server(open_log(log_uri), log_uri, home)
    try:
        yield running
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        running.runtime.stop()


def log_uri_for(request, home: Path) -> str:
    """The embedded log of ``home``, or a fresh 3-partition topic on the real broker (param "kafka")."""
    if request.param == "embedded":
        return f"file:{home}"
    topic = request.getfixturevalue("kafka_topic")(partitions=3)
    return f"kafka://{request.getfixturevalue('kafka_bootstrap')}/{topic}"
