"""The read-only SQL sandbox behind POST /api/v1/sql: what may run, and running it within limits.

Defence in depth, outermost first (docs/sql.md):

1. exactly one statement, and its type must be SELECT (DuckDB's own parser says so, comments and all);
2. the parsed tree (``json_serialize_sql``) may only name the documented tables, CTEs of the query,
   ``information_schema``, a few pure table functions (``range``, ``unnest``...), and no function with side
   effects or access to files, settings or the engine (``read_csv``, ``glob``, ``query``, ``setval``...);
3. the database itself is hardened (:func:`harden_database`): no file or network access, no extension
   loading, configuration locked. A query that slipped through 1 and 2 still cannot reach outside;
4. a watchdog interrupts the query after the timeout, and at most ``max_rows`` rows are read.

Every refusal is an :class:`ApiError` (400 malformed, 403 forbidden), never a 5xx.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from types import TracebackType

import duckdb
import pyarrow as pa

from ledgerflow.api.errors import ApiError
from ledgerflow.projector.tables import TABLES
from ledgerflow.settings import Settings

DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_ROWS = 100_000
MAX_SQL_CHARS = 100_000
#: Arrow bytes read at most (huge string values are not bounded by DuckDB's memory limit)
MAX_RESULT_BYTES = 64 * 2**20
_BATCH_ROWS = 2048

#: the documented tables (docs/tables.md), the only ones a query may read
QUERYABLE_TABLES = frozenset(table.name for table in TABLES)
#: table functions that compute rows from their arguments alone
TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest", "repeat", "json_each", "json_tree"})
#: functions refused wherever they appear, with the reason given to the client
_DENIED_FUNCTIONS = {
    **dict.fromkeys(("read_csv", "read_csv_auto", "read_parquet", "parquet_scan", "read_json", "read_json_auto",
                     "read_json_objects", "read_json_objects_auto", "read_ndjson", "read_ndjson_auto",
                     "read_ndjson_objects", "read_text", "read_blob", "read_duckdb", "glob", "sniff_csv",
                     "iceberg_scan", "delta_scan", "read_xlsx", "st_read", "sqlite_scan", "postgres_scan",
                     "mysql_scan"), "reads files or URLs"),
    **dict.fromkeys(("query", "query_table", "json_execute_serialized_sql"), "runs SQL given as text"),
    **dict.fromkeys(("setval", "nextval", "currval", "write_log", "checkpoint", "force_checkpoint", "setseed",
                     "truncate_duckdb_logs", "enable_logging", "disable_logging", "enable_profiling",
                     "disable_profiling"), "has side effects"),
    **dict.fromkeys(("sleep_ms", "pg_sleep"), "only waits"),
    **dict.fromkeys(("current_setting", "getenv", "getvariable", "which_secret"), "reads server configuration"),
}
_ENGINE_PREFIXES = ("duckdb_", "pragma_", "parquet_", "__internal", "read_", "icu_", "test_")
_SYSTEM_TABLE_PREFIXES = ("duckdb_", "pg_", "sqlite_")
_PATHISH = re.compile(r"[/\\.:*?~]|^https?|^s3")
_SHOW_SPECIAL = frozenset({'"tables"', "__show_tables_expanded"})
_FIRST_WORD = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*([A-Za-z_]+)", re.S)
#: database settings applied once at server start, before any request (SET GLOBAL)
HARDENING = (("enable_external_access", "false"), ("autoinstall_known_extensions", "false"),
             ("autoload_known_extensions", "false"), ("allow_community_extensions", "false"),
             ("lock_configuration", "true"))


def invalid_sql(message: str) -> ApiError:
    return ApiError(400, "INVALID_SQL", message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "SQL_NOT_ALLOWED", message)


@dataclass(frozen=True)
class SqlLimits:
    """How long one query may run and how many rows it may return."""

    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    max_rows: int = DEFAULT_MAX_ROWS

    @classmethod
    def from_settings(cls) -> SqlLimits:
        """The server's limits from LEDGERFLOW_SQL_TIMEOUT / LEDGERFLOW_SQL_MAX_ROWS."""
        settings = Settings.from_env()
        return cls(settings.sql_timeout, settings.sql_max_rows)


def harden_database(connection: duckdb.DuckDBPyConnection) -> None:
    """Lock the database down for untrusted SELECTs: no files, network or extensions; no later SET.

    Call once at server start with any connection of the database (the settings are global); calling it
    again is harmless. The projector is unaffected: it inserts from registered in-memory Arrow tables.
    """
    def current(name: str) -> str:
        value = connection.execute("SELECT current_setting(?)", [name]).fetchall()[0][0]
        return str(value).lower()

    if current("lock_configuration") != "true":
        for name, value in HARDENING:
            connection.execute(f"SET GLOBAL {name} = {value}")
    wrong = [name for name, value in HARDENING if current(name) != value]
    if wrong or current("allow_unsigned_extensions") != "false":
        raise RuntimeError(f"the database configuration is locked without the sandbox settings {wrong}")


