"""``ledgerflow import-mlflow`` from the other sources (a real ``mlflow server``, an ``mlruns`` directory)
and into the other log (Kafka), each compared entity by entity with what MlflowClient reads."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledgerflow.cli import main
from ledgerflow.ingest.log import open_log
from ledgerflow.ingest.log.file import FileLog
from ledgerflow.ingest.log.uri import log_directory
from ledgerflow.projector import replay

from .import_mlflow_support import History, Projection, assert_same_history, build_history, run_cli

pytestmark = pytest.mark.slow
SERVER_START_TIMEOUT = 180  # mlflow server runs its migrations and starts uvicorn workers


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, History]:
    directory = tmp_path_factory.mktemp("mlflow-sqlite")
    history = build_history(f"sqlite:///{directory / 'mlflow.db'}", directory)
    return directory / "mlflow.db", history


def client_of(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(mlflow_store: tuple[Path, History], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``mlflow server`` subprocess over a copy of the sqlite store, stopped (its whole process group) after."""
    database, _ = mlflow_store
    directory = tmp_path_factory.mktemp("mlflow-server")
    shutil.copy(database, directory / "mlflow.db")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    mlflow = Path(sys.executable).parent / "mlflow"
    log_file = open(directory / "server.log", "w")  # noqa: SIM115 - kept open for the server's life
    process = subprocess.Popen(
        [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{directory / 'mlflow.db'}", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        cwd=directory, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start:\n{(directory / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        _stop_group(process)
        log_file.close()


def _stop_group(process: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def project(log_uri: str, db: Path) -> Projection:
    log = open_log(log_uri)
    try:
        totals = replay(log, db)
    finally:
        log.close()
    projection = Projection(db)
    assert totals.dead_letters == 0, projection.dead_letters()
    return projection


def test_import_from_a_running_mlflow_server_with_copied_artifacts(mlflow_server: str, mlflow_store, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _, history = mlflow_store
    home = tmp_path / "lf"
    code = main(["import-mlflow", mlflow_server, "--to", f"file:{home}", "--copy-artifacts", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["artifacts_copied"] == 2 and summary["warnings"] == []

    client = client_of(mlflow_server)
    projection = project(f"file:{home}", tmp_path / "state.duckdb")
    compared = assert_same_history(client, projection, copied_artifacts=True)
    assert compared["runs"] == len(history.runs) and compared["artifacts"] == 2 and compared["logged models"] == 2
    # the copies sit where the ledgerflow server serves mlflow-artifacts:/ paths from, byte for byte
    parent = history.runs["parent"]
    experiment = history.experiments["vision"]
    for row in projection.rows("SELECT path, uri, sha256 FROM artifacts WHERE run_id = ?", parent):
        copied = home / "artifacts" / experiment / parent / "artifacts" / row["path"]
        assert row["uri"] == f"mlflow-artifacts:/{experiment}/{parent}/artifacts/{row['path']}"
        assert hashlib.sha256(copied.read_bytes()).hexdigest() == row["sha256"]
    projection.close()

    again = main(["import-mlflow", mlflow_server, "--to", f"file:{home}", "--copy-artifacts", "--json"])
    assert again == 0
    assert json.loads(capsys.readouterr().out)["events_written"] == 0


def test_import_from_an_mlruns_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # mlflow 3.17 still writes the file store when asked to explicitly
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlruns = tmp_path / "mlruns"
    uri = mlruns.as_uri()
    history = build_history(uri, tmp_path)
    home = tmp_path / "lf"
    result = run_cli("import-mlflow", str(mlruns), "--to", f"file:{home}")
    assert result.returncode == 0, result.stderr

    projection = project(f"file:{home}", tmp_path / "state.duckdb")
    compared = assert_same_history(client_of(uri), projection, deleted_versions=history.deleted_versions)
    assert compared["experiments"] == 4 and compared["runs"] == len(history.runs) and compared["artifacts"] == 2
    assert compared["logged models"] == 2
    projection.close()
    again = run_cli("import-mlflow", uri, "--to", f"file:{home}", "--json")
    assert json.loads(again.stdout)["events_written"] == 0


@pytest.mark.kafka
def test_import_into_kafka(mlflow_store, kafka_bootstrap: str, kafka_topic, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    database, history = mlflow_store
    uri = f"sqlite:///{database}"
    target = f"kafka://{kafka_bootstrap}/{kafka_topic(partitions=3)}"
    assert main(["import-mlflow", uri, "--to", target, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["events_written"] > 0

    projection = project(target, tmp_path / "state.duckdb")
    assert_same_history(client_of(uri), projection, deleted_versions=history.deleted_versions)
    projection.close()
    assert main(["import-mlflow", uri, "--to", target, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["events_written"] == 0


def test_a_file_log_and_its_data_home_are_the_default_target(mlflow_store, tmp_path: Path) -> None:
    database, _ = mlflow_store
    home = tmp_path / "home"
    result = run_cli("import-mlflow", f"sqlite:///{database}", "--no-artifacts", "--quiet",
                     env={"LEDGERFLOW_HOME": str(home), "LEDGERFLOW_TRACKING_URI": ""})
    assert result.returncode == 0, result.stderr
    with FileLog(log_directory(home)) as log:
        assert sum(1 for _ in log.read_all()) > 0


def doubler_model():
    """A pyfunc model whose predictions prove the right files were loaded (defined here, so pickled by value)."""
    import mlflow.pyfunc

    class Doubler(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input * 2

    return Doubler()


def test_a_logged_model_imported_with_its_files_loads_from_ledgerflow_server(tmp_path: Path) -> None:
    """MLflow 3: log_model + register_model + alias in MLflow; after the import (with --copy-artifacts) and with
    the original files gone, `models:/name@alias` loads through `ledgerflow server` and predicts."""
    import mlflow
    import pandas as pd

    from tests.api.serving import serving

    from .import_mlflow_support import working_directory

    source_dir = tmp_path / "mlflow"
    source_dir.mkdir()
    uri = f"sqlite:///{source_dir / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    try:
        with working_directory(source_dir):
            mlflow.set_tracking_uri(uri)
            mlflow.set_experiment("models")
            with mlflow.start_run() as run:
                mlflow.log_param("factor", "2")
                info = mlflow.pyfunc.log_model(name="doubler", python_model=doubler_model(),
                                               registered_model_name="doubler")
            client = client_of(uri)
            client.set_registered_model_alias("doubler", "champion", "1")
            logged = client.get_logged_model(info.model_id)
    finally:
        mlflow.set_tracking_uri(previous)

    home = tmp_path / "lf"
    result = run_cli("import-mlflow", uri, "--to", f"file:{home}", "--copy-artifacts", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["written"]["LoggedModelCreated"] == 1
    projection = project(f"file:{home}", tmp_path / "state.duckdb")
    [row] = projection.rows("SELECT * FROM logged_models")
    assert (row["model_id"], row["name"], row["status"], row["source_run_id"], row["creation_time"]) == (
        logged.model_id, logged.name, "READY", run.info.run_id, logged.creation_timestamp)
    assert projection.pairs("logged_model_params", "model_id = ?", logged.model_id) == logged.params
    assert projection.pairs("logged_model_tags", "model_id = ?", logged.model_id) == logged.tags
    assert projection.rows("SELECT run_id, model_id FROM run_outputs") == [
        {"run_id": run.info.run_id, "model_id": logged.model_id}]
    projection.close()

    shutil.rmtree(source_dir / "mlruns")  # only the copies are left
    with serving(f"file:{home}", home) as server:
        try:
            mlflow.set_tracking_uri(server.url)
            model = mlflow.pyfunc.load_model("models:/doubler@champion")
            predictions = model.predict(pd.DataFrame({"x": [1.5, 4.0]}))
        finally:
            mlflow.set_tracking_uri(previous)
    assert predictions["x"].tolist() == [3.0, 8.0]
