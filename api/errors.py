"""One error shape for every API response that is not a success: ``{"error_code", "message"}``.

ledgerflow's own exceptions are mapped to HTTP statuses here and nowhere else. Client input must
never produce a 5xx: anything unexpected is logged and answered 500 INTERNAL_ERROR, and tests
(schemathesis among them) check that it does not happen.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledgerflow.errors import ConfigurationError, InvalidInputError, LedgerflowError

log = logging.getLogger("ledgerflow.api")


class ApiError(LedgerflowError):
    """An error with its HTTP status and stable error code, raised by endpoint code."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_code, self.message = status, error_code, message


def not_found(what: str) -> ApiError:
    return ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"{what} does not exist")


def bad_request(message: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)


def error_body(error_code: str, message: str) -> dict[str, str]:
    return {"error_code": error_code, "message": message}


def _respond(status: int, error_code: str, message: str) -> JSONResponse:
    return JSONResponse(error_body(error_code, message), status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> JSONResponse:
        return _respond(error.status, error.error_code, error.message)

    @app.exception_handler(InvalidInputError)
    async def _invalid(request: Request, error: InvalidInputError) -> JSONResponse:
        return _respond(400, "INVALID_PARAMETER_VALUE", str(error))

    @app.exception_handler(ConfigurationError)
    async def _configuration(request: Request, error: ConfigurationError) -> JSONResponse:
        return _respond(400, "INVALID_PARAMETER_VALUE", str(error))

    @app.exception_handler(LedgerflowError)
    async def _ledgerflow(request: Request, error: LedgerflowError) -> JSONResponse:
        if error.transient:
            return _respond(503, "TEMPORARILY_UNAVAILABLE", str(error))
        log.exception("unhandled ledgerflow error on %s %s", request.method, request.url.path)
        return _respond(500, "INTERNAL_ERROR", str(error))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'request'}: {e.get('msg')}"
            for e in error.errors()
        )
        return _respond(400, "INVALID_PARAMETER_VALUE", f"invalid request: {problems}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "ENDPOINT_NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(error.status_code, "BAD_REQUEST")
        return _respond(error.status_code, code, str(error.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _respond(500, "INTERNAL_ERROR", f"internal error: {type(error).__name__}")
