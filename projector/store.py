"""The DuckDB side of the projector: schema, a cached view of current state, batched transactions.

One transaction per batch writes the batch's rows AND the log position after it, so a crash at
any instant leaves the database at a batch boundary: nothing lost, nothing applied twice.
"""

from __future__ import annotations

import uuid
from array import array
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ledgerflow.ingest.log import Position
from ledgerflow.projector.effects import Effect, Put, Remove
from ledgerflow.projector.errors import ProjectorError, StaleProjectionError, WrongLogError
from ledgerflow.projector.tables import STATE_TABLES, STATE_VERSION, TABLES, TABLES_BY_NAME, Table
from ledgerflow.projector.unit_of_work import UnitOfWork
from ledgerflow.settings import Settings

#: tables the apply functions read, cached per first key column ("prefix")
CACHED_TABLES = ("experiments", "experiment_tags", "runs", "params", "tags", "registered_models",
                 "registered_model_tags", "model_versions", "model_version_tags", "model_aliases",
                 "logged_models", "logged_model_tags", "logged_model_params")
_ARROW_TYPES = {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "INTEGER": pa.int32(), "DOUBLE": pa.float64(),
                "UUID": pa.string(), "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"), "JSON": pa.string(), "BLOB": pa.binary()}
_MAX_CACHED_ROWS = 200_000


def _arrow_schema(table: Table) -> pa.Schema:
    return pa.schema([(name, _ARROW_TYPES[kind.split()[0]]) for name, kind in table.columns])


def _arrow_rows(table: Table, rows: list[dict[str, Any]]) -> pa.Table:
    uuid_columns = [name for name, kind in table.columns if kind.startswith("UUID")]
    if uuid_columns:
        rows = [{**row, **{c: str(row[c]) if isinstance(row[c], uuid.UUID) else row[c] for c in uuid_columns}} for row in rows]
    return pa.Table.from_pylist(rows, schema=_arrow_schema(table))


def stored_state_version(path: str | Path) -> str | None:
    """The STATE_VERSION a projection database was built with (None: no database, or no projection yet)."""
    path = Path(path)
    if not path.exists():
        return None
    with duckdb.connect(str(path), read_only=True) as connection:
        has_meta = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'projector_meta'").fetchone()[0]
        if not has_meta:
            return None
        row = connection.execute("SELECT value FROM projector_meta WHERE key = 'state_version'").fetchone()
    return row[0] if row else None


