"""``ledgerflow import-mlflow`` from a real MLflow sqlite store made by the mlflow package.

The import runs through the CLI as a user would, the log is projected into DuckDB, and every entity
is compared with what MlflowClient reads from the same store. Then the import is run again (nothing
is added), interrupted and resumed, run after the source changed, and refused on conflicts and bad
sources.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledgerflow.cli import main
from ledgerflow.ingest.importers import writer as writer_module
from ledgerflow.ingest.log import DeliveryError, Entry
from ledgerflow.ingest.log.file import FileLog
from ledgerflow.ingest.log.uri import log_directory
from ledgerflow.projector import replay
from ledgerflow.schemas import decode

from .import_mlflow_support import (
    LONG_SERIES_POINTS,
    History,
    Projection,
    assert_same_history,
    build_history,
    run_cli,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, History]]:
    """A sqlite MLflow store with a realistic history; tests copy it before changing it."""
    directory = tmp_path_factory.mktemp("mlflow-sqlite")
    uri = f"sqlite:///{directory / 'mlflow.db'}"
    history = build_history(uri, directory)
    yield uri, history


def client_of(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def project(home: Path, db: Path) -> Projection:
    with FileLog(log_directory(home)) as log:
        totals = replay(log, db)
    projection = Projection(db)
    assert totals.dead_letters == 0, projection.dead_letters()
    return projection


def log_records(home: Path) -> list[bytes]:
    with FileLog(log_directory(home)) as log:
        return [record.value for record in log.read_all()]


def import_json(capsys: pytest.CaptureFixture[str], *arguments: str) -> dict:
    """Run the CLI in-process with --json and return its summary."""
    code = main(["import-mlflow", *arguments, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_import_from_sqlite_matches_mlflow_entity_by_entity(mlflow_store, tmp_path: Path) -> None:
    uri, history = mlflow_store
    home = tmp_path / "lf"
    result = run_cli("import-mlflow", uri, "--to", f"file:{home}")
    assert result.returncode == 0, result.stderr
    assert "runs" in result.stdout and "MetricsLogged" in result.stdout  # the summary table

    projection = project(home, tmp_path / "state.duckdb")
    compared = assert_same_history(client_of(uri), projection, deleted_versions=history.deleted_versions)
    assert compared["experiments"] == 4  # Default, vision, scratch (deleted), nlp (renamed)
    assert compared["runs"] == len(history.runs)
    assert compared["metric points"] > LONG_SERIES_POINTS
    assert compared["artifacts"] == 2
    assert compared["versions"] == 2  # version 3 was deleted; it stays deleted, its number taken
    assert compared["logged models"] == 2

    # deleted things arrive deleted, at MLflow's deletion time
    [scratch] = projection.rows("SELECT * FROM experiments WHERE name = 'scratch'")
    assert scratch["lifecycle_stage"] == "deleted" and scratch["deleted_time"] == scratch["last_update_time"]
    [run] = projection.rows("SELECT lifecycle_stage, deleted_time FROM runs WHERE run_id = ?", history.runs["deleted"])
    with sqlite3.connect(uri[len("sqlite:///"):]) as db:
        [(deleted_time,)] = db.execute("SELECT deleted_time FROM runs WHERE run_uuid = ?", (history.runs["deleted"],))
    assert run == {"lifecycle_stage": "deleted", "deleted_time": deleted_time}
    # the long series was split over several events, and events carry MLflow's times and the importer as actor
    events = [decode(value) for value in log_records(home)]
    long_series = [e for e in events if e.type == "MetricsLogged"
                   and any(s["key"] == "lr_schedule" for s in e.body["series"])]
    assert len(long_series) == 2
    started = {e.body["run_id"]: e for e in events if e.type == "RunStarted"}
    for event in started.values():
        assert event.occurred_at.timestamp() * 1000 == event.body["start_time"]
        assert event.envelope["actor"] == "mlflow-import"
    lineage = projection.rows("SELECT source_id, target_id FROM lineage WHERE relation = 'parent_of'")
    assert lineage == [{"source_id": history.runs["parent"], "target_id": history.runs["child"]}]
    projection.close()


def test_a_second_import_writes_nothing(mlflow_store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri, _ = mlflow_store
    home = tmp_path / "lf"
    first = import_json(capsys, uri, "--to", f"file:{home}")
    assert first["events_written"] > 0 and first["already_present"] == 0
    before = log_records(home)

    second = import_json(capsys, uri, "--to", f"file:{home}")
    assert second["events_written"] == 0
    assert second["points_written"] == 0
    assert second["already_present"] == first["events_written"] - first["written"]["MetricsLogged"]
    assert log_records(home) == before  # the log did not move


class FailingLog(FileLog):
    """A real file log whose disk 'fills up' after a number of appended batches."""

    def __init__(self, directory: Path, batches: int) -> None:
        super().__init__(directory)
        self.batches_left = batches

    def append_batch(self, entries: list[Entry]) -> list[tuple[int, int]]:
        if self.batches_left == 0:
            raise DeliveryError("no space left on device (simulated)")
        self.batches_left -= 1
        return super().append_batch(entries)


def test_an_interrupted_import_completes_on_the_next_run(mlflow_store, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from ledgerflow.ingest.importers import Importer, ImportOptions
    from ledgerflow.ingest.importers.sources import open_source

    uri, history = mlflow_store
    monkeypatch.setattr(writer_module, "BATCH_EVENTS", 3)  # many small batches, so the failure lands mid-run
    home = tmp_path / "lf"
    with open_source(uri) as source, FailingLog(log_directory(home), batches=4) as log:
        with pytest.raises(DeliveryError):
            Importer(source, log, ImportOptions()).run()
    partial = len(log_records(home))
    assert 0 < partial

    with open_source(uri) as source, FileLog(log_directory(home)) as log:
        summary = Importer(source, log, ImportOptions()).run()
    assert summary.already_present > 0 and summary.events_written > 0

    projection = project(home, tmp_path / "state.duckdb")
    assert_same_history(client_of(uri), projection, deleted_versions=history.deleted_versions)
    projection.close()


def test_a_changed_source_adds_only_what_is_new(mlflow_store, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    source_uri, history = mlflow_store
    copy = tmp_path / "mlflow.db"
    shutil.copy(source_uri[len("sqlite:///"):], copy)
    uri = f"sqlite:///{copy}"
    home = tmp_path / "lf"
    import_json(capsys, uri, "--to", f"file:{home}")

    client = client_of(uri)
    running = history.runs["running"]
    client.log_metric(running, "throughput", 10.0, step=1)
    client.log_metric(running, "throughput", 12.0, step=2)
    client.set_tag(running, "note", "changed")
    client.set_terminated(running, "FINISHED")
    new_run = client.create_run(history.experiments["vision"], run_name="late").info.run_id
    client.log_param(new_run, "lr", "0.2")

    again = import_json(capsys, uri, "--to", f"file:{home}")
    assert again["points_written"] == 2
    assert again["written"]["RunStarted"] == 1 and again["written"]["RunStatusChanged"] == 1
    assert again["written"]["RunTagsSet"] == 2  # the changed run's tags, the new run's tags
    projection = project(home, tmp_path / "state.duckdb")
    [row] = projection.rows("SELECT status FROM runs WHERE run_id = ?", running)
    assert row["status"] == "FINISHED"
    assert projection.pairs("tags", "run_id = ? AND key = 'note'", running) == {"note": "changed"}
    points = projection.rows("SELECT step, value FROM metrics WHERE run_id = ? ORDER BY step", running)
    assert points == [{"step": 1, "value": 10.0}, {"step": 2, "value": 12.0}]
    assert projection.pairs("params", "run_id = ?", new_run) == {"lr": "0.2"}
    projection.close()


def test_an_experiment_name_taken_by_another_id_is_refused(mlflow_store, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from ledgerflow.ingest.sdk.client import TrackingClient

    uri, _ = mlflow_store
    home = tmp_path / "lf"
    with TrackingClient(f"file:{home}") as client:
        client.create_experiment("vision")  # ledgerflow's own id for it, not MLflow's
    before = log_records(home)

    code = main(["import-mlflow", uri, "--to", f"file:{home}", "--quiet"])
    error = capsys.readouterr().err
    assert code == 1
    assert "experiment name 'vision' belongs to experiment id" in error and "nothing was written" in error
    assert log_records(home) == before


def test_the_default_experiment_merges_with_ledgerflows_own(mlflow_store, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from ledgerflow.ingest.sdk.client import TrackingClient

    uri, _ = mlflow_store
    home = tmp_path / "lf"
    with TrackingClient(f"file:{home}") as client:
        client.ensure_experiment("Default")  # id "0", as MLflow's
    summary = import_json(capsys, uri, "--to", f"file:{home}")
    assert summary["events_written"] > 0
    projection = project(home, tmp_path / "state.duckdb")
    assert projection.rows("SELECT experiment_id FROM experiments WHERE name = 'Default'") == [{"experiment_id": "0"}]
    projection.close()


@pytest.mark.parametrize("make_source", [
    lambda tmp: f"sqlite:///{tmp / 'absent.db'}",
    lambda tmp: str(tmp / "no-such-dir"),
    lambda tmp: _not_mlflow_sqlite(tmp),
    lambda tmp: _empty_directory(tmp),
    lambda tmp: "postgresql://user@db/mlflow",
    lambda tmp: "http://127.0.0.1:9",  # nothing listens on the discard port
], ids=["missing-sqlite", "missing-dir", "foreign-sqlite", "empty-dir", "other-database", "no-server"])
def test_a_bad_source_is_named_exits_2_and_writes_nothing(make_source, tmp_path: Path) -> None:
    source = make_source(tmp_path)
    home = tmp_path / "lf"
    result = run_cli("import-mlflow", source, "--to", f"file:{home}")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert source in result.stderr
    assert not home.exists()


def _not_mlflow_sqlite(tmp: Path) -> str:
    path = tmp / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (id INTEGER)")
    return f"sqlite:///{path}"


def _empty_directory(tmp: Path) -> str:
    (tmp / "empty").mkdir()
    return str(tmp / "empty")


def test_importing_into_a_server_url_is_refused_with_the_alternative(mlflow_store, tmp_path: Path) -> None:
    uri, _ = mlflow_store
    result = run_cli("import-mlflow", uri, "--to", "http://127.0.0.1:5000")
    assert result.returncode == 1
    assert "--to file:HOME" in result.stderr
