"""The projector against a real embedded log and a real DuckDB file."""

from __future__ import annotations

import io
import math
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from fastavro import schemaless_writer

from ledgerflow.ingest.log import Entry, EventLog
from ledgerflow.ingest.log.file import FileLog
from ledgerflow.projector import ProjectionStore, Projector, WrongLogError, database_checksums, replay
from ledgerflow.schemas import MARKER, default_catalog, encode

from .workload import DAY1, DAY2, DAY3, Workload, run_id, standard_workload


@pytest.fixture(params=["file", "kafka"])
def any_log(request: pytest.FixtureRequest, tmp_path: Path) -> EventLog:
    """A fresh log of each backend: the embedded log, and a 3-partition topic on the real broker."""
    if request.param == "file":
        log = FileLog(tmp_path / "events")
        request.addfinalizer(log.close)
        return log
    topic = request.getfixturevalue("kafka_topic")(partitions=3)
    return request.getfixturevalue("kafka_log_factory")(topic)


def _project(log: EventLog, db: Path, batch_records: int = 1000) -> Projector:
    store = ProjectionStore(db)
    projector = Projector(log, store, batch_records=batch_records)
    projector.run_until_caught_up()
    projector.close()
    store.close()
    return projector



def _query(db: Path, sql: str) -> list[tuple]:
    connection = duckdb.connect(str(db), read_only=True)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def test_the_workload_is_projected_into_every_table(any_log: EventLog, tmp_path: Path) -> None:
    any_log.append_batch(standard_workload().entries())
    db = tmp_path / "state.duckdb"
    _project(any_log, db)
    assert _query(db, "SELECT name FROM experiments") == [("churn-0-v2",)]
    assert _query(db, "SELECT run_name, status, lifecycle_stage FROM runs ORDER BY run_name") == [
        ("run-0", "FINISHED", "active"), ("run-1", "FINISHED", "deleted"), ("run-2", "FINISHED", "active")]
    assert _query(db, "SELECT count(*) FROM metrics") == [(3 * 3000 * 2,)]
    assert _query(db, f"SELECT step, value FROM latest_metrics WHERE run_id = '{run_id(0)}' AND key = 'loss'") == [
        (2999, 1 / 3000)]
    nan = _query(db, f"SELECT value FROM metrics WHERE run_id = '{run_id(0)}' AND key = 'acc' AND step = 5")[0][0]
    assert math.isnan(nan)
    assert _query(db, "SELECT count(*) FROM params") == [(6,)]
    assert _query(db, "SELECT source_type, target_type, relation FROM lineage ORDER BY 1, 2, 3") == [
        ("dataset", "run", "training")] * 3 + [("run", "model_version", "produced")] * 2 + [("run", "run", "parent_of")]
    assert _query(db, "SELECT version, action FROM model_alias_history ORDER BY occurred_at") == [(1, "set"), (2, "set")]
    assert _query(db, "SELECT alias, version FROM model_aliases") == [("champion", 2)]
    assert _query(db, "SELECT profile FROM datasets") == [('{"rows": 100}',)]
    assert _query(db, "SELECT count(*) FROM events") == [(len(standard_workload().events),)]
    assert _query(db, "SELECT count(*) FROM dead_letters") == [(0,)]


