"""Metric histories for charts, downsampled server-side with each bucket's min and max kept.

A chart cannot show a million points, and sending them costs seconds; averaging would hide the
spike an engineer is looking for. So the step range is cut into ``max_points // 2`` equal buckets
and each bucket keeps the point with its lowest and the point with its highest value: the
envelope of the curve survives, every spike included. One DuckDB query does it all.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from ledgerflow.api.deps import Cursor
from ledgerflow.api.entities import json_number
from ledgerflow.api.errors import bad_request, not_found
from ledgerflow.api.series import rowid_predicate

router = APIRouter(prefix="/api/v1", tags=["history"])

DEFAULT_POINTS = 1000
MAX_POINTS = 100_000
_STEP_MIN, _STEP_MAX = -(2**63), 2**63 - 1

# $1 run, $2 key, $3/$4 step bounds, $5 max_points, $6 buckets. Buckets span equal step ranges;
# NaN is left out of the min/max (DuckDB orders NaN above +inf) unless a bucket holds only NaN.
_HISTORY_SQL = """
WITH series AS MATERIALIZED (
    SELECT step, timestamp, value FROM metrics
    WHERE {rows} AND run_id = $1 AND key = $2 AND step >= $3 AND step <= $4),
stats AS (SELECT min(step) AS lo, max(step) AS hi, count(*) AS n FROM series),
raw AS (
    SELECT s.step, s.timestamp, s.value FROM series s, stats WHERE stats.n <= $5),
buckets AS (
    SELECT floor((s.step - stats.lo)::HUGEINT * $6 / ((stats.hi - stats.lo)::HUGEINT + 1)) AS bucket,
           arg_min({'step': s.step, 'timestamp': s.timestamp, 'value': s.value}, s.value)
               FILTER (WHERE NOT isnan(s.value)) AS low,
           arg_max({'step': s.step, 'timestamp': s.timestamp, 'value': s.value}, s.value)
               FILTER (WHERE NOT isnan(s.value)) AS high,
           arg_min({'step': s.step, 'timestamp': s.timestamp, 'value': s.value}, s.step) AS first
    FROM series s, stats WHERE stats.n > $5
    GROUP BY bucket),
picked AS (
    SELECT DISTINCT bucket, unnest(CASE WHEN low IS NULL THEN [first] ELSE [low, high] END) AS point FROM buckets)
SELECT step, timestamp, value, (SELECT n FROM stats) FROM raw
UNION ALL
SELECT point.step, point.timestamp, point.value, (SELECT n FROM stats) FROM picked
ORDER BY 1, 2, 3
"""


@router.get("/runs/{run_id}/metric-history", summary="One metric's points, downsampled to at most max_points")
def metric_history(
    run_id: str,
    cursor: Cursor,
    key: Annotated[str, Query(min_length=1, description="the metric key")],
    max_points: Annotated[int, Query(description=f"at most this many points (1 .. {MAX_POINTS})")] = DEFAULT_POINTS,
    start_step: Annotated[int | None, Query(description="first step to include")] = None,
    end_step: Annotated[int | None, Query(description="last step to include")] = None,
) -> JSONResponse:
    if not 2 <= max_points <= MAX_POINTS:
        raise bad_request(f"max_points must be between 2 and {MAX_POINTS}, got {max_points}")
    low = _STEP_MIN if start_step is None else start_step
    high = _STEP_MAX if end_step is None else end_step
    for name, value in (("start_step", low), ("end_step", high)):
        if not _STEP_MIN <= value <= _STEP_MAX:
            raise bad_request(f"{name} {value} is outside the 64-bit step range")
    if low > high:
        raise bad_request(f"start_step {low} is after end_step {high}")
    if cursor.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchone() is None:
        raise not_found(f"run {run_id!r}")
    sql = _HISTORY_SQL.replace("{rows}", rowid_predicate(cursor, [run_id], [key]))
    rows = cursor.execute(sql, [run_id, key, low, high, max_points, max_points // 2]).fetchall()
    total = rows[0][3] if rows else 0
    points: list[dict[str, Any]] = [{"step": step, "timestamp": timestamp, "value": json_number(value)}
                                    for step, timestamp, value, _ in rows]
    return JSONResponse({"run_id": run_id, "key": key, "points": points, "downsampled": total > max_points,
                         "total_points": total, "returned_points": len(points), "max_points": max_points})
