"""The three systems under test as stores: start the server, load the query workload, measure its size.

Each store is used the same way by bench/side_by_side.py: ``start()``, then ``populate(workload, first)``
(adds runs ``first`` .. ``workload.runs - 1``), ``wait_loaded(workload)``, ``disk_bytes()``; the
tracking URI is ``server.url`` for all three.
"""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.request
from pathlib import Path

from bench.peers import PeerEnvironment
from bench.populate import checkpoint_sqlite, populate_fasttrackml, populate_ledgerflow, populate_mlflow
from bench.servers import ServerProcess, fasttrackml_server, ledgerflow_server, mlflow_server
from bench.workload import HISTORY_EXPERIMENT, SEARCH_EXPERIMENT, QueryWorkload


def _size(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        if path.is_file():
            total += path.stat().st_size
        elif path.is_dir():
            total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return total


class Store:
    """What the side-by-side benchmark needs from each system."""

    name = ""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.server: ServerProcess | None = None

    def start(self) -> ServerProcess:
        raise NotImplementedError

    def populate(self, workload: QueryWorkload, first: int) -> None:
        raise NotImplementedError

    def wait_loaded(self, workload: QueryWorkload, timeout: float = 7200) -> None:
        """Return once queries see every run of ``workload`` (immediate for stores written synchronously)."""

    def metric_points(self) -> int:
        raise NotImplementedError

    def disk_bytes(self) -> tuple[int, int]:
        """(bytes of the query database, bytes of everything the system keeps on disk)."""
        raise NotImplementedError


class LedgerflowStore(Store):
    name = "ledgerflow"

    def start(self) -> ServerProcess:
        self.server = ledgerflow_server(self.workdir)
        return self.server

    def populate(self, workload: QueryWorkload, first: int) -> None:
        populate_ledgerflow(self.workdir, workload, first)

    def _sql(self, query: str) -> list[list[object]]:
        assert self.server is not None
        request = urllib.request.Request(f"{self.server.url}/api/v1/sql?consistency=eventual", method="POST",
                                         data=json.dumps({"sql": query}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.loads(response.read())["rows"]

    def wait_loaded(self, workload: QueryWorkload, timeout: float = 7200) -> None:
        from ledgerflow.ingest.sdk.client import experiment_id_for

        expected = workload.runs + (1 if workload.history_points else 0)
        experiments = ", ".join(f"'{experiment_id_for(name)}'" for name in (SEARCH_EXPERIMENT, HISTORY_EXPERIMENT))
        query = f"SELECT count(*) FROM runs WHERE status = 'FINISHED' AND experiment_id IN ({experiments})"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._sql(query)[0][0] >= expected:
                return
            time.sleep(0.5)
        raise TimeoutError(f"ledgerflow server did not project {expected} runs within {timeout:.0f} s")

    def metric_points(self) -> int:
        return int(self._sql("SELECT count(*) FROM metrics")[0][0])

    def disk_bytes(self) -> tuple[int, int]:
        database = _size(sorted(self.workdir.glob("state.duckdb*")))
        return database, database + _size([self.workdir / "events"])


class SqliteStore(Store):
    """A peer whose server keeps everything in one sqlite file (schema created by the server at startup)."""

    database_name = ""

    def __init__(self, workdir: Path, peers: PeerEnvironment) -> None:
        super().__init__(workdir)
        self.peers = peers

    @property
    def database(self) -> Path:
        return self.workdir / self.database_name

    def metric_points(self) -> int:
        with sqlite3.connect(self.database, timeout=60) as connection:
            count = connection.execute("SELECT count(*) FROM metrics").fetchone()[0]
        connection.close()
        return int(count)

    def disk_bytes(self) -> tuple[int, int]:
        checkpoint_sqlite(self.database)
        size = _size(sorted(self.workdir.glob(self.database_name + "*")))
        return size, size


class MlflowStore(SqliteStore):
    name = "mlflow"
    database_name = "mlflow.db"

    def __init__(self, workdir: Path, peers: PeerEnvironment, workers: int | None = None) -> None:
        super().__init__(workdir, peers)
        self.workers = workers

    def start(self) -> ServerProcess:
        self.server = mlflow_server(self.peers, self.workdir, self.workers)
        return self.server

    def populate(self, workload: QueryWorkload, first: int) -> None:
        populate_mlflow(self.database, str(self.workdir / "mlartifacts"), workload, first)


class FasttrackmlStore(SqliteStore):
    name = "fasttrackml"
    database_name = "fasttrackml.db"

    def start(self) -> ServerProcess:
        self.server = fasttrackml_server(self.peers, self.workdir)
        return self.server

    def populate(self, workload: QueryWorkload, first: int) -> None:
        populate_fasttrackml(self.database, str(self.workdir / "artifacts"), workload, first)
