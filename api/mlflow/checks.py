"""MLflow's rules for what a tracking write may contain, with MLflow's wording.

Clients (and MLflow's own test suites) match on these messages, so they follow MLflow's phrasing:
"Invalid value ... for parameter 'metrics[3].name' supplied: ...", "'Param key' exceeds the maximum
length of 250 characters", "A batch logging request can contain at most 1000 metrics ...". Every
check runs before anything is appended: a request that fails one stores nothing.
"""

from __future__ import annotations

import json
import logging
import math
import posixpath
import re
from functools import lru_cache
from typing import Any

from ledgerflow.api.errors import ApiError
from ledgerflow.api.mlflow.protocol import double_value, invalid
from ledgerflow.schemas.limits import (
    MAX_DATASET_DIGEST_LENGTH,
    MAX_DATASET_NAME_LENGTH,
    MAX_DATASET_PROFILE_LENGTH,
    MAX_DATASET_SCHEMA_LENGTH,
    MAX_DATASET_SOURCE_LENGTH,
    MAX_ENTITIES_PER_BATCH,
    MAX_EXPERIMENT_NAME_LENGTH,
    MAX_EXPERIMENT_TAG_KEY_LENGTH,
    MAX_EXPERIMENT_TAG_VALUE_LENGTH,
    MAX_INPUT_TAG_KEY_LENGTH,
    MAX_INPUT_TAG_VALUE_LENGTH,
    MAX_KEY_LENGTH,
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_TAGS_PER_BATCH,
)

log = logging.getLogger("ledgerflow.api.mlflow")

_NAME_CHARACTERS = re.compile(r"[/\w.\- :]*")
_RUN_ID = re.compile(r"[a-zA-Z0-9][\w\-]{0,255}")
_BAD_CHARACTERS = ("Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), "
                   "colon(:) and slashes (/).")


def invalid_value(path: str, value: Any, reason: str | None = None) -> ApiError:
    shown = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    tail = f": {reason}" if reason else "."
    return invalid(f"Invalid value {shown} for parameter '{path}' supplied{tail}")


def too_long(what: str, limit: int) -> ApiError:
    return invalid(f"'{what}' exceeds the maximum length of {limit} characters")


def _resolves_elsewhere(name: str) -> bool:
    """Names double as file paths: refuse those that normalize to another name ('a//b', '../x', '/x')."""
    normalized = posixpath.normpath(name)
    return normalized != name or normalized == "." or normalized.startswith(("..", "/"))


@lru_cache(maxsize=65536)
def _name_problem(name: str) -> str | None:
    """Why a metric/param/tag key is refused, or None. Cached: the same keys arrive over and over."""
    if not _NAME_CHARACTERS.fullmatch(name):
        return _BAD_CHARACTERS
    if _resolves_elsewhere(name):
        return ("Names may be treated as files in certain cases, and must not resolve to other names when "
                f"treated as such. This name would resolve to {posixpath.normpath(name)!r}")
    return None


def check_name(name: Any, path: str, what: str) -> str:
    """A metric, param or tag key; ``path`` is the request field ("key", "metrics[2].name")."""
    if name is None:
        raise invalid_value(path, "" if what != "Metric name" else None,
                            "Metric name cannot be None. A key name must be provided." if what == "Metric name"
                            else "A key name must be provided.")
    if not isinstance(name, str):
        raise invalid_value(path, name, "it must be a string")
    problem = _name_problem(name)
    if problem:
        raise invalid_value(path, name, problem)
    if len(name) > MAX_KEY_LENGTH:
        raise too_long(what, MAX_KEY_LENGTH)
    return name


