"""Liveness/readiness (/health) and Prometheus metrics (/metrics)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from ledgerflow.api.deps import RuntimeDep

router = APIRouter(tags=["operations"])


@router.get("/health", summary="200 once the projector has caught up with the log it found at start")
def health(runtime: RuntimeDep) -> JSONResponse:
    ready = runtime.ready.is_set()
    body = {"status": "ok" if ready else "starting", "log": runtime.log.uri,
            "projected_position": {str(p): o for p, o in runtime.committed_position.items()}}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus text format")
def metrics(runtime: RuntimeDep) -> str:
    behind, events_behind, seconds = runtime.lag()
    counters = runtime.counters
    lines = [
        "# HELP ledgerflow_ingested_events_total Events accepted by this server's ingest endpoint.",
        "# TYPE ledgerflow_ingested_events_total counter",
        f"ledgerflow_ingested_events_total {counters.ingested_events}",
        "# HELP ledgerflow_ingested_points_total Metric points accepted by this server's ingest endpoint.",
        "# TYPE ledgerflow_ingested_points_total counter",
        f"ledgerflow_ingested_points_total {counters.ingested_points}",
        "# HELP ledgerflow_projected_events_total Events applied by the in-process projector.",
        "# TYPE ledgerflow_projected_events_total counter",
        f"ledgerflow_projected_events_total {counters.projected_events}",
        "# HELP ledgerflow_projected_points_total Metric points applied by the in-process projector.",
        "# TYPE ledgerflow_projected_points_total counter",
        f"ledgerflow_projected_points_total {counters.projected_points}",
        "# HELP ledgerflow_projector_lag_offsets Log offsets not yet projected (bytes for the embedded log, records for Kafka).",
        "# TYPE ledgerflow_projector_lag_offsets gauge",
        f"ledgerflow_projector_lag_offsets {behind}",
        "# HELP ledgerflow_projector_lag_events Events in the log not yet projected (counted up to 100,000).",
        "# TYPE ledgerflow_projector_lag_events gauge",
        f"ledgerflow_projector_lag_events {events_behind}",
        "# HELP ledgerflow_projector_lag_seconds Seconds since the projector last applied a batch, while it is behind.",
        "# TYPE ledgerflow_projector_lag_seconds gauge",
        f"ledgerflow_projector_lag_seconds {seconds:.3f}",
        "# HELP ledgerflow_dead_letters Events the projector could not apply.",
        "# TYPE ledgerflow_dead_letters gauge",
        f"ledgerflow_dead_letters {_dead_letters(runtime)}",
        "# HELP ledgerflow_projector_errors_total Failed projector batches (retried).",
        "# TYPE ledgerflow_projector_errors_total counter",
        f"ledgerflow_projector_errors_total {counters.projector_errors}",
    ]
    return "\n".join(lines) + "\n"


def _dead_letters(runtime) -> int:
    with runtime.read_cursor(consistent=False) as cursor:
        return cursor.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
