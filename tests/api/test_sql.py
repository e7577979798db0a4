"""POST /api/v1/sql on a real, hardened server over real projected data, embedded and on Kafka.

One server per backend for the whole module (the escape attempts are many and each is cheap); every
refused attempt is checked to leave the data intact (table checksums) and to create no file.
"""

from __future__ import annotations

import base64
import csv
import io
import math
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ledgerflow.api.sql import HARDENING, harden_database
from ledgerflow.ingest.log import open_log
from ledgerflow.projector import table_checksums
from tests.api.serving import RunningServer, start_server
from tests.projector.workload import run_id, standard_workload

POINTS = 50


@dataclass
class Sandbox:
    server: RunningServer
    seed: int
    scratch: Path
    checksums: dict[str, Any]

    def post(self, sql: str, **fields: Any) -> Any:
        with self.server.client() as client:
            return client.post("/api/v1/sql", json={"sql": sql, **fields})

    def rows(self, sql: str, **fields: Any) -> list[list[Any]]:
        response = self.post(sql, **fields)
        assert response.status_code == 200, response.text
        return response.json()["rows"]

    def current_checksums(self) -> dict[str, Any]:
        with self.server.runtime.read_cursor(consistent=False) as cursor:
            try:
                return table_checksums(cursor)
            finally:
                cursor.abort()


