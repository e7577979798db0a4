"""MLflow tracking service, part 3: searching runs and experiments, metric histories, dataset summaries.

Searches reuse api/search (MLflow's filter grammar compiled to one DuckDB query per page) and shape
the page with shapes.py. Metric series are read through their rowid ranges (api/series.py), so a
history costs the same whatever the size of the metrics table. Like MLflow's SQL store, a history
holds each (timestamp, step, value) point once, however often it was logged.
"""

from __future__ import annotations

import json
from math import isfinite
from typing import Annotated, Any

import duckdb
from fastapi import APIRouter, Depends, Response

from ledgerflow.api.mlflow.protocol import (
    API_DOCS_HINT,
    TRACKING_PREFIXES,
    int64_field,
    invalid,
    list_field,
    missing_parameter,
    request_fields,
    run_id_field,
    string_field,
    wrong_type,
)
from ledgerflow.api.mlflow.run_cache import run_cache_of
from ledgerflow.api.mlflow.run_facts import projection_cursor
from ledgerflow.api.mlflow.shapes import json_double, json_text_response, load_experiments, load_runs_json
from ledgerflow.api.mlflow.state import State
from ledgerflow.api.responses import FastJSONResponse
from ledgerflow.api.search.grammar import MLFLOW_RUNS
from ledgerflow.api.search.paging import decode_token, encode_token, query_fingerprint
from ledgerflow.api.search.query import search_experiment_ids, search_run_ids
from ledgerflow.api.series import rowid_predicate

PREFIXES = TRACKING_PREFIXES
router = APIRouter(tags=["mlflow"])
Fields = Annotated[dict[str, Any], Depends(request_fields)]

VIEW_TYPES = ("ACTIVE_ONLY", "DELETED_ONLY", "ALL")  # proto enum values 1..3
SEARCH_MAX_RESULTS = 50_000
DEFAULT_SEARCH_RESULTS = 1000
MAX_RUNS_PER_HISTORY_REQUEST = 100
MAX_POINTS_PER_RUN = 2500
MAX_BULK_HISTORY_POINTS = 25_000
MAX_DATASET_SEARCH_EXPERIMENTS = 20
MAX_DATASET_SUMMARIES = 1000


def view_type(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name)
    if value is None or value == "":
        return "ACTIVE_ONLY"
    if isinstance(value, str) and value.upper() in VIEW_TYPES:
        return value.upper()
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= len(VIEW_TYPES):
        return VIEW_TYPES[value - 1]
    raise wrong_type(name, value)


def search_max_results(fields: dict[str, Any]) -> int:
    value = int64_field(fields, "max_results")
    if value is None:
        return DEFAULT_SEARCH_RESULTS
    if value < 1:
        raise invalid(f"Invalid value {value} for parameter 'max_results' supplied. It must be a positive integer")
    if value > SEARCH_MAX_RESULTS:
        raise wrong_type("max_results", fields["max_results"])
    return value


def strings(fields: dict[str, Any], name: str, *, query: bool = False) -> list[str]:
    values = list_field(fields, name, query=query)
    if not all(isinstance(v, str) for v in values):
        raise wrong_type(name, fields[name])
    return values


def _without_empty(response: dict[str, Any]) -> dict[str, Any]:
    """Proto JSON leaves out empty lists and unset fields."""
    return {key: value for key, value in response.items() if value not in (None, [], "")}


# ---- search ------------------------------------------------------------------------------------

@router.post("/runs/search")
def search_runs(fields: Fields, state: State) -> Response:
    """One page of runs of the given experiments (none given: no runs, as MLflow)."""
    experiment_ids = strings(fields, "experiment_ids")
    max_results = search_max_results(fields)
    order_by = strings(fields, "order_by")
    view = view_type(fields, "run_view_type")
    filter_string = string_field(fields, "filter")
    page_token = string_field(fields, "page_token")
    if not experiment_ids:
        return FastJSONResponse({})
    with projection_cursor(state.runtime) as cursor:
        position = state.runtime.committed_position  # before any row is read: what the cache is valid at
        page = search_run_ids(cursor, experiment_ids=experiment_ids, filter_string=filter_string, order_by=order_by,
                              max_results=max_results, page_token=page_token, run_view_type=view, target=MLFLOW_RUNS)
        runs = load_runs_json(cursor, page.ids, cache=(run_cache_of(state.runtime), position))
    parts = [f'"runs":[{",".join(runs)}]'] if runs else []
    if page.next_page_token:
        parts.append(f'"next_page_token":"{page.next_page_token}"')  # url-safe base64: nothing to escape
    return json_text_response("{" + ",".join(parts) + "}")


