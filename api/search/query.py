"""Run and experiment search against the projection: validate, compile, execute, page.

The id query (api/search/sql.py) returns one page of ids in order (one extra row tells whether
another page exists); the page's objects come from api/entities.py so every endpoint returns the
same run and experiment shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb

from ledgerflow.api.entities import load_experiments, load_runs
from ledgerflow.api.search.filter_parser import OrderKey, parse_filter, parse_order_by
from ledgerflow.api.search.grammar import ATTRIBUTE, EXPERIMENTS, RUNS, Target
from ledgerflow.api.search.paging import decode_token, encode_token, query_fingerprint
from ledgerflow.api.search.sql import compile_search
from ledgerflow.errors import InvalidInputError

VIEW_TYPES = ("ACTIVE_ONLY", "DELETED_ONLY", "ALL")
DEFAULT_MAX_RESULTS = 1000
MAX_RESULTS = 50_000  # MLflow's SEARCH_MAX_RESULTS_THRESHOLD
MAX_ORDER_BY = 20
MAX_EXPERIMENT_IDS = 1000

# MLflow's defaults: newest runs first; newest experiments first. The id tiebreak is added by sql.py.
DEFAULT_RUN_ORDER = [OrderKey(ATTRIBUTE, "start_time", False)]
DEFAULT_EXPERIMENT_ORDER = [OrderKey(ATTRIBUTE, "creation_time", False)]


@dataclass(frozen=True)
class Page:
    ids: list[str]
    next_page_token: str | None


def _check_max_results(max_results: int | None) -> int:
    if max_results is None:
        return DEFAULT_MAX_RESULTS
    if isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= MAX_RESULTS:
        raise InvalidInputError(f"max_results must be an integer between 1 and {MAX_RESULTS}, got {max_results!r}")
    return max_results


def _check_view_type(view_type: str | None, name: str) -> str:
    view_type = view_type or "ACTIVE_ONLY"
    if view_type not in VIEW_TYPES:
        raise InvalidInputError(f"{name} must be one of {', '.join(VIEW_TYPES)}, got {view_type!r}")
    return view_type


def _parse_order(order_by: list[str] | None, target: Target, default: list[OrderKey]) -> list[OrderKey]:
    if not order_by:
        return list(default)
    if len(order_by) > MAX_ORDER_BY:
        raise InvalidInputError(f"order_by takes at most {MAX_ORDER_BY} clauses, got {len(order_by)}")
    return [parse_order_by(clause, target) for clause in order_by]


def _lifecycle_scope(view_type: str) -> tuple[list[str], list[Any]]:
    if view_type == "ACTIVE_ONLY":
        return ["t.lifecycle_stage = ?"], ["active"]
    if view_type == "DELETED_ONLY":
        return ["t.lifecycle_stage = ?"], ["deleted"]
    return [], []


def _page(cursor: duckdb.DuckDBPyConnection, target: Target, filter_string: str | None, order: list[OrderKey],
          scope: tuple[list[str], list[Any]], max_results: int, page_token: str | None,
          fingerprint: str) -> Page:
    comparisons = parse_filter(filter_string, target)
    offset = decode_token(page_token, fingerprint)
    query = compile_search(target, comparisons, order, scope_sql=scope[0], scope_params=scope[1],
                           limit=max_results + 1, offset=offset)
    ids = [row[0] for row in cursor.execute(query.sql, query.params).fetchall()]
    more = len(ids) > max_results
    return Page(ids[:max_results], encode_token(offset + max_results, fingerprint) if more else None)


def search_run_ids(cursor: duckdb.DuckDBPyConnection, *, experiment_ids: list[str] | None, filter_string: str | None,
                   order_by: list[str] | None, max_results: int | None, page_token: str | None,
                   run_view_type: str | None, target: Target = RUNS) -> Page:
    """One page of run ids; ``experiment_ids`` empty or None searches every experiment.

    ``target`` is RUNS, or MLFLOW_RUNS for MLflow's looser reading of bare names."""
    max_results = _check_max_results(max_results)
    view_type = _check_view_type(run_view_type, "run_view_type")
    order = _parse_order(order_by, target, DEFAULT_RUN_ORDER)
    experiment_ids = list(dict.fromkeys(experiment_ids or []))
    if len(experiment_ids) > MAX_EXPERIMENT_IDS:
        raise InvalidInputError(f"experiment_ids takes at most {MAX_EXPERIMENT_IDS} ids, got {len(experiment_ids)}")
    scope_sql, scope_params = _lifecycle_scope(view_type)
    if experiment_ids:
        scope_sql = [*scope_sql, f"t.experiment_id IN ({', '.join('?' for _ in experiment_ids)})"]
        scope_params = [*scope_params, *experiment_ids]
    fingerprint = query_fingerprint("runs", sorted(experiment_ids), filter_string or "", order_by or [], view_type)
    return _page(cursor, target, filter_string, order, (scope_sql, scope_params), max_results, page_token, fingerprint)


def search_runs(cursor: duckdb.DuckDBPyConnection, **request: Any) -> dict[str, Any]:
    page = search_run_ids(cursor, **request)
    return {"runs": load_runs(cursor, page.ids), "next_page_token": page.next_page_token}


def search_experiment_ids(cursor: duckdb.DuckDBPyConnection, *, filter_string: str | None,
                          order_by: list[str] | None, max_results: int | None, page_token: str | None,
                          view_type: str | None) -> Page:
    """One page of experiment ids (callers shape the experiments: ledgerflow's or MLflow's JSON)."""
    max_results = _check_max_results(max_results)
    view_type = _check_view_type(view_type, "view_type")
    order = _parse_order(order_by, EXPERIMENTS, DEFAULT_EXPERIMENT_ORDER)
    fingerprint = query_fingerprint("experiments", filter_string or "", order_by or [], view_type)
    return _page(cursor, EXPERIMENTS, filter_string, order, _lifecycle_scope(view_type), max_results, page_token,
                 fingerprint)


def search_experiments(cursor: duckdb.DuckDBPyConnection, **request: Any) -> dict[str, Any]:
    page = search_experiment_ids(cursor, **request)
    return {"experiments": load_experiments(cursor, page.ids), "next_page_token": page.next_page_token}