@pytest.fixture(scope="module", params=["embedded", "kafka"])
def sandbox(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A hardened server holding a small projected workload; the data must never change under it."""
    home = tmp_path_factory.mktemp(f"sql-{request.param}")
    seed = 11 if request.param == "embedded" else 12
    topic = None
    if request.param == "embedded":
        uri = f"file:{home}"
    else:
        from ledgerflow.ingest.log.kafka import delete_topics, ensure_topic, parse_bootstrap
        servers = parse_bootstrap(request.getfixturevalue("kafka_bootstrap"))
        topic = f"lf-sql-{uuid.uuid4().hex[:12]}"
        ensure_topic(servers, topic, partitions=3, timeout=30)
        uri = f"kafka://{request.getfixturevalue('kafka_bootstrap')}/{topic}"
    running, uvicorn_server, thread = start_server(open_log(uri), uri, home)
    with running.runtime.read_cursor(consistent=False) as cursor:
        harden_database(cursor)  # what Runtime does at start; harmless when it already did
    log = open_log(uri)
    log.append_batch(standard_workload(seed, runs=3, points_per_run=POINTS).entries())
    log.close()
    box = Sandbox(running, seed, tmp_path_factory.mktemp("scratch"), {})
    assert box.rows("SELECT count(*) FROM runs") == [[3]]  # read-your-writes: projected before it answers
    box.checksums = box.current_checksums()
    yield box
    uvicorn_server.should_exit = True
    thread.join(timeout=30)
    running.runtime.stop()
    if topic:
        try:
            delete_topics(servers, [topic], timeout=30)
        except Exception:
            pass  # tidy-up only


# ---- escape attempts: every one refused with a clear message, nothing changed, no file written ------------------

F, M = (403, "SQL_NOT_ALLOWED"), (400, "INVALID_SQL")
ESCAPES = [
    ("copy-to-file", "COPY runs TO '{scratch}/runs.csv'", F, "COPY"),
    ("copy-query-to-file", "COPY (SELECT * FROM params) TO '{scratch}/p.parquet' (FORMAT parquet)", F, "COPY"),
    ("copy-from-file", "COPY runs FROM '/etc/passwd'", F, "COPY"),
    ("read-csv", "SELECT * FROM read_csv('/etc/passwd')", F, "read_csv()"),
    ("read-csv-upper", "SELECT * FROM READ_CSV_AUTO('/etc/passwd')", F, "read_csv_auto()"),
    ("file-as-table", "SELECT * FROM '/etc/passwd'", F, "reading files"),
    ("quoted-file-as-table", 'SELECT * FROM "/etc/hosts"', F, "reading files"),
    ("read-text", "SELECT content FROM read_text('/etc/passwd')", F, "read_text()"),
    ("read-blob", "SELECT * FROM read_blob('/etc/shadow')", F, "read_blob()"),
    ("glob", "SELECT * FROM glob('/*')", F, "glob()"),
    ("read-parquet-url", "SELECT * FROM read_parquet('https://example.com/x.parquet')", F, "read_parquet()"),
    ("read-json", "SELECT * FROM read_json('/etc/passwd')", F, "read_json()"),
    ("sniff-csv", "SELECT * FROM sniff_csv('/etc/passwd')", F, "sniff_csv()"),
    ("parquet-metadata", "SELECT * FROM parquet_metadata('/x.parquet')", F, "parquet_metadata()"),
    ("query-text", "SELECT * FROM query('DROP TABLE runs')", F, "query()"),
    ("query-table", "SELECT * FROM query_table('runs')", F, "query_table()"),
    ("qualified-reader", "SELECT * FROM system.main.read_csv('/etc/passwd')", F, "read_csv()"),
    ("nested-reader", "SELECT * FROM runs WHERE run_id IN (SELECT column0 FROM read_csv('/etc/passwd'))", F,
     "read_csv()"),
    ("lateral-reader", "SELECT * FROM runs r, LATERAL (SELECT * FROM read_text(r.run_id))", F, "read_text()"),
    ("describe-reader", "DESCRIBE SELECT * FROM read_csv('/etc/passwd')", F, "read_csv()"),
    ("summarize-glob", "SUMMARIZE SELECT * FROM glob('/*')", F, "glob()"),
    ("cte-out-of-scope", "SELECT * FROM (WITH \"/etc/passwd\" AS (SELECT 1) FROM \"/etc/passwd\"), '/etc/passwd'",
     F, "reading files"),
    ("attach-file", "ATTACH '{scratch}/other.duckdb' AS other", F, "ATTACH"),
    ("attach-memory", "ATTACH ':memory:' AS scratch", F, "ATTACH"),
    ("detach", "DETACH state", F, "DETACH"),
    ("install-httpfs", "INSTALL httpfs", F, "INSTALL"),
    ("load-httpfs", "LOAD httpfs", F, "LOAD"),
    ("pragma", "PRAGMA database_list", F, "PRAGMA"),
    ("set", "SET threads = 1", F, "SET"),
    ("set-external-access", "SET enable_external_access = true", F, "SET"),
    ("reset", "RESET memory_limit", F, "RESET"),
    ("set-variable", "SET VARIABLE x = 1", F, "SET"),
    ("use", "USE memory", F, "USE"),
    ("create-table", "CREATE TABLE x AS SELECT 1", F, "CREATE"),
    ("create-temp-table", "CREATE TEMP TABLE x AS SELECT * FROM runs", F, "CREATE"),
    ("create-view", "CREATE VIEW v AS SELECT * FROM runs", F, "CREATE"),
    ("create-macro", "CREATE MACRO m(a) AS a", F, "CREATE"),
    ("create-secret", "CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 's')", F, "CREATE"),
    ("insert", "INSERT INTO runs SELECT * FROM runs", F, "INSERT"),
    ("update", "UPDATE runs SET status = 'FAILED'", F, "UPDATE"),
    ("delete", "DELETE FROM metrics", F, "DELETE"),
    ("merge", "MERGE INTO tags USING tags t2 ON true WHEN MATCHED THEN DELETE", F, "MERGE"),
    ("drop", "DROP TABLE runs", F, "DROP"),
    ("alter", "ALTER TABLE runs RENAME TO runs_old", F, "ALTER"),
    ("export", "EXPORT DATABASE '{scratch}/export'", F, "EXPORT"),
    ("import", "IMPORT DATABASE '{scratch}/export'", F, "IMPORT"),
    ("checkpoint", "CHECKPOINT", F, "CHECKPOINT"),
    ("force-checkpoint", "FORCE CHECKPOINT", F, "FORCE"),
    ("checkpoint-function", "SELECT * FROM checkpoint()", F, "checkpoint()"),
    ("vacuum", "VACUUM", F, "VACUUM"),
    ("call", "CALL pragma_version()", F, "CALL"),
    ("begin", "BEGIN TRANSACTION", F, "BEGIN"),
    ("prepare", "PREPARE p AS SELECT 1", F, "PREPARE"),
    ("explain", "EXPLAIN ANALYZE SELECT * FROM runs", F, "EXPLAIN"),
    ("pivot-statement", "PIVOT runs ON status USING count(*)", F, "PIVOT"),
    ("update-extensions", "UPDATE EXTENSIONS", F, "UPDATE"),
    ("nextval", "SELECT nextval('seq')", F, "nextval()"),
    ("write-log", "SELECT write_log('x')", F, "write_log()"),
    ("current-setting", "SELECT current_setting('home_directory')", F, "current_setting()"),
    ("sleep", "SELECT sleep_ms(60000)", F, "sleep_ms()"),
    ("duckdb-settings", "SELECT * FROM duckdb_settings()", F, "duckdb_settings()"),
    ("duckdb-databases", "SELECT path FROM duckdb_databases()", F, "duckdb_databases()"),
    ("system-catalog", "SELECT * FROM system.main.duckdb_tables", F, "catalog 'system'"),
    ("temp-catalog", "SELECT * FROM temp.main.x", F, "catalog 'temp'"),
    ("pg-catalog", "SELECT * FROM pg_catalog.pg_class", F, "schema 'pg_catalog'"),
    ("system-view", "SELECT * FROM duckdb_tables", F, "system table"),
    ("show-databases", "SHOW databases", F, "SHOW databases"),
    ("comment-hides-drop", "/* just a comment */ DROP TABLE runs", F, "DROP"),
    ("line-comment-then-delete", "-- SELECT 1\nDELETE FROM runs", F, "DELETE"),
    ("two-statements", "SELECT 1; DROP TABLE runs", M, "exactly one statement"),
    ("two-selects", "SELECT 1; SELECT 2", M, "exactly one statement"),
    ("comment-then-second", "SELECT 1 /* ; */ ; DROP TABLE runs", M, "exactly one statement"),
    ("empty", "", M, "empty"),
    ("blank", "   \n\t ", M, "empty"),
    ("only-comments", "-- nothing\n;;", M, "no statement"),
    ("nul", "SELECT 1\x00; DROP TABLE runs", M, "NUL"),
    ("syntax", "SELEC * FROM runs", M, "does not parse"),
    ("unknown-table", "SELECT * FROM runz", M, "unknown table 'runz'"),
    ("parameter", "SELECT ?", M, "parameters"),
]


@pytest.mark.parametrize(("sql", "expected", "names"), [pytest.param(s, e, n, id=i) for i, s, e, n in ESCAPES])
def test_escape_attempts_are_refused_and_change_nothing(sandbox: Sandbox, sql: str, expected: tuple[int, str],
                                                        names: str) -> None:
    response = sandbox.post(sql.replace("{scratch}", str(sandbox.scratch)))
    assert (response.status_code, response.json()["error_code"]) == expected, response.text
    assert names in response.json()["message"], response.json()["message"]
    assert sandbox.current_checksums() == sandbox.checksums
    assert list(sandbox.scratch.iterdir()) == []


@pytest.mark.parametrize(("body", "headers", "status", "fragment"), [
    pytest.param({"sql": 1}, {}, 400, "sql: Input should be a valid string", id="non-string-sql"),
    pytest.param({"sql": ["SELECT 1"]}, {}, 400, "sql: Input should be a valid string", id="list-sql"),
    pytest.param({}, {}, 400, "sql: Field required", id="missing-sql"),
    pytest.param({"query": "SELECT 1"}, {}, 400, "query: Extra inputs are not permitted", id="unknown-field"),
    pytest.param({"sql": "SELECT 1", "format": "xml"}, {}, 400, "format", id="unknown-format"),
    pytest.param({"sql": "SELECT 1", "max_rows": 0}, {}, 400, "max_rows", id="zero-rows"),
    pytest.param({"sql": "SELECT 1", "max_rows": 10**9}, {}, 400, "exceeds the server's cap", id="rows-over-cap"),
    pytest.param({"sql": "SELECT 1", "timeout_seconds": 3600}, {}, 400, "exceeds the server's limit",
                 id="timeout-over-limit"),
    pytest.param({"sql": "SELECT 1", "timeout_seconds": -1}, {}, 400, "timeout_seconds", id="negative-timeout"),
    pytest.param(b"SELECT 1", {"content-type": "text/plain"}, 400, "must be JSON", id="wrong-content-type"),
    pytest.param(b"sql=SELECT+1", {"content-type": "application/x-www-form-urlencoded"}, 400, "must be JSON",
                 id="form-body"),
    pytest.param(b'{"sql": "SELECT 1"', {"content-type": "application/json"}, 400, "not valid JSON",
                 id="broken-json"),
    pytest.param(b'"SELECT 1"', {"content-type": "application/json"}, 400, "invalid request", id="json-string"),
    pytest.param({"sql": "SELECT 1"}, {"accept": "text/html"}, 406, "Accept", id="unsupported-accept"),
])
def test_malformed_requests_are_400(sandbox: Sandbox, body: Any, headers: dict[str, str], status: int,
                                    fragment: str) -> None:
    with sandbox.server.client() as client:
        if isinstance(body, bytes):
            response = client.post("/api/v1/sql", content=body, headers=headers)
        else:
            response = client.post("/api/v1/sql", json=body, headers=headers)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error_code", "message"}
    assert fragment in response.json()["message"]


def test_comments_that_only_look_dangerous_are_fine(sandbox: Sandbox) -> None:
    assert sandbox.rows("SELECT 1 AS one -- ; DROP TABLE runs") == [[1]]
    assert sandbox.rows("SELECT '; DROP TABLE runs' AS s /* DELETE FROM runs */;") == [["; DROP TABLE runs"]]
    assert sandbox.rows('WITH "/etc/passwd" AS (SELECT 42) SELECT * FROM "/etc/passwd"') == [[42]]  # a CTE
    assert sandbox.current_checksums() == sandbox.checksums


# ---- happy paths over the projected workload ----------------------------------------------------------------------


def test_best_runs_by_metric_join_runs_and_latest_metrics(sandbox: Sandbox) -> None:
    response = sandbox.post("""
        SELECT r.run_name, r.status, m.value AS loss, m.step
        FROM runs r JOIN latest_metrics m USING (run_id)
        WHERE m.key = 'loss' AND r.lifecycle_stage = 'active' AND r.experiment_id = ?exp
        ORDER BY m.value""".replace("?exp", f"'exp-{sandbox.seed}'"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["columns"] == [{"name": "run_name", "type": "VARCHAR"}, {"name": "status", "type": "VARCHAR"},
                               {"name": "loss", "type": "DOUBLE"}, {"name": "step", "type": "BIGINT"}]
    assert [row[:2] for row in body["rows"]] == [["run-0", "FINISHED"], ["run-2", "FINISHED"]]  # run-1 is deleted
    assert [row[3] for row in body["rows"]] == [POINTS - 1, POINTS - 1]
    assert body["rows"][0][2] == pytest.approx(1 / POINTS)
    assert (body["row_count"], body["truncated"]) == (2, False)


def test_params_of_the_best_run_and_metric_history(sandbox: Sandbox) -> None:
    params = sandbox.rows(f"""
        WITH best AS (SELECT m.run_id FROM latest_metrics m JOIN runs r USING (run_id)
                      WHERE m.key = 'loss' AND r.experiment_id = 'exp-{sandbox.seed}' ORDER BY m.value LIMIT 1)
        SELECT key, value FROM params WHERE run_id = (FROM best) ORDER BY key""")
    assert params == [["lr", "0.1"], ["model", "gbm"]]
    history = sandbox.rows(f"SELECT step, value FROM metrics WHERE run_id = '{run_id(0, sandbox.seed)}' "
                           "AND key = 'acc' ORDER BY step")
    assert [step for step, _ in history] == list(range(POINTS))
    assert history[5][1] == "NaN" and history[6][1] == pytest.approx(6 / POINTS)


def test_events_by_actor_with_uuids_and_timestamps(sandbox: Sandbox) -> None:
    rows = sandbox.rows("SELECT actor, count(*) AS n, min(occurred_at) AS first FROM events GROUP BY actor")
    assert [row[0] for row in rows] == ["ana"] and rows[0][1] >= 20
    assert datetime.fromisoformat(rows[0][2]).utcoffset() is not None
    (event_id, occurred_at), = sandbox.rows("SELECT event_id, occurred_at FROM events "
                                            f"WHERE producer_id = 'workload-{sandbox.seed}' ORDER BY occurred_at LIMIT 1")
    assert uuid.UUID(event_id).int >> 64 == sandbox.seed
    assert occurred_at.startswith("2026-10-30T09:00:00")


def test_json_values_of_every_kind(sandbox: Sandbox) -> None:
    body = sandbox.post("""SELECT 'nan'::DOUBLE AS n, 'inf'::DOUBLE AS i, '-inf'::FLOAT AS ni, 1.25 AS d,
        12345678901234567890123::HUGEINT AS h, '\\x00\\xff'::BLOB AS b, [1.5, 'nan'::DOUBLE] AS l,
        {'a': 'x', 'b': 'inf'::DOUBLE} AS s, DATE '2020-01-02' AS dt, TIME '12:30:00' AS t,
        TIMESTAMP '2020-01-02 03:04:05' AS ts, INTERVAL 3 DAY AS iv, NULL AS nothing, true AS yes,
        '0b7a2a3e-1a7e-4d57-8d8b-6a0b0f3e0c11'::UUID AS u, 'x'::ENUM('x', 'y') AS e""").json()
    assert body["rows"] == [["NaN", "Infinity", "-Infinity", 1.25, 12345678901234567890123,
                             base64.b64encode(b"\x00\xff").decode(), [1.5, "NaN"], {"a": "x", "b": "Infinity"},
                             "2020-01-02", "12:30:00", "2020-01-02T03:04:05", "P0M3DT0S", None, True,
                             "0b7a2a3e-1a7e-4d57-8d8b-6a0b0f3e0c11", "x"]]
    types = {c["name"]: c["type"] for c in body["columns"]}
    assert (types["h"], types["u"], types["d"]) == ("HUGEINT", "UUID", "DECIMAL(3,2)")


QUERY = "SELECT run_id, key, step, value FROM metrics WHERE key = 'acc' AND step < 8 ORDER BY run_id, step"


@pytest.mark.parametrize(("how", "fields", "headers", "media"), [
    ("format-csv", {"format": "csv"}, {}, "text/csv"),
    ("accept-csv", {}, {"accept": "text/csv"}, "text/csv"),
    ("format-parquet", {"format": "parquet"}, {}, "application/vnd.apache.parquet"),
    ("accept-parquet", {}, {"accept": "application/vnd.apache.parquet"}, "application/vnd.apache.parquet"),
    ("format-arrow", {"format": "arrow"}, {}, "application/vnd.apache.arrow.stream"),
    ("accept-arrow-q", {}, {"accept": "application/json;q=0.5, application/vnd.apache.arrow.stream"},
     "application/vnd.apache.arrow.stream"),
    ("format-beats-accept", {"format": "json"}, {"accept": "text/csv"}, "application/json"),
    ("accept-any", {}, {"accept": "*/*"}, "application/json"),
])
def test_every_output_format_parses_back_to_the_json_rows(sandbox: Sandbox, how: str, fields: dict[str, str],
                                                           headers: dict[str, str], media: str) -> None:
    expected = sandbox.rows(QUERY)
    assert len(expected) == 3 * 8
    with sandbox.server.client() as client:
        response = client.post("/api/v1/sql", json={"sql": QUERY, **fields}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(media)
    assert response.headers["x-ledgerflow-row-count"] == "24"
    assert response.headers["x-ledgerflow-truncated"] == "false"
    if media == "text/csv":
        header, *records = list(csv.reader(io.StringIO(response.text)))
        assert header == ["run_id", "key", "step", "value"]
        assert records == [[r, k, str(s), str(v)] for r, k, s, v in expected]
        return
    if media == "application/json":
        assert response.json()["rows"] == expected
        return
    if "parquet" in media:
        table = pq.read_table(io.BytesIO(response.content))
    else:
        table = pa.ipc.open_stream(response.content).read_all()
    assert table.column_names == ["run_id", "key", "step", "value"]
    assert table.schema.field("step").type == pa.int64()
    got = [[r, k, s, "NaN" if math.isnan(v) else v] for r, k, s, v in zip(*table.to_pydict().values(), strict=True)]
    assert got == expected


def test_results_beyond_the_row_cap_are_truncated(sandbox: Sandbox) -> None:
    body = sandbox.post("SELECT range AS n FROM range(250000)").json()
    assert (body["row_count"], body["truncated"], len(body["rows"])) == (100_000, True, 100_000)
    assert body["rows"][-1] == [99_999]
    body = sandbox.post("SELECT * FROM metrics, range(1000)", max_rows=7).json()  # 150k+ rows, read only 8
    assert (body["row_count"], body["truncated"]) == (7, True)
    body = sandbox.post("SELECT * FROM range(7)", max_rows=7).json()
    assert (body["row_count"], body["truncated"]) == (7, False)
    with sandbox.server.client() as client:
        response = client.post("/api/v1/sql", json={"sql": "FROM range(10)", "max_rows": 3, "format": "arrow"})
    assert response.headers["x-ledgerflow-truncated"] == "true"
    assert pa.ipc.open_stream(response.content).read_all().num_rows == 3


def test_results_beyond_the_byte_cap_are_truncated(sandbox: Sandbox) -> None:
    with sandbox.server.client() as client:  # 100 MB of strings; DuckDB's memory limit does not bound them
        response = client.post("/api/v1/sql", json={"sql": "SELECT range, repeat('x', 1000000) AS s FROM range(100)",
                                                    "format": "arrow"})
    assert response.status_code == 200, response.text
    table = pa.ipc.open_stream(response.content).read_all()
    assert response.headers["x-ledgerflow-truncated"] == "true"
    assert 30 <= table.num_rows < 70 and table.column("range").to_pylist() == list(range(table.num_rows))


def test_an_error_after_the_first_rows_is_a_400(sandbox: Sandbox) -> None:
    response = sandbox.post("SELECT CASE WHEN range > 100000 THEN ('x' || range)::INT ELSE 1 END FROM range(200000)")
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == "INVALID_SQL"
    assert "Could not convert string 'x100001'" in response.json()["message"]


def test_the_server_limits_come_from_the_environment(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERFLOW_SQL_MAX_ROWS", "5")
    monkeypatch.setenv("LEDGERFLOW_SQL_TIMEOUT", "0.3")
    body = sandbox.post("FROM range(10)").json()
    assert (body["row_count"], body["truncated"]) == (5, True)
    assert "exceeds the server's cap of 5" in sandbox.post("SELECT 1", max_rows=6).json()["message"]
    response = sandbox.post("SELECT count(*) FROM range(1000000) a, range(1000000) b WHERE a.range + b.range = -1")
    assert (response.status_code, response.json()["error_code"]) == (400, "STATEMENT_TIMEOUT")


def test_a_query_running_too_long_is_cancelled_and_the_pool_survives(sandbox: Sandbox) -> None:
    started = time.monotonic()
    response = sandbox.post("SELECT count(*) FROM range(1000000) a, range(1000000) b WHERE a.range + b.range = -1",
                            timeout_seconds=0.5)
    elapsed = time.monotonic() - started
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == "STATEMENT_TIMEOUT"
    assert "0.5 s" in response.json()["message"]
    assert elapsed < 5
    for _ in range(12):  # every pooled cursor still answers, and none is interrupted late
        assert sandbox.rows(f"SELECT count(*) FROM params WHERE run_id = '{run_id(0, sandbox.seed)}'") == [[2]]


def test_a_slow_query_does_not_hold_up_others(sandbox: Sandbox) -> None:
    slow: dict[str, Any] = {}

    def run_slow() -> None:
        slow["response"] = sandbox.post("SELECT count(*) FROM range(1000000) a, range(1000000) b "
                                        "WHERE a.range * b.range = -1", timeout_seconds=2)

    thread = threading.Thread(target=run_slow)
    thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    assert sandbox.rows("SELECT count(*) > 0 FROM experiments") == [[True]]
    quick = time.monotonic() - started
    thread.join(timeout=30)
    assert slow["response"].json()["error_code"] == "STATEMENT_TIMEOUT"
    assert quick < 1.5


def test_describe_summarize_and_show_tables(sandbox: Sandbox) -> None:
    names = [row[0] for row in sandbox.rows("DESCRIBE runs")]
    assert names[:3] == ["run_id", "experiment_id", "run_name"]
    assert "runs" in {row[0] for row in sandbox.rows("SHOW TABLES")}
    assert [row[0] for row in sandbox.rows("SUMMARIZE latest_metrics")] == ["run_id", "key", "step", "timestamp",
                                                                            "value"]
    assert sandbox.rows("SELECT count(*) > 0 FROM information_schema.columns WHERE table_name = 'metrics'") == [[True]]


def test_the_database_is_hardened_and_still_projects(sandbox: Sandbox) -> None:
    with sandbox.server.runtime.read_cursor(consistent=False) as cursor:
        settings = dict(cursor.execute("SELECT name, value FROM duckdb_settings() WHERE name IN (SELECT unnest(?))",
                                       [[name for name, _ in HARDENING]]).fetchall())
        harden_database(cursor)  # idempotent
    assert settings == dict(HARDENING)
    log = open_log(sandbox.server.log_uri)
    log.append_batch(standard_workload(sandbox.seed + 100, runs=2, points_per_run=5).entries())
    log.close()
    try:
        assert sandbox.rows("SELECT count(*) FROM runs") == [[5]]  # the projector still inserts from Arrow
    finally:
        sandbox.checksums = sandbox.current_checksums()


def test_every_example_in_the_docs_runs(sandbox: Sandbox) -> None:
    text = (Path(__file__).parents[2] / "docs" / "sql.md").read_text()
    examples = [block.split("```", 1)[0] for block in text.split("```sql\n")[1:]]
    assert len(examples) >= 8
    for sql in examples:
        response = sandbox.post(sql)
        assert response.status_code == 200, (sql, response.text)