class ProjectionStore:
    """A projection database file, opened for the projector (the only writer)."""

    def __init__(self, path: str | Path, *, read_only: bool = False, memory_limit: str | None = None) -> None:
        self.path = Path(path)
        limit = memory_limit or Settings.from_env().duckdb_memory_limit
        try:
            self.connection = duckdb.connect(str(self.path), read_only=read_only, config={"memory_limit": limit})
        except duckdb.Error as e:
            raise ProjectorError(f"cannot open projection database {self.path}: {e}") from e
        if not read_only:
            for table in TABLES:
                self.connection.execute(table.ddl())
                for statement in table.index_ddl():
                    self.connection.execute(statement)
        self._next_metric_row = self._count_metric_rows()
        self._rows: dict[str, dict[tuple[Any, ...], dict[str, Any] | None]] = {t: {} for t in CACHED_TABLES}
        self._by_prefix: dict[str, dict[Any, set[tuple[Any, ...]]]] = {t: {} for t in CACHED_TABLES}

    def close(self) -> None:
        self.connection.close()

    def _count_metric_rows(self) -> int:
        # metrics is append-only, so its rows are numbered 0..n-1 in insertion order (DuckDB rowids)
        return self.connection.execute("SELECT count(*) FROM metrics").fetchone()[0]

    # ---- bookkeeping -------------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        return dict(self.connection.execute("SELECT key, value FROM projector_meta").fetchall())

    def bind_log(self, log_uri: str, **extra: str) -> None:
        """Record which log this database projects; refuse a different one or a frozen snapshot."""
        meta = self.meta()
        if not meta:
            values = {"log_uri": log_uri, "state_version": str(STATE_VERSION), **extra}
            self.connection.executemany("INSERT INTO projector_meta VALUES (?, ?)", list(values.items()))
            return
        if meta.get("state_version") != str(STATE_VERSION):
            raise StaleProjectionError(
                f"{self.path} was built by a ledgerflow with state version {meta.get('state_version')}; this one needs "
                f"{STATE_VERSION}. The log is the truth: move the file aside (or delete it) and the projector rebuilds "
                f"it from the log, or build one with `ledgerflow replay`")
        if extra:
            raise WrongLogError(f"{self.path} already holds a projection; a replay or snapshot needs a new database")
        if meta.get("log_uri") != log_uri:
            raise WrongLogError(f"{self.path} projects {meta.get('log_uri')}, not {log_uri}; use a new --db")
        if "until" in meta or "until_position" in meta:
            raise WrongLogError(f"{self.path} is a time-travel snapshot (until {meta.get('until') or meta.get('until_position')}); "
                                "it cannot be advanced")

    def positions(self) -> Position:
        return dict(self.connection.execute("SELECT log_partition, next_offset FROM projector_positions").fetchall())

    def dead_letter_count(self) -> int:
        return self.connection.execute("SELECT count(*) FROM dead_letters").fetchone()[0]

    # ---- the state view (read by apply) --------------------------------------------------------

    def row(self, table: str, key: tuple[Any, ...]) -> dict[str, Any] | None:
        cache = self._rows[table]
        if key in cache:
            return cache[key]
        if key[0] not in self._by_prefix[table]:
            self.prefetch(table, [key[0]])
        return cache.get(key)

    def rows(self, table: str, prefix: tuple[Any, ...]) -> list[dict[str, Any]]:
        if prefix[0] not in self._by_prefix[table]:
            self.prefetch(table, [prefix[0]])
        keys = self._by_prefix[table][prefix[0]]
        return [self._rows[table][k] for k in sorted(keys, key=repr) if k[:len(prefix)] == prefix]  # type: ignore[misc]

    def prefetch(self, table: str, prefixes: Iterable[Any]) -> None:
        """Load every row whose first key column is one of ``prefixes`` (one query)."""
        wanted = [p for p in set(prefixes) if p not in self._by_prefix[table]]
        if not wanted:
            return
        spec = TABLES_BY_NAME[table]
        first = spec.key[0]
        result = self.connection.execute(f"SELECT * FROM {table} WHERE {first} IN (SELECT unnest(?))", [wanted])
        names = [d[0] for d in result.description]
        for prefix in wanted:
            self._by_prefix[table][prefix] = set()
        for values in result.fetchall():
            row = dict(zip(names, values, strict=True))
            self._remember(table, spec, row)

    def _remember(self, table: str, spec: Table, row: dict[str, Any]) -> None:
        key = tuple(row[c] for c in spec.key)
        self._rows[table][key] = row
        self._by_prefix[table].setdefault(key[0], set()).add(key)

    def observe(self, effects: list[Effect]) -> None:
        """Make the view reflect effects of the current, uncommitted batch."""
        for effect in effects:
            if isinstance(effect, Put) and effect.table in self._rows:
                self._remember(effect.table, TABLES_BY_NAME[effect.table], effect.row)
            elif isinstance(effect, Remove) and effect.table in self._rows:
                self._rows[effect.table][effect.key] = None
                self._by_prefix[effect.table].setdefault(effect.key[0], set()).discard(effect.key)

    def forget(self) -> None:
        """Drop the cached view (after a failed transaction, or when it grows too large)."""
        for table in CACHED_TABLES:
            self._rows[table].clear()
            self._by_prefix[table].clear()

    def known_event_ids(self, event_ids: list[str]) -> set[str]:
        if not event_ids:
            return set()
        result = self.connection.execute(
            "SELECT event_id::VARCHAR FROM events WHERE event_id IN (SELECT unnest(?::UUID[]))", [event_ids])
        return {row[0] for row in result.fetchall()}

    # ---- writing a batch ---------------------------------------------------------------------

    def commit_batch(self, work: UnitOfWork, audit: list[dict[str, Any]], dead_letters: list[dict[str, Any]],
                     position: Position) -> None:
        """Write the batch and its end position in ONE transaction."""
        con = self.connection
        try:
            con.execute("BEGIN TRANSACTION")
            for table_name in work.keyed:
                self._replace(TABLES_BY_NAME[table_name], work.touched_keys(table_name), work.puts(table_name))
            for table_name, rows in work.appends.items():
                self._insert(TABLES_BY_NAME[table_name], rows)
            if work.metrics:
                self._insert_metrics(work.metrics)
            self._insert(TABLES_BY_NAME["events"], audit)
            self._insert(TABLES_BY_NAME["dead_letters"], dead_letters)
            if position:
                con.executemany("INSERT OR REPLACE INTO projector_positions VALUES (?, ?)", sorted(position.items()))
            con.execute("COMMIT")
        except Exception as e:
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:
                pass
            self.forget()
            self._next_metric_row = self._count_metric_rows()
            raise ProjectorError(f"writing a batch to {self.path} failed, nothing of it was stored: {e}") from e
        if sum(len(rows) for rows in self._rows.values()) > _MAX_CACHED_ROWS:
            self.forget()

    def _register(self, name: str, table: pa.Table) -> str:
        self.connection.register(name, table)
        return name

    def _insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        if rows:
            view = self._register(f"_new_{table.name}", _arrow_rows(table, rows))
            self.connection.execute(f"INSERT INTO {table.name} SELECT * FROM {view}")
            self.connection.unregister(view)

    def _replace(self, table: Table, keys: list[tuple[Any, ...]], rows: list[dict[str, Any]]) -> None:
        if keys:
            key_table = pa.Table.from_pylist([dict(zip(table.key, k, strict=True)) for k in keys],
                                             schema=pa.schema([f for f in _arrow_schema(table) if f.name in table.key]))
            view = self._register(f"_gone_{table.name}", key_table)
            match = " AND ".join(f"{table.name}.{c} = {view}.{c}" for c in table.key)
            self.connection.execute(f"DELETE FROM {table.name} USING {view} WHERE {match}")
            self.connection.unregister(view)
        self._insert(table, rows)

    def _insert_metrics(self, batches: list[tuple[str, list[dict[str, Any]]]]) -> None:
        # Group the batch's chunks by (run, key), keeping log order within each series (a stable sort):
        # one event's points of one series are usually in step order, so every series ends up
        # contiguous and DuckDB delta-encodes steps and timestamps (~8.6 instead of ~13 bytes per
        # point), while a series' rows still follow the log, which as-of reads of metrics rely on.
        chunks = sorted(((run_id, series["key"], series) for run_id, series_list in batches
                         for series in series_list if series["values"]), key=lambda chunk: chunk[:2])
        if not chunks:
            return
        # One contiguous buffer per column for the whole batch, and run/key as dictionary indices:
        # DuckDB ingests a few long arrays far faster than thousands of small chunks.
        run_codes: dict[str, int] = {}
        key_codes: dict[str, int] = {}
        run_index, key_index = array("i"), array("i")
        ranges: list[dict[str, Any]] = []
        for run_id, key, series in chunks:
            count = len(series["values"]) // 8
            run_index.extend(array("i", [run_codes.setdefault(run_id, len(run_codes))]) * count)
            key_index.extend(array("i", [key_codes.setdefault(key, len(key_codes))]) * count)
            steps = array("q")
            steps.frombytes(series["steps"])
            first_row = self._next_metric_row + len(run_index) - count
            if ranges and ranges[-1]["run_id"] == run_id and ranges[-1]["key"] == key:
                last = ranges[-1]  # chunks of one series are adjacent: one range for all of them
                last["row_count"] += count
                last["min_step"], last["max_step"] = min(last["min_step"], min(steps)), max(last["max_step"], max(steps))
            else:
                ranges.append({"run_id": run_id, "key": key, "first_row": first_row, "row_count": count,
                               "min_step": min(steps), "max_step": max(steps)})
        total = len(run_index)

        def column(name: str, kind: pa.DataType) -> pa.Array:
            return pa.Array.from_buffers(kind, total, [None, pa.py_buffer(b"".join(c[2][name] for c in chunks))])

        def codes(index: array, names: dict[str, int]) -> pa.DictionaryArray:
            indices = pa.Array.from_buffers(pa.int32(), total, [None, pa.py_buffer(index)])  # zero-copy
            return pa.DictionaryArray.from_arrays(indices, pa.array(list(names)))

        points = pa.table([codes(run_index, run_codes), codes(key_index, key_codes),
                           column("steps", pa.int64()), column("timestamps", pa.int64()), column("values", pa.float64())],
                          names=["run_id", "key", "step", "timestamp", "value"])
        view = self._register("_new_points", points)
        self.connection.execute(f"INSERT INTO metrics SELECT * FROM {view}")
        self._insert(TABLES_BY_NAME["projector_metric_ranges"], ranges)
        self._next_metric_row += total
        self.connection.execute(f"""
            INSERT INTO latest_metrics
            SELECT run_id, key,
                   arg_max(step, (step, timestamp, value)), arg_max(timestamp, (step, timestamp, value)),
                   arg_max(value, (step, timestamp, value))
            FROM {view} GROUP BY run_id, key
            ON CONFLICT (run_id, key) DO UPDATE
               SET step = excluded.step, timestamp = excluded.timestamp, value = excluded.value
               WHERE (excluded.step, excluded.timestamp, excluded.value)
                   > (latest_metrics.step, latest_metrics.timestamp, latest_metrics.value)""")
        self.connection.unregister(view)


def database_checksums(path: str | Path) -> dict[str, dict[str, Any]]:
    """``table_checksums`` of a database file, opened read-only."""
    connection = duckdb.connect(str(path), read_only=True)
    try:
        return table_checksums(connection)
    finally:
        connection.close()


def table_checksums(connection: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """Per state table: row count and an order-independent content hash (sum of row hashes mod 2^64)."""
    result = {}
    for name in STATE_TABLES:
        columns = ", ".join(TABLES_BY_NAME[name].column_names)
        count, total = connection.execute(
            f"SELECT count(*), coalesce(sum(hash({columns})::HUGEINT), 0) % 18446744073709551616 FROM {name}").fetchone()
        result[name] = {"rows": count, "checksum": f"{int(total):016x}"}
    return result
