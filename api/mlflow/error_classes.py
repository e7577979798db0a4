"""MLflow 3's error classification on every MLflow error answer: ``sqlstate`` and ``error_class``.

Since 3.x an MLflow server answers an error as ``{"error_code", "message", "sqlstate", "error_class"}``:
the two extra fields are derived from the error code alone (``INVALID_PARAMETER_VALUE`` ->
``INVALID_PARAMETER_VALUE`` / ``KAM00``, ``RESOURCE_DOES_NOT_EXIST`` -> ``RESOURCE_NOT_FOUND`` /
``KAM00`` ...), and codes without a class (``RESOURCE_CONFLICT``, ``NOT_IMPLEMENTED`` ...) get neither.
Clients keep them on the exception they raise and tests compare whole error bodies, so the MLflow
endpoints add them too. ledgerflow's own API (/api/v1, /health) keeps its two-field error shape.

The handlers of api/errors.py stay the one place that maps exceptions to statuses; this module only
wraps them, adding the fields when the request was for an MLflow endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import Response

#: the path roots MLflow's server answers under (REST, the UI's ajax-api, artifacts, the site-root files)
MLFLOW_PATH_ROOTS = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow", "/api/3.0/mlflow", "/ajax-api/3.0/mlflow",
                     "/get-artifact", "/model-versions/get-artifact")

_CLIENT_INVALID, _CLIENT_INTERNAL = "KAM00", "XXM00"
#: error code -> (error_class, sqlstate), as an MLflow 3.17 server derives them
CLASSIFICATION: dict[str, tuple[str, str]] = {
    "BAD_REQUEST": ("INVALID_PARAMETER_VALUE", _CLIENT_INVALID),
    "CUSTOMER_UNAUTHORIZED": ("PERMISSION_DENIED", _CLIENT_INVALID),
    "ENDPOINT_NOT_FOUND": ("RESOURCE_NOT_FOUND", _CLIENT_INVALID),
    "FEATURE_DISABLED": ("FEATURE_DISABLED", _CLIENT_INVALID),
    "INTERNAL_ERROR": ("CLIENT_INTERNAL_ERROR", _CLIENT_INTERNAL),
    "INVALID_PARAMETER_VALUE": ("INVALID_PARAMETER_VALUE", _CLIENT_INVALID),
    "INVALID_STATE": ("CLIENT_INTERNAL_ERROR", _CLIENT_INTERNAL),
    "NOT_FOUND": ("RESOURCE_NOT_FOUND", _CLIENT_INVALID),
    "PERMISSION_DENIED": ("PERMISSION_DENIED", _CLIENT_INVALID),
    "RESOURCE_ALREADY_EXISTS": ("RESOURCE_ALREADY_EXISTS", _CLIENT_INVALID),
    "RESOURCE_DOES_NOT_EXIST": ("RESOURCE_NOT_FOUND", _CLIENT_INVALID),
    "TEMPORARILY_UNAVAILABLE": ("CLIENT_INTERNAL_ERROR", _CLIENT_INTERNAL),
}

Handler = Callable[[Request, Exception], Awaitable[Response] | Response]


def classified(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with MLflow's ``sqlstate`` and ``error_class`` for its error code (unchanged if it has none)."""
    found = CLASSIFICATION.get(str(body.get("error_code")))
    if found is None:
        return body
    error_class, sqlstate = found
    return {**body, "sqlstate": sqlstate, "error_class": error_class}


def is_mlflow_path(path: str) -> bool:
    return any(path == root or path.startswith(root + "/") or path.startswith(root + "-")
               for root in MLFLOW_PATH_ROOTS)


def install_error_classes(app: FastAPI) -> None:
    """Wrap every exception handler installed so far; call after api/errors.py installed its handlers."""
    for exception_class, handler in list(app.exception_handlers.items()):
        app.exception_handlers[exception_class] = _classifying(handler)


def _classifying(handler: Handler) -> Handler:
    async def handle(request: Request, error: Exception) -> Response:
        response = handler(request, error)
        if not isinstance(response, Response):
            response = await response
        if not is_mlflow_path(request.url.path) or response.media_type != "application/json":
            return response
        try:
            body = json.loads(bytes(response.body))
        except ValueError:
            return response
        if not isinstance(body, dict) or "error_code" not in body:
            return response
        headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
        return Response(json.dumps(classified(body)), status_code=response.status_code, headers=headers,
                        media_type="application/json")
    return handle