# ---- what may run -------------------------------------------------------------------------------


def check_query(cursor: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse anything but one SELECT over the queryable tables; raise ApiError naming what was refused."""
    if not sql.strip():
        raise invalid_sql("the SQL is empty: send one SELECT statement")
    if "\x00" in sql:
        raise invalid_sql("the SQL contains a NUL character")
    if len(sql) > MAX_SQL_CHARS:
        raise invalid_sql(f"the SQL is {len(sql)} characters long; at most {MAX_SQL_CHARS} are accepted")
    try:
        statements = cursor.extract_statements(sql)
    except duckdb.Error as e:
        raise invalid_sql(f"the SQL does not parse: {_message(e)}") from None
    if not statements:
        raise invalid_sql("the SQL holds no statement (only comments or semicolons): send one SELECT statement")
    kinds = [_kind(statement) for statement in statements]
    if len(statements) > 1:
        raise invalid_sql(f"exactly one statement per request is allowed, got {len(statements)} "
                          f"({', '.join(kinds)})")
    if kinds[0] != "SELECT":
        raise forbidden(f"{kinds[0]} statements are not allowed: this endpoint runs one read-only SELECT "
                        "(WITH, FROM-first, VALUES, DESCRIBE, SUMMARIZE, SHOW TABLES included)")
    try:
        tree = json.loads(cursor.execute("SELECT json_serialize_sql(?::VARCHAR)", [sql]).fetchall()[0][0])
    except RecursionError:
        raise invalid_sql("the query is nested too deeply to be checked") from None
    except duckdb.Error as e:
        raise invalid_sql(f"the query cannot be checked: {_message(e)}") from None
    if tree.get("error"):
        raise invalid_sql(f"the query cannot be checked: {tree.get('error_message', 'unknown error')}")
    database = cursor.execute("SELECT current_database()").fetchall()[0][0].lower()
    _check_tree(tree["statements"], database)


def _kind(statement: duckdb.Statement) -> str:
    """The statement type, named by the keyword the client wrote when the two differ (CHECKPOINT is a CALL)."""
    try:
        kind = statement.type.name
    except ValueError:  # a statement type the Python client does not know (UPDATE EXTENSIONS)
        kind = "UNKNOWN"
    word = _FIRST_WORD.match(statement.query)
    written = word.group(1).upper() if word else kind
    if kind in ("SELECT", "UNKNOWN", written):
        return written if kind == "UNKNOWN" else kind
    return f"{written} ({kind})"


def _check_tree(root: object, database: str) -> None:
    """Walk the parsed tree (iteratively: it can be deep), checking every table and function it names."""
    stack: list[tuple[object, frozenset[str]]] = [(root, frozenset())]
    while stack:
        node, ctes = stack.pop()
        if isinstance(node, list):
            stack.extend((item, ctes) for item in node)
            continue
        if not isinstance(node, dict):
            continue
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict):  # CTE names are visible in this node and everything below it
            ctes = ctes | {str(entry.get("key", "")).lower() for entry in cte_map.get("map", [])}
        kind = node.get("type")
        if kind == "BASE_TABLE":
            _check_table(node, ctes, database)
        elif kind == "SHOW_REF":
            _check_show(node, ctes, database)
        elif kind == "TABLE_FUNCTION":
            name = str(node.get("function", {}).get("function_name", "")).lower()
            if name not in TABLE_FUNCTIONS:
                raise forbidden(f"the table function {name}() is not allowed: it {_why(name)}; allowed table "
                                f"functions: {', '.join(sorted(TABLE_FUNCTIONS))}")
        if node.get("class") == "FUNCTION":
            name = str(node.get("function_name", "")).lower()
            if name in _DENIED_FUNCTIONS or name.startswith("__internal"):
                raise forbidden(f"the function {name}() is not allowed: it {_why(name)}")
        stack.extend((value, ctes) for value in node.values() if isinstance(value, (dict, list)))


def _why(name: str) -> str:
    if name in _DENIED_FUNCTIONS:
        return _DENIED_FUNCTIONS[name]
    if name.startswith(_ENGINE_PREFIXES):
        return "exposes files or engine internals"
    return "is not one of the pure table functions"


def _check_table(node: dict, ctes: frozenset[str], database: str) -> None:
    name = str(node.get("table_name", ""))
    schema = str(node.get("schema_name", "")).lower()
    catalog = str(node.get("catalog_name", "")).lower()
    lowered = name.lower()
    if not catalog and not schema and lowered in ctes:
        return
    if _PATHISH.search(name):
        raise forbidden(f"reading files or URLs is not allowed (table name {name!r}); query the documented tables")
    if catalog not in ("", database):
        raise forbidden(f"only the ledgerflow database can be queried, not the catalog {catalog!r}")
    if schema == "information_schema":
        return
    if schema not in ("", "main", database):
        raise forbidden(f"the schema {schema!r} is not queryable; the tables are in main")
    if lowered in QUERYABLE_TABLES:
        return
    tables = ", ".join(sorted(QUERYABLE_TABLES))
    if lowered.startswith(_SYSTEM_TABLE_PREFIXES):
        raise forbidden(f"the system table {name!r} is not queryable; the queryable tables are: {tables}")
    raise invalid_sql(f"unknown table {name!r}; the queryable tables are: {tables} (see docs/tables.md)")


def _check_show(node: dict, ctes: frozenset[str], database: str) -> None:
    show = node.get("show_type")
    if show in ("DESCRIBE", "SUMMARY") and node.get("query"):
        return  # the query it describes is checked like any other part of the tree
    if show == "SHOW_SPECIAL" and node.get("table_name") in _SHOW_SPECIAL:
        return
    if show in ("SHOW", "DESCRIBE") and node.get("table_name"):
        _check_table(node, ctes, database)
        return
    raise forbidden(f"SHOW {str(node.get('table_name', '')).strip(chr(34))} is not allowed: "
                    "only DESCRIBE, SUMMARIZE and SHOW TABLES over the queryable tables")


# ---- running it -----------------------------------------------------------------------------------


@dataclass
class QueryResult:
    """At most ``max_rows`` rows, the DuckDB type name of every column, and whether rows were left out."""

    table: pa.Table
    types: list[str]
    truncated: bool


class _Watchdog:
    """Interrupts the cursor after ``seconds``; once disarmed it can never fire (the cursor goes back to a pool)."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection, seconds: float) -> None:
        self.cursor, self.fired, self._armed = cursor, False, True
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        with self._lock:
            if self._armed:
                self.fired = True
                self.cursor.interrupt()

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        with self._lock:
            self._armed = False
        self._timer.cancel()


def run_query(cursor: duckdb.DuckDBPyConnection, sql: str, limits: SqlLimits) -> QueryResult:
    """Run a checked SELECT, reading at most ``limits.max_rows`` rows within ``limits.timeout_seconds``."""
    cursor.abort()  # a result another endpoint left unread on this pooled cursor would block sql()
    batches: list[pa.RecordBatch] = []
    rows = size = 0
    reader = None
    watchdog = _Watchdog(cursor, limits.timeout_seconds)
    try:
        with watchdog:
            relation = cursor.sql(sql)
            if relation is None:  # the Python client's answer to a statement that returned nothing
                raise invalid_sql("the statement returned no result")
            types = [str(t) for t in relation.types]
            reader = relation.to_arrow_reader(_BATCH_ROWS)
            schema = reader.schema
            for batch in reader:  # streamed: a huge result stops being computed once a cap is passed
                batch = batch.slice(0, limits.max_rows + 1 - rows)
                if size + batch.nbytes > MAX_RESULT_BYTES:  # keep about what fits, then report truncation
                    fits = (MAX_RESULT_BYTES - size) * batch.num_rows // max(batch.nbytes, 1)
                    batches.append(batch.slice(0, max(fits, 0 if batches else 1)))
                    rows = limits.max_rows + 1
                    break
                batches.append(batch)
                rows, size = rows + batch.num_rows, size + batch.nbytes
                if rows > limits.max_rows:
                    break
    except (duckdb.InternalException, duckdb.FatalException):
        raise  # an engine bug, not the client's input: answered 500
    except (duckdb.Error, pa.ArrowException, OSError) as e:  # errors after the first batch arrive as OSError
        raise _refusal(e, watchdog.fired, limits) from None
    finally:
        if reader is not None:
            reader.close()
    table = pa.Table.from_batches(batches, schema=schema)
    truncated = rows > limits.max_rows
    return QueryResult(table.slice(0, limits.max_rows), types, truncated)


def _refusal(error: BaseException, timed_out: bool, limits: SqlLimits) -> BaseException:
    """The client-facing error for a failed run; DuckDB's message prefix tells kinds apart across the Arrow stream."""
    text = _message(error)
    if isinstance(error, duckdb.InterruptException) or text.startswith("INTERRUPT Error"):
        if not timed_out:
            return error  # interrupted by something other than the watchdog: not the client's doing
        return ApiError(400, "STATEMENT_TIMEOUT", f"the query ran longer than {limits.timeout_seconds:g} s and was "
                                                  "cancelled; filter or aggregate more, or add a LIMIT")
    if isinstance(error, duckdb.PermissionException) or text.startswith("Permission Error"):
        return forbidden(f"the query tried an operation the sandbox does not allow: {text}")
    if isinstance(error, duckdb.OutOfMemoryException) or text.startswith("Out of Memory Error"):
        return ApiError(400, "RESOURCE_EXHAUSTED",
                        f"the query needs more memory than the server allows: {text}; aggregate or filter more")
    if isinstance(error, duckdb.Error):
        return invalid_sql(text)
    if "Arrow Appender" in text or isinstance(error, pa.ArrowException):
        return ApiError(400, "RESOURCE_EXHAUSTED", f"the result is too large to return: {text}")
    return invalid_sql(text)


def _message(error: BaseException) -> str:
    text = str(error).strip()
    return text if len(text) <= 2000 else text[:2000] + "..."
