"""Searching experiments and runs with MLflow's filter syntax, and comparing runs side by side.

The routes only shape requests and responses; parsing, SQL and paging live in api/search/ so they
can be unit-tested without a server.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from ledgerflow.api.deps import Cursor
from ledgerflow.api.responses import FastJSONResponse
from ledgerflow.api.search.compare import DEFAULT_MAX_POINTS, MAX_COMPARE_RUNS, MAX_POINTS, compare_runs
from ledgerflow.api.search.query import DEFAULT_MAX_RESULTS, MAX_RESULTS, search_experiments, search_runs

router = APIRouter(prefix="/api/v1", tags=["search"])

ViewType = Literal["ACTIVE_ONLY", "DELETED_ONLY", "ALL"]
MAX_FILTER_CHARS = 100_000


class SearchRunsRequest(BaseModel):
    """MLflow's SearchRuns body (REST field names)."""

    model_config = ConfigDict(extra="forbid")

    experiment_ids: list[str] = Field(default_factory=list, description="experiments to search; empty = all")
    filter: str | None = Field(None, max_length=MAX_FILTER_CHARS,
                               description="MLflow filter, e.g. metrics.rmse < 0.8 AND params.model = 'rf'")
    order_by: list[str] | None = Field(None, description='e.g. ["metrics.rmse ASC", "attributes.start_time DESC"]')
    max_results: int | None = Field(None, description=f"1..{MAX_RESULTS}, default {DEFAULT_MAX_RESULTS}")
    page_token: str | None = Field(None, max_length=1000, description="next_page_token of the previous page")
    run_view_type: ViewType = "ACTIVE_ONLY"


class CompareRunsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_ids: list[str] = Field(description=f"2..{MAX_COMPARE_RUNS} run ids")
    metric_keys: list[str] | None = Field(None, description="series to align; default: the keys all runs share")
    max_points: int | None = Field(None, description=f"points per series, 2..{MAX_POINTS}, default {DEFAULT_MAX_POINTS}")


@router.post("/runs/search", summary="Search runs with an MLflow filter, order and page token")
def post_search_runs(body: SearchRunsRequest, cursor: Cursor) -> FastJSONResponse:
    return FastJSONResponse(search_runs(cursor, experiment_ids=body.experiment_ids, filter_string=body.filter, order_by=body.order_by,
                       max_results=body.max_results, page_token=body.page_token, run_view_type=body.run_view_type))


@router.get("/experiments/search", summary="Search experiments with an MLflow filter, order and page token")
def get_search_experiments(
    cursor: Cursor,
    filter: Annotated[str | None, Query(max_length=MAX_FILTER_CHARS,
                                        description="e.g. name LIKE 'churn%' AND tags.team = 'ml'")] = None,
    order_by: Annotated[list[str] | None, Query(description="repeatable, e.g. name ASC")] = None,
    max_results: Annotated[int | None, Query(description=f"1..{MAX_RESULTS}, default {DEFAULT_MAX_RESULTS}")] = None,
    page_token: Annotated[str | None, Query(max_length=1000)] = None,
    view_type: ViewType = "ACTIVE_ONLY",
) -> dict[str, Any]:
    return search_experiments(cursor, filter_string=filter, order_by=order_by, max_results=max_results,
                              page_token=page_token, view_type=view_type)


@router.post("/runs/compare", summary="Runs side by side: params diff, latest metrics, aligned series")
def post_compare_runs(body: CompareRunsRequest, cursor: Cursor) -> FastJSONResponse:
    return FastJSONResponse(compare_runs(cursor, body.run_ids, body.metric_keys, body.max_points))
