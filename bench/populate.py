"""Loading the query workload (bench/workload.py) into each store without going through a client.

Logging 10,000-100,000 runs through MLflow's client would take hours, so each peer's sqlite file is
filled with bulk inserts into the schema that peer's own server created at startup, row for row
what its server writes for ``create_run`` + ``log_batch`` + ``set_terminated`` (checked by logging a
run through the client and reading the rows back; docs/performance.md lists them). ledgerflow is
loaded through its own log: the same events its SDK appends, which its server then projects.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from bench.workload import HISTORY_EXPERIMENT, SEARCH_EXPERIMENT, QueryWorkload, RunRecord, history_run, search_runs

_CHUNK_RUNS = 2_000


def _chunks(records: Iterable[RunRecord], size: int = _CHUNK_RUNS) -> Iterator[list[RunRecord]]:
    chunk: list[RunRecord] = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _records(workload: QueryWorkload, first: int) -> Iterator[tuple[str, RunRecord]]:
    """(experiment name, run) for every run to add: the search runs, then (first time only) the long series."""
    for record in search_runs(workload, first):
        yield SEARCH_EXPERIMENT, record
    if first == 0 and workload.history_points:
        yield HISTORY_EXPERIMENT, history_run(workload.history_points)


# -- MLflow (sqlite, schema of mlflow 3.17's migrations) -----------------------------------------

def _sqlite(db: Path) -> sqlite3.Connection:
    if not db.exists():
        raise FileNotFoundError(f"{db} does not exist: start the server first, it creates the schema")
    connection = sqlite3.connect(db, timeout=60)
    connection.execute("PRAGMA synchronous = OFF")  # this connection only: a bulk load, fsync'd by the commit
    return connection


def _experiment_id(connection: sqlite3.Connection, name: str, insert: str,
                   values: Callable[[int], tuple[object, ...]]) -> int:
    """The id of experiment ``name``, inserted with the next free id (and ``values(id)``) when missing."""
    row = connection.execute("SELECT experiment_id FROM experiments WHERE name = ?", (name,)).fetchone()
    if row:
        return row[0]
    new_id = connection.execute("SELECT COALESCE(MAX(experiment_id), 0) + 1 FROM experiments").fetchone()[0]
    connection.execute(insert, (new_id, name, *values(new_id)))
    return new_id


def populate_mlflow(db: Path, artifact_root: str, workload: QueryWorkload, first: int = 0) -> None:
    """Rows MLflow's server writes: experiments, runs, params, tags (+ mlflow.runName), metrics, latest_metrics."""
    now = int(time.time() * 1000)
    with _sqlite(db) as connection:
        experiments = {
            name: _experiment_id(connection, name,
                                 "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage,"
                                 " creation_time, last_update_time, workspace) VALUES (?, ?, ?, 'active', ?, ?, 'default')",
                                 lambda i: (f"{artifact_root}/{i}", now, now))
            for name in (SEARCH_EXPERIMENT, HISTORY_EXPERIMENT)}
        for chunk in _chunks(_records(workload, first)):
            runs, params, tags, metrics, latest = [], [], [], [], []
            for experiment, r in chunk:
                experiment_id = experiments[experiment]
                runs.append((r.run_id, r.name, "UNKNOWN", "", "", "unknown", "FINISHED", r.start_time, r.end_time, "",
                             "active", f"{artifact_root}/{experiment_id}/{r.run_id}/artifacts", experiment_id))
                params += [(k, v, r.run_id) for k, v in r.params]
                tags += [(k, v, r.run_id) for k, v in [*r.tags, ("mlflow.runName", r.name)]]
                for s in r.series:
                    metrics += [(s.key, v, t, r.run_id, step)
                                for step, t, v in zip(s.steps, s.timestamps, s.values, strict=True)]
                    latest.append((s.key, s.values[-1], s.timestamps[-1], s.steps[-1], r.run_id))
            connection.executemany(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status,"
                " start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", runs)
            connection.executemany('INSERT INTO params ("key", value, run_uuid) VALUES (?, ?, ?)', params)
            connection.executemany('INSERT INTO tags ("key", value, run_uuid) VALUES (?, ?, ?)', tags)
            connection.executemany('INSERT INTO metrics ("key", value, timestamp, run_uuid, step, is_nan)'
                                   " VALUES (?, ?, ?, ?, ?, 0)", metrics)
            connection.executemany('INSERT INTO latest_metrics ("key", value, timestamp, step, is_nan, run_uuid)'
                                   " VALUES (?, ?, ?, ?, 0, ?)", latest)
    connection.close()


# -- FastTrackML (sqlite, schema of fml 0.6.0's migrations) ----------------------------------------

