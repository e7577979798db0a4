"""A 200 MB artifact through the real ``mlflow`` client and a real ``ledgerflow server`` process.

The body is streamed both ways: the server's peak resident memory (VmHWM, read from /proc) must not
grow by anything near the file's size while it stores and serves it.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import mlflow
import pytest
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from tests.api.mlflow.artifact_support import sql, start_run_with_events

SIZE = 200 * 1024 * 1024
#: the server may keep buffers and caches, but nothing proportional to the file
ALLOWED_GROWTH = 48 * 1024 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server_process(home: Path, destination: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``ledgerflow server --artifacts-destination DIR`` as a child process, until it answers /health."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ledgerflow", "server", "--port", str(port), "--home", str(home),
         "--artifacts-destination", str(destination)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, f"the server exited: {process.stdout.read()}"
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not become healthy within 90 s"
            time.sleep(0.1)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def peak_rss(pid: int) -> int:
    """The process's peak resident set size so far, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def _write_random(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as f:
        for _ in range(size // (8 * 1024 * 1024)):
            block = os.urandom(8 * 1024 * 1024)
            digest.update(block)
            f.write(block)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(8 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads peak memory from /proc")
def test_a_200_mb_artifact_streams_through_in_bounded_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, destination = tmp_path / "home", tmp_path / "artifact-store"
    big = tmp_path / "upload" / "checkpoint.bin"
    big.parent.mkdir()
    expected = _write_random(big, SIZE)
    warm_up = tmp_path / "upload" / "warm-up.bin"
    warm_up.write_bytes(os.urandom(4 * 1024 * 1024))
    monkeypatch.delenv("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", raising=False)
    with server_process(home, destination) as (url, process):
        mlflow.set_tracking_uri(url)
        run_id = start_run_with_events(url, experiment_id="0")
        artifact_uri = f"mlflow-artifacts:/0/{run_id}/artifacts"
        repository = get_artifact_repository(artifact_uri)

        repository.log_artifact(str(warm_up), "warm")  # every code path once before the baseline
        mlflow.artifacts.download_artifacts(artifact_uri=f"{artifact_uri}/warm/warm-up.bin", dst_path=tmp_path / "w")
        baseline = peak_rss(process.pid)

        started = time.monotonic()
        repository.log_artifact(str(big), "checkpoints")
        upload_seconds = time.monotonic() - started
        after_upload = peak_rss(process.pid)
        stored = destination / "0" / run_id / "artifacts" / "checkpoints" / "checkpoint.bin"
        assert stored.stat().st_size == SIZE

        started = time.monotonic()
        downloaded = Path(mlflow.artifacts.download_artifacts(
            artifact_uri=f"{artifact_uri}/checkpoints/checkpoint.bin", dst_path=tmp_path / "download"))
        download_seconds = time.monotonic() - started
        after_download = peak_rss(process.pid)

        assert _sha256(downloaded) == expected
        rows = sql(url, f"SELECT path, size, sha256 FROM artifacts WHERE run_id = '{run_id}' ORDER BY path")
        assert rows[0] == {"path": "checkpoints/checkpoint.bin", "size": SIZE, "sha256": expected}
    growth = max(after_upload, after_download) - baseline
    print(f"200 MB: upload {upload_seconds:.1f} s, download {download_seconds:.1f} s; server peak RSS "
          f"{baseline / 2**20:.0f} MB before, +{growth / 2**20:.1f} MB during")
    assert growth < ALLOWED_GROWTH, f"the server's peak RSS grew by {growth / 2**20:.0f} MB for a 200 MB file"
    assert not (home / "artifacts").exists()  # --artifacts-destination, not the data home, holds them
