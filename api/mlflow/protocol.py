"""What every MLflow endpoint shares: reading request fields, and MLflow's error codes.

MLflow clients send GET requests with query parameters (repeated keys for lists) and every other
method with a JSON body; ``request_fields`` returns both as one dict so endpoints read fields the
same way. Errors are :class:`ApiError` with MLflow's error codes and the HTTP statuses MLflow maps
them to (RESOURCE_DOES_NOT_EXIST -> 404, INVALID_PARAMETER_VALUE and RESOURCE_ALREADY_EXISTS -> 400),
so the client raises the same ``MlflowException`` it raises against MLflow's own server.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from fastapi import Request

from ledgerflow.api.errors import ApiError

TRACKING_PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
MAX_BODY_BYTES = 64 * 1024 * 1024


def invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)


def does_not_exist(message: str) -> ApiError:
    return ApiError(404, "RESOURCE_DOES_NOT_EXIST", message)


def already_exists(message: str) -> ApiError:
    return ApiError(400, "RESOURCE_ALREADY_EXISTS", message)


def bad_state(message: str) -> ApiError:
    """MLflow's INVALID_STATE (e.g. writing to a run that is not active); MLflow answers it with 500."""
    return ApiError(500, "INVALID_STATE", message)


async def request_fields(request: Request) -> dict[str, Any]:
    """Query parameters (repeated keys become lists) merged with the JSON body, if any."""
    fields: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        fields[key] = values if len(values) > 1 else values[0]
    if request.method in ("POST", "PATCH", "PUT", "DELETE"):
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise ApiError(413, "REQUEST_TOO_LARGE", f"the body has {len(raw)} bytes; at most {MAX_BODY_BYTES}")
        if raw.strip():
            try:
                body = json.loads(raw)
            except (ValueError, RecursionError) as e:
                raise invalid(f"the request body is not valid JSON: {e}") from None
            if not isinstance(body, dict):
                raise invalid("the request body must be a JSON object")
            fields.update(body)
    return fields


def text(fields: dict[str, Any], name: str, *, required: bool = True, default: str | None = None) -> str | None:
    """A string field; missing -> MLflow's "Missing value for required parameter" error."""
    value = fields.get(name)
    if value is None or (value == "" and required):
        if required:
            raise invalid(f"Missing value for required parameter '{name}'. See the API docs for more information "
                          f"about request parameters.")
        return default
    if isinstance(value, list):
        value = value[0] if len(value) == 1 else value
    if not isinstance(value, str):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise invalid(f"Invalid value {json.dumps(value)} for parameter '{name}' supplied: it must be a string")
    return value