@pytest.mark.parametrize("backend", ["file", "kafka"])
def test_poison_events_go_to_dead_letters_and_good_ones_around_them_apply(backend: str, tmp_path: Path,
                                                                         request: pytest.FixtureRequest) -> None:
    if backend == "file":
        log: EventLog = FileLog(tmp_path / "events")
    else:
        log = request.getfixturevalue("kafka_log_factory")(request.getfixturevalue("kafka_topic")(partitions=3))
    workload = standard_workload(points_per_run=1000)
    good = workload.entries()
    v1 = default_catalog().versions["RunRenamed"][0]
    body = io.BytesIO()
    schemaless_writer(body, v1.parsed, {"envelope": workload.events[0].envelope, "run_id": "r", "new_name": "x"})
    poison = [
        Entry("x", b"not avro at all"),
        Entry("x", MARKER + b"\x01" * 8 + b"body"),  # unknown fingerprint
        Entry("x", encode(workload.events[3])[:-4]),  # truncated body
        Entry("x", MARKER + v1.fingerprint + body.getvalue()[:3]),  # fails its schema
        Entry("run/" + "9" * 32, workload.entries([workload.event("ParamsLogged", DAY3, "run/" + "9" * 32,
                                                                  run_id="9" * 32, params=[])])[0].value),
    ]
    mixed = []
    for i, entry in enumerate(good):
        mixed.append(entry)
        if i % 4 == 0 and poison:
            mixed.append(poison.pop(0))
    # after everything good, in the keys' own order: the same event again, and a param conflict
    conflict = workload.event("ParamsLogged", DAY3, f"run/{run_id(0)}", run_id=run_id(0),
                              params=[{"key": "lr", "value": "999"}])
    mixed += poison + [good[3], workload.entries([conflict])[0]]
    log.append_batch(mixed)
    expected_dead = 7
    if backend == "file":
        with open(log.segment_path(0), "ab") as f:
            f.write(b"LFE1\xff\x00\x00\x00torn")  # a torn tail after a crashed writer
        expected_dead += 1
    db = tmp_path / "state.duckdb"
    _project(log, db, batch_records=5)
    reasons = [r[0] for r in _query(db, "SELECT reason FROM dead_letters ORDER BY log_partition, log_offset")]
    assert len(reasons) == expected_dead, reasons
    expected = ["undecodable: not an Avro single-object", "unknown writer schema fingerprint", "corrupt event body",
                "duplicate event id", "run '9999", "immutable"] + (["damaged log record: torn record"] if backend == "file" else [])
    for reason in expected:
        assert any(reason in r for r in reasons), (reason, reasons)
    clean_log = FileLog(tmp_path / "clean-log")
    clean_log.append_batch(good)
    clean = tmp_path / "clean.duckdb"
    _project(clean_log, clean)
    dirty, reference = database_checksums(db), database_checksums(clean)
    for table in reference:  # the same content as a clean log, whichever backend carried it
        if table not in ("events", "dead_letters"):
            assert dirty[table] == reference[table], table
    assert dirty["events"]["rows"] == reference["events"]["rows"]


def test_replay_is_deterministic_whatever_the_batch_size(any_log: EventLog, tmp_path: Path) -> None:
    any_log.append_batch(standard_workload().entries())
    any_log.append_batch(standard_workload(seed=1).entries())
    first, second, small = tmp_path / "a.duckdb", tmp_path / "b.duckdb", tmp_path / "c.duckdb"
    replay(any_log, first)
    replay(any_log, second)
    _project(any_log, small, batch_records=3)
    assert database_checksums(first) == database_checksums(second) == database_checksums(small)


def test_the_projector_resumes_where_it_stopped_and_applies_nothing_twice(any_log: EventLog, tmp_path: Path) -> None:
    workload = standard_workload()
    entries = workload.entries()
    db = tmp_path / "live.duckdb"
    for chunk in (entries[:7], entries[7:20], entries[20:]):
        any_log.append_batch(chunk)
        _project(any_log, db, batch_records=4)  # a new projector process each time
    full = tmp_path / "full.duckdb"
    replay(any_log, full)
    assert database_checksums(db) == database_checksums(full)


@pytest.mark.parametrize(
    ("until", "runs", "metrics", "alias_version", "experiment"),
    [
        (DAY1 + timedelta(hours=1), 3, 0, None, "churn-0"),
        (DAY2 + timedelta(hours=1), 3, 18000, 1, "churn-0"),
        (DAY3 + timedelta(hours=1), 3, 18000, 2, "churn-0-v2"),
    ],
    ids=["after set-up", "after training", "after day-3 changes"],
)
def test_time_travel_shows_the_state_as_of_an_instant(any_log: EventLog, tmp_path: Path, until, runs, metrics,
                                                      alias_version, experiment) -> None:
    any_log.append_batch(standard_workload().entries())
    db = tmp_path / "as-of.duckdb"
    totals = replay(any_log, db, until=until)
    assert _query(db, "SELECT count(*) FROM runs") == [(runs,)]
    assert _query(db, "SELECT count(*) FROM metrics") == [(metrics,)]
    assert _query(db, "SELECT name FROM experiments") == [(experiment,)]
    aliases = _query(db, "SELECT version FROM model_aliases")
    assert aliases == ([] if alias_version is None else [(alias_version,)])
    assert totals.skipped == len(standard_workload().events) - totals.applied
    with pytest.raises(WrongLogError, match="time-travel snapshot"):
        Projector(any_log, ProjectionStore(db))


