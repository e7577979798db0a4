"""The FastAPI application: routers per concern, one error shape, the runtime on app.state."""

from __future__ import annotations

import importlib

from fastapi import FastAPI

from ledgerflow._version import __version__
from ledgerflow.api import mlflow as mlflow_api
from ledgerflow.api.errors import install_error_handlers
from ledgerflow.api.runtime import Runtime

# Each module in api/routes/ exposes `router`. Listed here so a missing one fails loudly.
ROUTE_MODULES = ("health", "ingest", "search", "entities", "history", "lineage", "audit", "sql")


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="ledgerflow",
        version=__version__,
        description="Event-sourced ML experiment tracking: search and compare runs, metric histories, "
                    "lineage and audit timelines, read-only SQL. Every error is `{error_code, message}`.",
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    for name in ROUTE_MODULES:
        app.include_router(importlib.import_module(f"ledgerflow.api.routes.{name}").router)
    mlflow_api.install(app)
    return app