def populate_fasttrackml(db: Path, artifact_root: str, workload: QueryWorkload, first: int = 0) -> None:
    """Rows FastTrackML writes: its runs carry row_num, metrics an iter and the empty context's id, params value_str."""
    now = int(time.time() * 1000)
    with _sqlite(db) as connection:
        namespace_id = connection.execute("SELECT id FROM namespaces WHERE code = 'default'").fetchone()[0]
        context_id = connection.execute("SELECT id FROM contexts WHERE json = '{}'").fetchone()[0]
        experiments = {
            name: _experiment_id(connection, name,
                                 "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage,"
                                 " creation_time, last_update_time, namespace_id) VALUES (?, ?, ?, 'active', ?, ?, ?)",
                                 lambda i: (f"file://{artifact_root}/{i}", now, now, namespace_id))
            for name in (SEARCH_EXPERIMENT, HISTORY_EXPERIMENT)}
        row_num = connection.execute("SELECT COALESCE(MAX(row_num), -1) + 1 FROM runs").fetchone()[0]
        for chunk in _chunks(_records(workload, first)):
            runs, params, tags, metrics, latest = [], [], [], [], []
            for experiment, r in chunk:
                experiment_id = experiments[experiment]
                runs.append((r.run_id, r.name, "UNKNOWN", "", "", "unknown", "FINISHED", r.start_time, r.end_time, "",
                             "active", f"file://{artifact_root}/{experiment_id}/{r.run_id}/artifacts", experiment_id,
                             row_num))
                row_num += 1
                params += [(k, v, r.run_id) for k, v in r.params]
                tags += [(k, v, r.run_id) for k, v in r.tags]
                for s in r.series:
                    metrics += [(s.key, v, t, r.run_id, step, i + 1, context_id)
                                for i, (step, t, v) in enumerate(zip(s.steps, s.timestamps, s.values, strict=True))]
                    latest.append((s.key, s.values[-1], s.timestamps[-1], s.steps[-1], r.run_id, len(s.values),
                                   context_id))
            connection.executemany(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status,"
                " start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id, row_num)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", runs)
            connection.executemany("INSERT INTO params (key, value_str, run_uuid) VALUES (?, ?, ?)", params)
            connection.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", tags)
            connection.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan, iter, context_id)"
                                   " VALUES (?, ?, ?, ?, ?, 0, ?, ?)", metrics)
            connection.executemany("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid, last_iter,"
                                   " context_id) VALUES (?, ?, ?, ?, 0, ?, ?, ?)", latest)
    connection.close()


def checkpoint_sqlite(db: Path) -> None:
    """Fold a WAL into the database file, so its size on disk is the data's (FastTrackML runs in WAL mode)."""
    connection = sqlite3.connect(db, timeout=60)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


# -- ledgerflow (its own event log) ------------------------------------------------------------------

def populate_ledgerflow(home: Path, workload: QueryWorkload, first: int = 0) -> int:
    """Append the workload's events to the embedded log of data home ``home``; returns the events appended."""
    from ledgerflow.ingest.log import Entry
    from ledgerflow.ingest.log.file import FileLog
    from ledgerflow.ingest.log.uri import log_directory
    from ledgerflow.ingest.sdk.client import experiment_id_for
    from ledgerflow.schemas import Event, encode, make_envelope, pack_series

    producer = f"bench-populate-{first}"
    sequence = [0]

    def event(event_type: str, entity_key: str, **fields: object) -> Entry:
        sequence[0] += 1
        envelope = make_envelope(actor="bench", producer_id=producer, sequence=sequence[0], entity_key=entity_key)
        return Entry(entity_key, encode(Event(event_type, {"envelope": envelope, **fields})))

    def key_values(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
        return [{"key": k, "value": v} for k, v in pairs]

    log = FileLog(log_directory(home), fsync="never")
    appended = 0
    try:
        experiments = {name: experiment_id_for(name) for name in (SEARCH_EXPERIMENT, HISTORY_EXPERIMENT)}
        if first == 0:
            log.append_batch([event("ExperimentCreated", f"experiment/{i}", experiment_id=i, name=name,
                                    artifact_location=None, tags=[]) for name, i in experiments.items()])
            appended += len(experiments)
        for chunk in _chunks(_records(workload, first), 500):
            batch = []
            for experiment, r in chunk:
                key = f"run/{r.run_id}"
                batch.append(event("RunStarted", key, run_id=r.run_id, experiment_id=experiments[experiment],
                                   run_name=r.name, parent_run_id=None, start_time=r.start_time, status="RUNNING",
                                   user_id="bench", artifact_uri=None,
                                   tags=key_values([*r.tags, ("mlflow.runName", r.name)])))
                if r.params:
                    batch.append(event("ParamsLogged", key, run_id=r.run_id, params=key_values(r.params)))
                for start in range(0, max(len(s.values) for s in r.series), 1000):
                    batch.append(event("MetricsLogged", key, run_id=r.run_id, series=[
                        pack_series(s.key, s.steps[start:start + 1000], s.timestamps[start:start + 1000],
                                    s.values[start:start + 1000]) for s in r.series if start < len(s.values)]))
                batch.append(event("RunStatusChanged", key, run_id=r.run_id, status="FINISHED", end_time=r.end_time))
            log.append_batch(batch)
            appended += len(batch)
    finally:
        log.close()
    return appended