def bounded_value(value: Any, path: str, what: str, limit: int) -> str:
    """A param or tag value; like MLflow's server (MLFLOW_TRUNCATE_LONG_VALUES), a longer one is truncated."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise invalid_value(path, value, "it must be a string")
    if len(value) > limit:
        log.warning("%s of %d characters truncated to %d (%r...)", what, len(value), limit, value[:100])
        return value[:limit]
    return value


def check_run_id(run_id: str, path: str = "run_id") -> str:
    if not _RUN_ID.fullmatch(run_id):
        raise invalid_value(path, run_id)
    return run_id


def check_batch_limits(metrics: int, params: int, tags: int) -> None:
    for what, limit, count in (("metrics", MAX_METRICS_PER_BATCH, metrics),
                               ("params", MAX_PARAMS_TAGS_PER_BATCH, params),
                               ("tags", MAX_PARAMS_TAGS_PER_BATCH, tags),
                               ("metrics, params, and tags", MAX_ENTITIES_PER_BATCH, metrics + params + tags)):
        if count > limit:
            raise invalid(f"A batch logging request can contain at most {limit} {what}. Got {count} {what}. "
                          f"Please split up {what} across multiple requests and try again.")


def metric_number(value: Any, path: str, key: str, timestamp: Any) -> float:
    """A metric value: any JSON number, or the strings proto JSON uses for NaN and the infinities."""
    if value is None or value == "":
        raise invalid(f"Missing value for required parameter '{path}'.")
    if isinstance(value, bool):
        number = None
    elif isinstance(value, (int, float)):
        number = float(value)
    else:
        number = double_value(value)
    if number is None:
        raise invalid_value(path, value, f"(timestamp={timestamp}). Please specify value as a valid double "
                                         f"(64-bit floating point)")
    return number


def metric_integer(value: Any, path: str, key: str, metric_value: float, what: str) -> int:
    """A metric timestamp (non-negative) or step, as an int64; proto JSON may send it as a string."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            number = None
    if number is None or not -2**63 <= number < 2**63 or (what == "timestamp" and number < 0):
        rule = ("Timestamp must be a nonnegative long (64-bit integer) " if what == "timestamp"
                else "Step must be a valid long (64-bit integer).")
        raise invalid_value(path, value, f"metric '{key}' (value={metric_value}). {rule}")
    return number


def experiment_name(name: Any, field: str = "name") -> str:
    if name is None or name == "":
        raise invalid(f"Invalid experiment name: '{'' if name is None else name}'")
    if not isinstance(name, str):
        raise invalid(f"Invalid experiment name: {name}. Expects a string.")
    if len(name) > MAX_EXPERIMENT_NAME_LENGTH:
        raise too_long(field, MAX_EXPERIMENT_NAME_LENGTH)
    return name


def experiment_tag(key: Any, value: Any) -> tuple[str, str]:
    key = check_name(key, "key", "key")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise invalid_value("value", value, "it must be a string")
    if len(key) > MAX_EXPERIMENT_TAG_KEY_LENGTH:
        raise too_long("key", MAX_EXPERIMENT_TAG_KEY_LENGTH)
    if len(value) > MAX_EXPERIMENT_TAG_VALUE_LENGTH:
        raise too_long("value", MAX_EXPERIMENT_TAG_VALUE_LENGTH)
    return key, value


def dataset_record(dataset: Any, index: int) -> dict[str, Any]:
    """The event's ``Dataset`` record of one ``datasets[i].dataset`` of a LogInputs request."""
    if not isinstance(dataset, dict):
        raise invalid("Dataset cannot be None")
    record: dict[str, Any] = {}
    for field, limit in (("name", MAX_DATASET_NAME_LENGTH), ("digest", MAX_DATASET_DIGEST_LENGTH),
                         ("source_type", None), ("source", MAX_DATASET_SOURCE_LENGTH)):
        value = dataset.get(field)
        if value is None:
            raise invalid(f"Dataset {field} cannot be None")
        if not isinstance(value, str):
            raise invalid_value(f"datasets[{index}].dataset.{field}", value, "it must be a string")
        if limit is not None and len(value) > limit:
            raise too_long(field, limit)
        record[field] = value
    for field, limit in (("schema", MAX_DATASET_SCHEMA_LENGTH), ("profile", MAX_DATASET_PROFILE_LENGTH)):
        value = dataset.get(field)
        if value is not None and not isinstance(value, str):
            raise invalid_value(f"datasets[{index}].dataset.{field}", value, "it must be a string")
        if value is not None and len(value) > limit:
            raise too_long(field, limit)
        record[field] = value
    return record


def input_tags(tags: Any, index: int) -> list[dict[str, str]]:
    if tags is None:
        return []
    if not isinstance(tags, list):
        raise invalid_value(f"datasets[{index}].tags", tags, "it must be a list")
    result = []
    for tag in tags:
        if not isinstance(tag, dict):
            raise invalid("InputTag cannot be None")
        key, value = tag.get("key"), tag.get("value")
        if key is None:
            raise invalid("InputTag key cannot be None")
        if value is None:
            raise invalid("InputTag value cannot be None")
        if not isinstance(key, str) or not isinstance(value, str):
            raise invalid_value(f"datasets[{index}].tags", tags, "keys and values must be strings")
        if len(key) > MAX_INPUT_TAG_KEY_LENGTH:
            raise too_long("key", MAX_INPUT_TAG_KEY_LENGTH)
        if len(value) > MAX_INPUT_TAG_VALUE_LENGTH:
            raise too_long("value", MAX_INPUT_TAG_VALUE_LENGTH)
        result.append({"key": key, "value": value})
    return result
