"""Tracking servers as subprocesses on free loopback ports: ledgerflow, MLflow and FastTrackML.

Each runs in its own session (process group), so stopping it also stops its workers (mlflow server
forks uvicorn workers and a job runner); peak RSS sums VmHWM over the whole process tree.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from bench.peers import PeerEnvironment


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _process_tree(root: int) -> list[int]:
    """``root`` and every descendant alive now (from /proc/<pid>/stat parent ids)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending += children.get(pid, [])
    return tree


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class ServerProcess:
    """One server: started on construction, ``wait_ready`` polls its health URL, ``stop`` ends its group."""

    def __init__(self, name: str, command: list[str], workdir: Path, port: int, health_path: str = "/health",
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.workdir = workdir
        self.health_url = self.url + health_path
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"{name}-server.log"
        # output to a file, never an unread pipe: a chatty server would block once the pipe filled
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, cwd=workdir, stdin=subprocess.DEVNULL, stdout=self._log,
                                        stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                        start_new_session=True)
        self._peak_kib = 0

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} server exited with {self.process.returncode}; "
                                   f"its log ({self.log_path}):\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.health_url, timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} server not healthy at {self.health_url} after {timeout:.0f} s; "
                           f"its log ({self.log_path}):\n{self.log_tail()}")

    def log_tail(self, characters: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-characters:]
        except OSError:
            return ""

    def peak_rss_mib(self) -> float:
        """Sum of VmHWM (peak resident set) over the server's process tree, as far as it is alive now."""
        if self.process.poll() is None:
            self._peak_kib = max(self._peak_kib, sum(_status_kib(p, "VmHWM") for p in _process_tree(self.process.pid)))
        return self._peak_kib / 1024

    def stop(self) -> None:
        if self.process.poll() is None:
            self.peak_rss_mib()
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        try:  # workers that outlived their parent are still in its process group
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._log.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


def ledgerflow_server(home: Path) -> ServerProcess:
    """``ledgerflow server`` on the embedded log of ``home`` (this interpreter's ledgerflow)."""
    port = free_port()
    return ServerProcess("ledgerflow", [sys.executable, "-m", "ledgerflow", "server", "--home", str(home),
                                        "--port", str(port)], home, port)


def mlflow_server(peers: PeerEnvironment, workdir: Path, workers: int | None = None) -> ServerProcess:
    """``mlflow server`` with a sqlite backend in ``workdir`` and proxied artifacts (its defaults otherwise)."""
    port = free_port()
    command = [str(peers.mlflow), "server", "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
               "--artifacts-destination", str(workdir / "mlartifacts"), "--host", "127.0.0.1", "--port", str(port)]
    if workers:
        command += ["--workers", str(workers)]
    # the job runner (GenAI jobs: a process and seven huey consumers, ~1 GiB) has nothing to do with tracking
    return ServerProcess("mlflow", command, workdir, port, env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})


def fasttrackml_server(peers: PeerEnvironment, workdir: Path) -> ServerProcess:
    """``fml server`` with a sqlite database in ``workdir``."""
    port = free_port()
    return ServerProcess("fasttrackml", [str(peers.fml), "server", "--database-uri",
                                         f"sqlite://{workdir / 'fasttrackml.db'}", "--listen-address",
                                         f"127.0.0.1:{port}", "--default-artifact-root", str(workdir / "artifacts"),
                                         "--log-level", "warning"], workdir, port)
