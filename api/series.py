"""Reading metric series without scanning the metrics table.

The projector records where each series' points sit (``projector_metric_ranges``: rowid ranges;
``metrics`` is append-only). A read turns those ranges into a ``rowid BETWEEN`` predicate, which
DuckDB answers by visiting only those rows: ~2 ms for 10 series of a 100M-point table instead of
~500 ms for ``run_id IN (...)``. Callers keep their run/key predicates too, so a range can only
narrow the scan, never add foreign rows.
"""

from __future__ import annotations

import duckdb

MAX_RANGES = 5000  # past this many ranges a plain scan is cheaper than a long OR chain


def rowid_predicate(cursor: duckdb.DuckDBPyConnection, run_ids: list[str], keys: list[str] | None) -> str:
    """A SQL predicate over ``metrics.rowid`` covering every point of these series ("TRUE" when unknown)."""
    if not run_ids:
        return "FALSE"
    where = f"run_id IN ({', '.join('?' * len(run_ids))})"
    params: list[object] = list(run_ids)
    if keys is not None:
        if not keys:
            return "FALSE"
        where += f" AND key IN ({', '.join('?' * len(keys))})"
        params += keys
    ranges = cursor.execute(
        f"SELECT first_row, first_row + row_count - 1 FROM projector_metric_ranges WHERE {where} ORDER BY first_row",
        params).fetchall()
    if not ranges:
        return "FALSE"
    merged: list[list[int]] = []
    for first, last in ranges:
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([int(first), int(last)])
    if len(merged) > MAX_RANGES:
        return "TRUE"
    return "(" + " OR ".join(f"rowid BETWEEN {first} AND {last}" for first, last in merged) + ")"
