"""POST /api/v1/sql: one read-only SELECT over the documented tables, as JSON, CSV, Parquet or Arrow.

The sandbox itself (what may run, limits, hardening) is ledgerflow.api.sql; this module reads the
request, picks the output format and renders the rows (docs/sql.md).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from ledgerflow.api.deps import Cursor
from ledgerflow.api.entities import json_number
from ledgerflow.api.errors import ApiError, bad_request
from ledgerflow.api.sql import SqlLimits, check_query, run_query

router = APIRouter(prefix="/api/v1", tags=["sql"])

Format = Literal["json", "csv", "parquet", "arrow"]
MEDIA_TYPES: dict[str, str] = {"json": "application/json", "csv": "text/csv; charset=utf-8",
                               "parquet": "application/vnd.apache.parquet",
                               "arrow": "application/vnd.apache.arrow.stream"}
_ACCEPTED: dict[str, str] = {"application/json": "json", "text/csv": "csv", "application/vnd.apache.parquet": "parquet",
                             "application/parquet": "parquet", "application/x-parquet": "parquet",
                             "application/vnd.apache.arrow.stream": "arrow", "*/*": "json", "application/*": "json",
                             "text/*": "csv"}
MAX_BODY_BYTES = 1_000_000


class SqlRequest(BaseModel):
    """The request body."""

    model_config = ConfigDict(extra="forbid")

    sql: StrictStr = Field(description="one SELECT statement over the tables of docs/tables.md")
    format: Format | None = Field(None, description="output format; overrides the Accept header (default json)")
    max_rows: StrictInt | None = Field(None, ge=1, description="return at most this many rows (<= the server's cap)")
    timeout_seconds: float | None = Field(None, gt=0, description="cancel after this long (<= the server's limit)")


@dataclass(frozen=True)
class SqlCall:
    sql: str
    format: str
    limits: SqlLimits


def _negotiate(accept: str | None) -> str:
    """The format the Accept header prefers (q-values honoured); JSON when there is none."""
    if not accept or not accept.strip():
        return "json"
    offers: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept.split(",")):
        media, *params = [p.strip() for p in part.split(";")]
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media.lower() in _ACCEPTED and quality > 0:
            offers.append((-quality, index, _ACCEPTED[media.lower()]))
    if not offers:
        raise ApiError(406, "NOT_ACCEPTABLE", f"none of the media types in Accept ({accept[:200]}) can be produced; "
                                              f"use one of {', '.join(MEDIA_TYPES.values())}")
    return min(offers)[2]


async def sql_call(request: Request) -> SqlCall:
    """Read and check the body before a cursor is taken: bad requests never wait for the projection."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise bad_request(f"the body must be JSON sent as Content-Type: application/json, not {media or 'nothing'}")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise bad_request(f"the body is {len(raw)} bytes; at most {MAX_BODY_BYTES} are accepted")
    try:
        body = SqlRequest.model_validate(json.loads(raw))
    except (ValueError, RecursionError) as e:
        if isinstance(e, ValidationError):
            problems = "; ".join(f"{'.'.join(map(str, p['loc'])) or 'body'}: {p['msg']}" for p in e.errors())
            raise bad_request(f"invalid request: {problems}") from None
        raise bad_request(f"the body is not valid JSON: {e}") from None
    server = SqlLimits.from_settings()
    if body.max_rows is not None and body.max_rows > server.max_rows:
        raise bad_request(f"max_rows {body.max_rows} exceeds the server's cap of {server.max_rows}")
    if body.timeout_seconds is not None and body.timeout_seconds > server.timeout_seconds:
        raise bad_request(f"timeout_seconds {body.timeout_seconds:g} exceeds the server's limit of "
                          f"{server.timeout_seconds:g}")
    limits = SqlLimits(body.timeout_seconds or server.timeout_seconds, body.max_rows or server.max_rows)
    return SqlCall(body.sql, body.format or _negotiate(request.headers.get("accept")), limits)


_BODY_SCHEMA = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": SqlRequest.model_json_schema(),
    "example": {"sql": "SELECT run_id, value FROM latest_metrics WHERE key = 'acc' ORDER BY value DESC LIMIT 5"}}}}}


@router.post("/sql", summary="Run one read-only SELECT over the projected tables (docs/sql.md)",
             openapi_extra=_BODY_SCHEMA, responses={200: {"content": {m: {} for m in MEDIA_TYPES.values()}}})
def run_sql(call: Annotated[SqlCall, Depends(sql_call)], cursor: Cursor) -> Response:
    check_query(cursor, call.sql)
    result = run_query(cursor, call.sql, call.limits)
    headers = {"X-Ledgerflow-Row-Count": str(result.table.num_rows),
               "X-Ledgerflow-Truncated": str(result.truncated).lower()}
    if call.format == "json":
        columns = [{"name": f.name, "type": t} for f, t in zip(result.table.schema, result.types, strict=True)]
        return JSONResponse({"columns": columns, "rows": _json_rows(result.table), "row_count": result.table.num_rows,
                             "truncated": result.truncated}, headers=headers)
    if call.format == "csv":
        content = _csv(result.table)
    else:
        content = _parquet(result.table) if call.format == "parquet" else _arrow_stream(result.table)
    extension = {"csv": "csv", "parquet": "parquet", "arrow": "arrows"}[call.format]
    headers["Content-Disposition"] = f'attachment; filename="result.{extension}"'
    return Response(content, media_type=MEDIA_TYPES[call.format], headers=headers)


# ---- rendering ----------------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    """A JSON-ready value: NaN/inf as strings, times ISO 8601, UUIDs as text, bytes base64, nested recursively."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return json_number(value)
    if isinstance(value, Decimal):
        return int(value) if value.as_tuple().exponent >= 0 else json_number(float(value))  # type: ignore[operator]
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, pa.MonthDayNano):  # DuckDB INTERVAL
        return _iso_interval(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return str(value)


def _iso_interval(value: pa.MonthDayNano) -> str:
    return f"P{value.months}M{value.days}DT{value.nanoseconds / 1e9:g}S"


def _python_column(column: pa.ChunkedArray) -> list[Any]:
    try:
        values = column.to_pylist()
    except (pa.ArrowException, ValueError, OverflowError):  # e.g. nanosecond times beyond datetime
        values = column.cast(pa.string()).to_pylist()
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_boolean(kind):
        return values  # already JSON-ready: skip the per-value walk
    return [_json_value(v) for v in values]


def _json_rows(table: pa.Table) -> list[tuple[Any, ...]]:
    return list(zip(*(_python_column(column) for column in table.columns), strict=True)) if table.num_columns else []


def _csv(table: pa.Table) -> bytes:
    """CSV with a header; values as in JSON output, nested ones as JSON text, NULL as an empty field."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.column_names)
    for row in _json_rows(table):
        writer.writerow(["" if v is None else ("true" if v is True else "false" if v is False else
                         json.dumps(v) if isinstance(v, (list, dict)) else v) for v in row])
    return out.getvalue().encode("utf-8")


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    try:
        pq.write_table(table, sink)
    except (pa.ArrowException, ValueError) as e:
        raise bad_request(f"the result cannot be written as Parquet ({e}); cast such columns to VARCHAR "
                          "or ask for format arrow or json") from None
    return sink.getvalue()


def _arrow_stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()