def integer(fields: dict[str, Any], name: str, *, required: bool = False, default: int | None = None) -> int | None:
    """An int64 field, given as a JSON number or (in a query string or proto JSON) a decimal string."""
    value = fields.get(name)
    if value is None or value == "":
        if required:
            raise invalid(f"Missing value for required parameter '{name}'. See the API docs for more information "
                          f"about request parameters.")
        return default
    if isinstance(value, bool):
        raise invalid(f"Invalid value {json.dumps(value)} for parameter '{name}' supplied: it must be an integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise invalid(f"Invalid value {value!r} for parameter '{name}' supplied: it must be an integer") from None
    if not isinstance(value, int) or not -2**63 <= value < 2**63:
        raise invalid(f"Invalid value {json.dumps(value)} for parameter '{name}' supplied: it must be an int64")
    return value


def boolean(fields: dict[str, Any], name: str, *, default: bool = False) -> bool:
    value = fields.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise invalid(f"Invalid value {json.dumps(value)} for parameter '{name}' supplied: it must be true or false")


def string_list(fields: dict[str, Any], name: str) -> list[str]:
    """A repeated string field: a JSON list, or repeated query keys (one key gives one element)."""
    value = fields.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(f"Invalid value {json.dumps(value)} for parameter '{name}' supplied: "
                      f"it must be a list of strings")
    return value


def actor_of(request: Request, fallback: str | None = None) -> str:
    """Who makes the call: the HTTP basic-auth user MLflow clients send, else the ledgerflow actor
    header, else ``fallback`` (e.g. the run's user_id), else "anonymous"."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            user = base64.b64decode(header[6:]).decode("utf-8").split(":", 1)[0]
        except (ValueError, UnicodeDecodeError):
            user = ""
        if user:
            return user
    return request.headers.get("x-ledgerflow-actor") or fallback or "anonymous"


# ---- MLflow's request-schema checks: exact types, MLflow's wording -----------------------------
# MLflow's server checks each field's JSON type against the proto and answers with fixed phrases
# ("Missing value for required parameter 'x'.", "Invalid value 31 for parameter 'x' supplied: ...")
# that clients and MLflow's own tests match on. Unlike ``text``/``integer`` above, these never
# coerce a value of the wrong JSON type.

API_DOCS_HINT = " See the API docs for more information about request parameters."


def missing_parameter(name: str) -> ApiError:
    return invalid(f"Missing value for required parameter '{name}'.{API_DOCS_HINT}")


def wrong_type(name: str, value: Any) -> ApiError:
    shown = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return invalid(f"Invalid value {shown} for parameter '{name}' supplied:  Hint: Value was of type "
                   f"'{type(value).__name__}'.{API_DOCS_HINT}")


def string_field(fields: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    """A proto string field: must be a JSON string; required means present and not empty."""
    value = fields.get(name)
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        value = value[0]  # one repeated query key
    if value is None or (required and value == ""):
        if required:
            raise missing_parameter(name)
        return None
    if not isinstance(value, str):
        raise wrong_type(name, value)
    return value


def int64_field(fields: dict[str, Any], name: str, *, required: bool = False) -> int | None:
    """A proto int64 field: a JSON integer or a decimal string (proto JSON writes int64 as strings)."""
    value = fields.get(name)
    if value is None or (value == "" and required):
        if required:
            raise missing_parameter(name)
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            raise wrong_type(name, value) from None
    else:
        raise wrong_type(name, value)
    if not -2**63 <= number < 2**63:
        raise wrong_type(name, value)
    return number


_SPECIAL_DOUBLES = {"nan": float("nan"), "infinity": float("inf"), "-infinity": float("-inf"),
                    "inf": float("inf"), "-inf": float("-inf")}


def double_value(value: Any) -> float | None:
    """A proto double from JSON: a number, or a string proto JSON allows ("NaN", "Infinity", "1.5"); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        special = _SPECIAL_DOUBLES.get(value.strip().lower())
        if special is not None:
            return special
        try:
            return float(value)
        except ValueError:
            return None
    return None


def double_field(fields: dict[str, Any], name: str, *, required: bool = False) -> float | None:
    value = fields.get(name)
    if value is None or (value == "" and required):
        if required:
            raise missing_parameter(name)
        return None
    number = double_value(value)
    if number is None:
        raise wrong_type(name, value)
    return number


def list_field(fields: dict[str, Any], name: str, *, required: bool = False, query: bool = False) -> list[Any]:
    """A repeated field: a JSON array; with ``query`` (a GET request) one query value is a one-element list."""
    value = fields.get(name)
    if query and isinstance(value, str):
        value = [value]
    if value is None or (required and value == []):
        if required:
            raise missing_parameter(name)
        return []
    if not isinstance(value, list):
        raise wrong_type(name, value)
    return value


def run_id_field(fields: dict[str, Any]) -> str:
    """``run_id``, or the legacy ``run_uuid`` older clients send instead."""
    if fields.get("run_id") in (None, "") and fields.get("run_uuid") not in (None, ""):
        return string_field(fields, "run_uuid", required=True) or ""
    return string_field(fields, "run_id", required=True) or ""