def test_replay_until_a_position(file_log: FileLog, tmp_path: Path) -> None:
    positions = file_log.append_batch(standard_workload().entries())
    db = tmp_path / "upto.duckdb"
    totals = replay(file_log, db, until_position={0: positions[5][1]})
    assert totals.applied == 5
    assert _query(db, "SELECT max(log_offset) FROM events") == [(positions[4][1],)]


def test_a_database_refuses_a_different_log(file_log: FileLog, tmp_path: Path) -> None:
    file_log.append_batch(standard_workload().entries()[:3])
    db = tmp_path / "state.duckdb"
    _project(file_log, db)
    other = FileLog(tmp_path / "other")
    with pytest.raises(WrongLogError, match="projects file:"):
        Projector(other, ProjectionStore(db))


def test_events_written_with_an_old_schema_version_are_projected(any_log: EventLog, tmp_path: Path) -> None:
    """DatasetInputLogged v1 bytes (no profile) read after v2 added an optional profile."""
    workload = Workload()
    workload.event("ExperimentCreated", DAY1, "experiment/e", experiment_id="e", name="e", artifact_location=None, tags=[])
    workload.event("RunStarted", DAY1, "experiment/e", run_id="a" * 32, experiment_id="e", run_name="r",
                   parent_run_id=None, start_time=1, status="RUNNING", user_id="u", artifact_uri=None, tags=[])
    entries = workload.entries()
    v1 = default_catalog().versions["DatasetInputLogged"][0]
    record = {"envelope": workload.events[0].envelope | {"event_id": workload.events[0].event_id.__class__(int=99)},
              "run_id": "a" * 32, "context": "eval", "tags": [],
              "dataset": {"name": "iris", "digest": "abc", "source_type": "local", "source": "{}", "schema": None}}
    body = io.BytesIO()
    schemaless_writer(body, v1.parsed, record)
    entries.append(Entry("experiment/e", MARKER + v1.fingerprint + body.getvalue()))
    any_log.append_batch(entries)
    db = tmp_path / "state.duckdb"
    _project(any_log, db)
    assert _query(db, "SELECT name, digest, profile FROM datasets") == [("iris", "abc", None)]
    assert _query(db, "SELECT schema_version FROM events WHERE event_type = 'DatasetInputLogged'") == [(1,)]


def test_metric_ranges_point_exactly_at_each_series_rows(any_log: EventLog, tmp_path: Path) -> None:
    """The directory the API reads series through: every range covers only its series, and all of it."""
    any_log.append_batch(standard_workload().entries())
    any_log.append_batch(standard_workload(seed=1).entries())
    db = tmp_path / "state.duckdb"
    _project(any_log, db, batch_records=7)  # many small batches: series spread over many ranges
    mismatched = _query(db, """
        SELECT r.run_id, r.key, r.first_row, r.row_count, count(m.rowid), count(*) FILTER (WHERE m.run_id = r.run_id
               AND m.key = r.key AND m.step BETWEEN r.min_step AND r.max_step)
        FROM projector_metric_ranges r JOIN metrics m ON m.rowid BETWEEN r.first_row AND r.first_row + r.row_count - 1
        GROUP BY ALL HAVING count(m.rowid) != r.row_count OR count(*) FILTER (WHERE m.run_id = r.run_id
               AND m.key = r.key AND m.step BETWEEN r.min_step AND r.max_step) != r.row_count""")
    assert mismatched == []
    covered = _query(db, "SELECT sum(row_count) FROM projector_metric_ranges")[0][0]
    assert covered == _query(db, "SELECT count(*) FROM metrics")[0][0] == 2 * 3 * 3000 * 2
