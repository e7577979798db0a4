"""Running a ledgerflow server: the log (embedded or Kafka), the in-process projector, the API on uvicorn.

``ledgerflow server`` (core/cli/server.py) is a thin wrapper around :func:`serve`. Kept apart from
the CLI so tests and embedding code can build the same runtime and app without argparse.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from fastapi import FastAPI

from ledgerflow.api.app import create_app
from ledgerflow.api.runtime import Runtime
from ledgerflow.errors import ConfigurationError
from ledgerflow.ingest.log import open_log
from ledgerflow.projector.store import stored_state_version
from ledgerflow.projector.tables import STATE_VERSION
from ledgerflow.settings import Settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
DATABASE_FILE = "state.duckdb"

log = logging.getLogger("ledgerflow.server")


@dataclass(frozen=True)
class ServerPlan:
    """Where a server keeps its data: the data home, the log URI it writes to, the DuckDB file."""

    home: Path
    log_uri: str
    db_path: Path
    #: where MLflow's proxied artifacts are stored (``--artifacts-destination``); None: HOME/artifacts
    artifact_root: Path | None = None


def plan(home: str | Path | None = None, kafka: str | None = None, topic: str | None = None,
         settings: Settings | None = None, artifacts_destination: str | Path | None = None) -> ServerPlan:
    """The embedded default (``file:HOME``) or ``kafka://BOOTSTRAP/TOPIC``; the database is HOME/state.duckdb."""
    settings = settings or Settings.from_env()
    data_home = Path(home) if home is not None else settings.home
    data_home = data_home.absolute()
    if kafka:
        servers = kafka[len("kafka://"):] if kafka.startswith("kafka://") else kafka
        uri = f"kafka://{servers.rstrip('/')}/{topic or settings.kafka_topic}"
    else:
        uri = f"file:{data_home}"
    return ServerPlan(data_home, uri, data_home / DATABASE_FILE, artifact_directory(artifacts_destination))


def artifact_directory(destination: str | Path | None) -> Path | None:
    """``--artifacts-destination``: a local directory or a ``file:`` URI (other stores are not served yet)."""
    if destination is None or str(destination) == "":
        return None
    text = str(destination)
    if text.startswith("file:"):
        text = urllib.parse.unquote(urllib.parse.urlparse(text).path)
    elif "://" in text:
        raise ConfigurationError(f"--artifacts-destination {destination}: only a local directory (or a file: URI) "
                                 f"can hold artifacts for now")
    return Path(text).absolute()


def set_aside_stale_projection(db_path: Path) -> Path | None:
    """Move a projection built by another table layout (STATE_VERSION) aside, so it is rebuilt from the log.

    The projection is derived data: the log is the truth, and a server that starts with no database
    replays the log into a new one. The old file is kept (renamed), never deleted."""
    version = stored_state_version(db_path)
    if version is None or version == str(STATE_VERSION):
        return None
    aside = db_path.with_name(f"{db_path.name}.state-v{version}.{int(time.time())}")
    db_path.rename(aside)
    wal = db_path.with_name(db_path.name + ".wal")
    if wal.exists():
        wal.rename(aside.with_name(aside.name + ".wal"))
    log.warning("projection %s was built with state version %s (this ledgerflow uses %s): moved to %s; "
                "rebuilding it from the log", db_path, version, STATE_VERSION, aside)
    return aside


def build(server_plan: ServerPlan, *, read_wait: float = 5.0) -> tuple[Runtime, FastAPI]:
    """Open the log and the projection, start the projector thread, and create the app on top."""
    server_plan.home.mkdir(parents=True, exist_ok=True)
    set_aside_stale_projection(server_plan.db_path)
    runtime = Runtime(open_log(server_plan.log_uri), server_plan.db_path, read_wait=read_wait,
                      artifact_root=server_plan.artifact_root or server_plan.home / "artifacts")
    runtime.start()
    return runtime, create_app(runtime)


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, home: str | Path | None = None,
          kafka: str | None = None, topic: str | None = None, artifacts_destination: str | Path | None = None,
          before_start: Callable[[ServerPlan], None] | None = None, say: Callable[[str], None] = print) -> int:
    """Run until SIGINT or SIGTERM, then stop uvicorn, stop the projector and close the log. Returns 0.

    Kafka mode creates the topic if it is missing (as every ledgerflow Kafka client does).
    """
    import uvicorn

    server_plan = plan(home, kafka, topic, artifacts_destination=artifacts_destination)
    server_plan.home.mkdir(parents=True, exist_ok=True)
    if before_start is not None:
        before_start(server_plan)  # e.g. the CLI's --demo, written straight to the log
    # Signals before uvicorn takes them over: uvicorn re-raises the signal it stopped on once it has
    # shut down, and this handler makes that a no-op instead of killing the process before the
    # runtime is stopped. A signal before uvicorn runs ends the wait below just the same.
    stop_requested = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    runtime, app = build(server_plan)
    try:
        url = f"http://{_url_host(host)}:{port}"
        say(f"ledgerflow server on {url}  (log {server_plan.log_uri}, database {server_plan.db_path})")
        say(f"  health: curl {url}/health    API docs: {url}/docs    stop: Ctrl-C")
        sys.stdout.flush()
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=10)
        server = uvicorn.Server(config)
        if not stop_requested.is_set():
            server.run()
        if not server.started and not stop_requested.is_set():
            say(f"ledgerflow server: could not serve on {host}:{port} (see the error above)")
            return 1
    finally:
        runtime.stop()  # joins the projector thread (its last batch is committed) and closes the log
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    say("ledgerflow server stopped")
    return 0


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
