"""``ledgerflow server`` as a real subprocess: start, health, write with the SDK over HTTP, read back, SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

import ledgerflow as lf


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server_process(*args: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``python -m ledgerflow server --port P ARGS`` until it answers /health 200; killed if a test leaves it running."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ledgerflow", "server", "--port", str(port), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode}: {process.stdout.read()}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the server did not answer /health 200 within 90 s")
            time.sleep(0.1)
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> str:
    """Send ``sig``, expect a clean exit 0 within 30 s, return the output."""
    process.send_signal(sig)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    return output


def log_a_run(url: str, name: str) -> str:
    """A small training run logged with the SDK through the server; returns its run id."""
    from ledgerflow.ingest.sdk import fluent

    fluent._reset_for_tests()
    try:
        lf.set_tracking_uri(url)
        lf.set_experiment("e2e")
        with lf.start_run(run_name=name) as run:
            lf.log_params({"lr": 0.1, "epochs": 3})
            for step in range(30):
                lf.log_metric("loss", 1 / (step + 1), step=step)
        return run.info.run_id
    finally:
        fluent._reset_for_tests()


def test_embedded_server_writes_reads_and_stops_cleanly(tmp_path: Path, data_home: Path) -> None:
    home = tmp_path / "server-home"
    with server_process("--home", str(home)) as (url, process):
        run_id = log_a_run(url, "first")
        with lf.Client(url) as client:
            run = client.get_run(run_id)
            assert run["info"]["status"] == "FINISHED" and run["data"]["params"] == {"epochs": "3", "lr": "0.1"}
            assert client.health()["status"] == "ok"
        output = stop(process)
    assert f"ledgerflow server on {url}" in output and "ledgerflow server stopped" in output
    assert (home / "events").is_dir() and (home / "state.duckdb").is_file()

    # the data survives the restart; a training script writing straight to the file: log shows up live
    with server_process("--home", str(home)) as (url, process):
        with lf.Client(url) as client:
            assert client.get_run(run_id)["info"]["run_name"] == "first"
            direct = log_a_run(f"file:{home}", "direct-to-the-log")
            assert client.get_run(direct)["data"]["metrics"]["loss"]["step"] == 29
        stop(process, signal.SIGINT)


def test_demo_and_home_from_the_environment(tmp_path: Path) -> None:
    home = tmp_path / "env-home"
    with server_process("--demo", env={"LEDGERFLOW_HOME": str(home)}) as (url, process):
        with lf.Client(url) as client:
            position = client.log_position()
            assert position["log"] == f"file:{home / 'events'}" and any(position["end_position"].values())
            names = [e["name"] for e in client.search_experiments()]
            assert "ledgerflow-demo" in names
        output = stop(process)
    assert "logged the demo experiment" in output


def test_kafka_server(tmp_path: Path, data_home: Path, kafka_bootstrap: str,
                      kafka_topic: Callable[..., str]) -> None:
    topic = kafka_topic(partitions=3)
    home = tmp_path / "kafka-home"
    with server_process("--home", str(home), "--kafka", kafka_bootstrap, "--topic", topic) as (url, process):
        run_id = log_a_run(url, "on-kafka")
        with lf.Client(url) as client:
            assert client.get_run(run_id)["data"]["metrics"]["loss"]["step"] == 29
            assert client.log_position()["log"] == f"kafka://{kafka_bootstrap}/{topic}"
        output = stop(process)
    assert f"kafka://{kafka_bootstrap}/{topic}" in output
    assert not (home / "events").exists() and (home / "state.duckdb").is_file()


def test_bad_options_fail_fast(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "ledgerflow", "server", "--topic", "t", "--home", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "--topic only applies with --kafka" in result.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "ledgerflow", "server", "--port", str(port),
                                 "--home", str(tmp_path / "h")], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0, result.stdout + result.stderr


def test_a_projection_of_an_older_table_layout_is_set_aside_and_rebuilt_from_the_log(tmp_path: Path,
                                                                                    data_home: Path) -> None:
    """A database written by an older ledgerflow (another STATE_VERSION) is moved aside, never deleted, and the
    server rebuilds the projection from the log: no data is lost, because the log is the truth."""
    import duckdb

    home = tmp_path / "home"
    with server_process("--home", str(home)) as (url, process):
        run_id = log_a_run(url, "survives-an-upgrade")
        with lf.Client(url) as client:
            assert client.get_run(run_id)["info"]["run_name"] == "survives-an-upgrade"
        stop(process)
    with duckdb.connect(str(home / "state.duckdb")) as connection:
        connection.execute("UPDATE projector_meta SET value = '1' WHERE key = 'state_version'")
    with server_process("--home", str(home)) as (url, process):
        with lf.Client(url) as client:
            assert client.get_run(run_id)["data"]["params"] == {"epochs": "3", "lr": "0.1"}
        stop(process)
    aside = [p.name for p in home.iterdir() if p.name.startswith("state.duckdb.state-v1.")]
    assert len(aside) == 1