@router.get("/experiments/search")
@router.post("/experiments/search")  # one route per method: each gets its own OpenAPI operation id
def search_experiments(fields: Fields, state: State) -> FastJSONResponse:
    max_results = search_max_results(fields)
    query = isinstance(fields.get("order_by"), str)
    with projection_cursor(state.runtime) as cursor:
        page = search_experiment_ids(cursor, filter_string=string_field(fields, "filter"),
                                     order_by=strings(fields, "order_by", query=query), max_results=max_results,
                                     page_token=string_field(fields, "page_token"),
                                     view_type=view_type(fields, "view_type"))
        experiments = load_experiments(cursor, page.ids)
    return FastJSONResponse(_without_empty({"experiments": experiments, "next_page_token": page.next_page_token}))


@router.post("/experiments/search-datasets")
def search_datasets(fields: Fields, state: State) -> FastJSONResponse:
    """The distinct (experiment, dataset name, digest, context) inputs of up to 20 experiments (the UI's list)."""
    experiment_ids = strings(fields, "experiment_ids")
    if not experiment_ids:
        raise invalid("SearchDatasets request must specify at least one experiment_id.")
    if len(experiment_ids) > MAX_DATASET_SEARCH_EXPERIMENTS:
        raise invalid(f"SearchDatasets request cannot specify more than {MAX_DATASET_SEARCH_EXPERIMENTS} "
                      f"experiment_ids. Received {len(experiment_ids)} experiment_ids.")
    with projection_cursor(state.runtime) as cursor:
        rows = cursor.execute(
            "SELECT DISTINCT r.experiment_id, d.name, d.digest, i.context FROM run_inputs i "
            "JOIN runs r ON r.run_id = i.run_id JOIN datasets d ON d.dataset_id = i.dataset_id "
            f"WHERE r.experiment_id IN ({', '.join('?' * len(experiment_ids))}) "
            "ORDER BY r.experiment_id, d.name, d.digest, i.context LIMIT ?",
            [*experiment_ids, MAX_DATASET_SUMMARIES]).fetchall()
    summaries = [_without_empty({"experiment_id": e, "name": n, "digest": d, "context": c}) for e, n, d, c in rows]
    return FastJSONResponse(_without_empty({"dataset_summaries": summaries}))


# ---- metric histories ----------------------------------------------------------------------------

def _points_sql(cursor: duckdb.DuckDBPyConnection, run_ids: list[str], key: str) -> tuple[str, list[Any]]:
    """The FROM/WHERE selecting the distinct points of ``key`` of these runs, through their rowid ranges."""
    rows = rowid_predicate(cursor, run_ids, [key])
    return (f"FROM metrics WHERE {rows} AND run_id IN ({', '.join('?' * len(run_ids))}) AND key = ?",
            [*run_ids, key])


@router.get("/metrics/get-history")
def get_metric_history(fields: Fields, state: State) -> Response:
    """Every point of one metric of one run, by (timestamp, step, value); paged when max_results is given."""
    run_id = run_id_field(fields)
    key = string_field(fields, "metric_key", required=True) or ""
    max_results = int64_field(fields, "max_results")
    page_token = string_field(fields, "page_token")
    if max_results is not None and max_results <= 0:
        raise invalid(f"Invalid value {max_results} for parameter 'max_results' supplied. "
                      f"It must be a positive integer.")
    fingerprint = query_fingerprint("metric-history", run_id, key)
    offset = decode_token(page_token, fingerprint)
    with projection_cursor(state.runtime) as cursor:
        source, params = _points_sql(cursor, [run_id], key)
        limit = "" if max_results is None else f" LIMIT {max_results + 1}"
        points = cursor.execute(f"SELECT DISTINCT timestamp, step, value {source} "
                                f"ORDER BY timestamp, step, value{limit} OFFSET {offset}", params).fetchall()
    token = None
    if max_results is not None and len(points) > max_results:
        points, token = points[:max_results], encode_token(offset + max_results, fingerprint)
    if not points:
        return json_text_response(f'{{"next_page_token":"{token}"}}' if token else "{}")
    # A page can hold 25,000 points: formatting each as text is ~4x faster than dicts through json.dumps.
    prefix = '{"key":' + json.dumps(key, ensure_ascii=False) + ',"value":'
    text = ",".join([f'{prefix}{value!r},"timestamp":{timestamp},"step":{step}}}' if isfinite(value) else
                     f'{prefix}"{json_double(value)}","timestamp":{timestamp},"step":{step}}}'
                     for timestamp, step, value in points])
    return json_text_response(f'{{"metrics":[{text}]' + (f',"next_page_token":"{token}"}}' if token else "}"))


def _history_runs(fields: dict[str, Any], name: str, what: str) -> list[str]:
    run_ids = strings(fields, name, query=True)
    if len(run_ids) > MAX_RUNS_PER_HISTORY_REQUEST:
        raise invalid(f"{what} request must specify at most {MAX_RUNS_PER_HISTORY_REQUEST} run_ids. "
                      f"Received {len(run_ids)} run_ids.{API_DOCS_HINT}")
    return list(dict.fromkeys(run_ids))


