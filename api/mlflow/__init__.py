"""MLflow's REST API, served from the event log and the projection.

An unmodified ``mlflow`` client pointed at ``ledgerflow server`` (MLFLOW_TRACKING_URI=http://host:port)
works unchanged: every MLflow write becomes events appended to the log (audited, replayable, visible
to SQL), every read is answered from the DuckDB projection. Modules by MLflow service:

- ``tracking``: experiments and the run lifecycle; ``run_logging``: metrics, params, tags, inputs;
  ``queries``: run and experiment search, metric histories;
- ``registry``: registered models, model versions, aliases, stages;
- ``logged_models``: MLflow 3 logged models and run outputs;
- ``artifacts``: the proxied artifact API (``mlflow-artifacts``) over a local store.

``protocol`` holds what they share: request field parsing and MLflow's error codes; ``error_classes``
adds MLflow 3's ``sqlstate``/``error_class`` to every MLflow error answer. ledgerflow never
imports the ``mlflow`` package; its wire format is matched from the protocol, and checked by tests
that drive the real client.
"""

from __future__ import annotations

import importlib

from fastapi import FastAPI

from ledgerflow.api.mlflow.error_classes import install_error_classes

#: each module exposes ``router`` (paths relative to the service root) and ``PREFIXES``; a module serving
#: under several service roots lists ``ROUTERS``, (router, prefixes) pairs, instead
MLFLOW_MODULES = ("tracking", "run_logging", "queries", "registry", "logged_models", "artifacts")


def install(app: FastAPI) -> None:
    """Mount every MLflow service router under each of its prefixes (REST and the UI's ajax-api)."""
    for name in MLFLOW_MODULES:
        module = importlib.import_module(f"ledgerflow.api.mlflow.{name}")
        for router, prefixes in getattr(module, "ROUTERS", ((module.router, module.PREFIXES),)):
            for prefix in prefixes:
                app.include_router(router, prefix=prefix, include_in_schema=prefix.startswith("/api/"))
    install_error_classes(app)
