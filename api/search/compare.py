"""Runs side by side: params and tags with a differs flag per key, latest metrics, aligned metric series.

Series are aligned on a shared step grid per metric key: one bucket per distinct step when the
runs have at most ``max_points`` distinct steps, otherwise ``max_points // 2`` equal step ranges.
Each bucket keeps each run's min and max value, so spikes (and NaN, which DuckDB orders above
every number) survive downsampling. Bucketing and alignment run inside DuckDB; Python only turns
the per-run lists into JSON.
"""

from __future__ import annotations

from typing import Any

import duckdb

from ledgerflow.api.entities import json_number, load_runs
from ledgerflow.api.errors import ApiError
from ledgerflow.api.series import rowid_predicate
from ledgerflow.errors import InvalidInputError

MAX_COMPARE_RUNS = 100
MAX_METRIC_KEYS = 100
DEFAULT_MAX_POINTS = 1000
MAX_POINTS = 10_000

_SERIES_SQL = """
WITH pts AS (
  SELECT run_id, key, step, value FROM metrics
  WHERE {rows} AND run_id IN ({run_placeholders}) AND key IN ({key_placeholders})
), bounds AS (
  SELECT key, min(step) AS lo, max(step) AS hi, count(DISTINCT step) AS n FROM pts GROUP BY key
), bucketed AS (
  SELECT p.key, p.run_id, p.step, p.value, b.n > $max_points AS downsampled,
         CASE WHEN b.n <= $max_points THEN p.step
              ELSE LEAST(CAST(floor((p.step::DOUBLE - b.lo::DOUBLE) * $buckets
                                    / ((b.hi::DOUBLE - b.lo::DOUBLE) + 1)) AS BIGINT), $buckets - 1)
         END AS bucket
  FROM pts p JOIN bounds b USING (key)
), agg AS (
  SELECT key, bucket, run_id, min(step) AS s0, max(step) AS s1, min(value) AS vmin, max(value) AS vmax,
         bool_or(downsampled) AS downsampled
  FROM bucketed GROUP BY key, bucket, run_id
), buckets AS (
  SELECT key, bucket, min(s0) AS step_start, max(s1) AS step_end, bool_or(downsampled) AS downsampled
  FROM agg GROUP BY key, bucket
), grid AS (
  SELECT b.*, r.run_id FROM buckets b CROSS JOIN (SELECT unnest($run_ids) AS run_id) r
)
SELECT g.key, g.run_id, bool_or(g.downsampled),
       list(g.step_start ORDER BY g.bucket), list(g.step_end ORDER BY g.bucket),
       list(a.vmin ORDER BY g.bucket), list(a.vmax ORDER BY g.bucket)
FROM grid g LEFT JOIN agg a ON a.key = g.key AND a.bucket = g.bucket AND a.run_id = g.run_id
GROUP BY g.key, g.run_id
"""


def _check_request(run_ids: list[str], metric_keys: list[str] | None, max_points: int | None) -> int:
    if len(run_ids) < 2:
        raise InvalidInputError(f"run_ids needs at least 2 runs to compare, got {len(run_ids)}")
    if len(run_ids) > MAX_COMPARE_RUNS:
        raise InvalidInputError(f"run_ids takes at most {MAX_COMPARE_RUNS} runs, got {len(run_ids)}")
    duplicates = sorted({r for r in run_ids if run_ids.count(r) > 1})
    if duplicates:
        raise InvalidInputError(f"run_ids lists {', '.join(duplicates)} more than once")
    if metric_keys is not None and len(metric_keys) > MAX_METRIC_KEYS:
        raise InvalidInputError(f"metric_keys takes at most {MAX_METRIC_KEYS} keys, got {len(metric_keys)}")
    points = DEFAULT_MAX_POINTS if max_points is None else max_points
    if isinstance(points, bool) or not isinstance(points, int) or not 2 <= points <= MAX_POINTS:
        raise InvalidInputError(f"max_points must be an integer between 2 and {MAX_POINTS}, got {max_points!r}")
    return points


def _diff(runs: list[dict[str, Any]], section: str) -> list[dict[str, Any]]:
    keys = sorted({key for run in runs for key in run["data"][section]})
    rows = []
    for key in keys:
        values = {run["info"]["run_id"]: run["data"][section].get(key) for run in runs}
        comparable = [v["value"] if isinstance(v, dict) else v for v in values.values()]
        rows.append({"key": key, "differs": any(v != comparable[0] for v in comparable[1:]), "values": values})
    return rows


def _numbers(values: list[float | None]) -> list[float | str | None]:
    return [None if v is None else json_number(v) for v in values]


def _series(cursor: duckdb.DuckDBPyConnection, run_ids: list[str], keys: list[str],
            max_points: int) -> list[dict[str, Any]]:
    if not keys:
        return []
    buckets = max_points // 2
    # the series' rowid ranges let DuckDB read only their points (api/series.py)
    params: dict[str, Any] = {"run_ids": run_ids, "max_points": max_points, "buckets": buckets}
    params.update({f"r{i}": run_id for i, run_id in enumerate(run_ids)})
    params.update({f"k{i}": key for i, key in enumerate(keys)})
    sql = _SERIES_SQL.format(rows=rowid_predicate(cursor, run_ids, keys),
                             run_placeholders=", ".join(f"$r{i}" for i in range(len(run_ids))),
                             key_placeholders=", ".join(f"$k{i}" for i in range(len(keys))))
    rows = cursor.execute(sql, params).fetchall()
    series: dict[str, dict[str, Any]] = {
        key: {"key": key, "downsampled": False, "step_start": [], "step_end": [],
              "values": {run_id: {"min": [], "max": []} for run_id in run_ids}} for key in keys}
    for key, run_id, downsampled, starts, ends, mins, maxes in rows:
        entry = series[key]
        entry["downsampled"], entry["step_start"], entry["step_end"] = bool(downsampled), starts, ends
        entry["values"][run_id] = {"min": _numbers(mins), "max": _numbers(maxes)}
    return [series[key] for key in keys]


def compare_runs(cursor: duckdb.DuckDBPyConnection, run_ids: list[str], metric_keys: list[str] | None,
                 max_points: int | None) -> dict[str, Any]:
    """Side-by-side view of ``run_ids``; 404 naming any id that does not exist."""
    points = _check_request(run_ids, metric_keys, max_points)
    runs = load_runs(cursor, run_ids)
    missing = [r for r in run_ids if r not in {run["info"]["run_id"] for run in runs}]
    if missing:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"run(s) {', '.join(missing)} do not exist")
    if metric_keys is None:  # default: the keys every run has
        shared = set(runs[0]["data"]["metrics"])
        for run in runs[1:]:
            shared &= set(run["data"]["metrics"])
        keys = sorted(shared)
    else:
        keys = list(dict.fromkeys(metric_keys))
    return {
        "runs": [run["info"] for run in runs],
        "params": _diff(runs, "params"),
        "tags": _diff(runs, "tags"),
        "metrics": _diff(runs, "metrics"),
        "series": _series(cursor, run_ids, keys, points),
        "max_points": points,
    }