_SAMPLE_SQL = """
WITH pts AS (SELECT DISTINCT run_id, step, timestamp, value {source}{steps}),
ranked AS (
  SELECT *, ntile(?) OVER (PARTITION BY run_id ORDER BY step, timestamp, value) AS bucket,
         row_number() OVER (PARTITION BY run_id ORDER BY step DESC, timestamp DESC, value DESC) AS from_end
  FROM pts),
firsts AS (SELECT *, row_number() OVER (PARTITION BY run_id, bucket ORDER BY step, timestamp, value) AS rn FROM ranked)
SELECT run_id, step, timestamp, value, rn = 1, from_end = 1 FROM firsts WHERE rn = 1 OR from_end = 1
ORDER BY run_id, step, timestamp, value
"""


@router.get("/metrics/get-history-bulk-interval")
def get_metric_history_bulk_interval(fields: Fields, state: State) -> FastJSONResponse:
    """Up to max_results points per run, evenly spread over the (optional) step range, always with the last."""
    if not strings(fields, "run_ids", query=True):
        raise missing_parameter("run_ids")
    run_ids = _history_runs(fields, "run_ids", "GetMetricHistoryBulkInterval")
    key = string_field(fields, "metric_key", required=True) or ""
    max_results = int64_field(fields, "max_results")
    if max_results is None:
        max_results = MAX_POINTS_PER_RUN
    elif not 1 <= max_results <= MAX_POINTS_PER_RUN:
        raise invalid(f"max_results must be between 1 and {MAX_POINTS_PER_RUN}.{API_DOCS_HINT}")
    start, end = int64_field(fields, "start_step"), int64_field(fields, "end_step")
    if (start is None) != (end is None):
        raise invalid("If either start step or end step are specified, both must be specified.")
    if start is not None and end is not None and start > end:
        raise invalid(f"end_step must be greater than start_step. Found start_step={start} and end_step={end}.")
    with projection_cursor(state.runtime) as cursor:
        source, params = _points_sql(cursor, run_ids, key)
        steps = "" if start is None else " AND step BETWEEN ? AND ?"
        rows = cursor.execute(_SAMPLE_SQL.format(source=source, steps=steps),
                              [*params, *([start, end] if start is not None else []), max_results]).fetchall()
    sampled: dict[str, list[tuple[int, int, float]]] = {run_id: [] for run_id in run_ids}
    last: dict[str, tuple[int, int, float]] = {}
    for run_id, step, timestamp, value, is_sample, is_last in rows:
        if is_sample:
            sampled[run_id].append((step, timestamp, value))
        if is_last:
            last[run_id] = (step, timestamp, value)
    metrics = []
    for run_id in run_ids:
        points = sampled[run_id]
        final = last.get(run_id)
        if final is not None and (not points or points[-1] != final):
            if len(points) >= max_results:
                points[-1] = final
            else:
                points.append(final)
        metrics += [{"key": key, "value": json_double(value), "timestamp": timestamp, "step": step,
                     "run_id": run_id} for step, timestamp, value in points]
    return FastJSONResponse(_without_empty({"metrics": metrics}))


@router.get("/metrics/get-history-bulk")
def get_metric_history_bulk(fields: Fields, state: State) -> FastJSONResponse:
    """The UI's older bulk read: points of one metric of up to 100 runs, by run, timestamp, step, value."""
    run_ids = strings(fields, "run_id", query=True)
    if not run_ids:
        raise invalid("GetMetricHistoryBulk request must specify at least one run_id.")
    if len(run_ids) > MAX_RUNS_PER_HISTORY_REQUEST:
        raise invalid(f"GetMetricHistoryBulk request cannot specify more than {MAX_RUNS_PER_HISTORY_REQUEST} "
                      f"run_ids. Received {len(run_ids)} run_ids.")
    key = string_field(fields, "metric_key")
    if key is None:
        raise invalid("GetMetricHistoryBulk request must specify a metric_key.")
    max_results = min(int64_field(fields, "max_results") or MAX_BULK_HISTORY_POINTS, MAX_BULK_HISTORY_POINTS)
    run_ids = list(dict.fromkeys(run_ids))
    with projection_cursor(state.runtime) as cursor:
        source, params = _points_sql(cursor, run_ids, key)
        rows = cursor.execute(f"SELECT DISTINCT run_id, timestamp, step, value {source} "
                              f"ORDER BY run_id, timestamp, step, value LIMIT ?", [*params, max_results]).fetchall()
    return FastJSONResponse({"metrics": [{"key": key, "value": json_double(value), "timestamp": timestamp,
                                          "step": step, "run_id": run_id} for run_id, timestamp, step, value in rows]})
