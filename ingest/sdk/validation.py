"""Input rules of the SDK, checked at the call so a bad value never reaches the event log.

The rules follow MLflow's, and the limits are MLflow's (schemas/limits.py, shared with the
server), so a script that MLflow accepts is accepted here; messages are our own and name the bad value.
"""

from __future__ import annotations

import math
import numbers
import operator
import re
from collections.abc import Mapping
from typing import Any

from ledgerflow.ingest.sdk.errors import (
    BatchLimitError,
    InvalidIdError,
    InvalidKeyError,
    InvalidMetricValueError,
    InvalidStepError,
    ValueTooLongError,
)
from ledgerflow.schemas.limits import (
    MAX_ENTITIES_PER_BATCH,
    MAX_EXPERIMENT_NAME_LENGTH,
    MAX_KEY_LENGTH,
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_VALUE_LENGTH,
    MAX_PARAMS_TAGS_PER_BATCH,
    MAX_TAG_VALUE_LENGTH,
)

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_KEY_CHARACTERS = re.compile(r"[/\w.\- :]+")
_RUN_ID = re.compile(r"[0-9a-f]{32}")
_EXPERIMENT_ID = re.compile(r"[a-zA-Z0-9][\w\-]{0,63}")
_KEY_RULE = ("keys may contain only alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), "
             "colons (:) and slashes (/)")


def _show(value: Any, limit: int = 80) -> str:
    """A repr short enough for an error message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def check_key(key: Any, what: str = "key") -> str:
    """A metric, param or tag key: MLflow's character set, at most 250 characters, no path tricks."""
    if not isinstance(key, str):
        raise InvalidKeyError(f"{what} must be a string, got {type(key).__name__} {_show(key)}")
    if not key:
        raise InvalidKeyError(f"{what} must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(f"{what} {_show(key)} is {len(key)} characters; the limit is {MAX_KEY_LENGTH}")
    if not _KEY_CHARACTERS.fullmatch(key):
        raise InvalidKeyError(f"invalid {what} {_show(key)}: {_KEY_RULE}")
    check_relative_path(key, what, InvalidKeyError)
    return key


def check_relative_path(path: str, what: str, error: type[Exception] = InvalidKeyError) -> str:
    """Keys double as file names: reject absolute paths, '.'/'..' segments and empty segments."""
    if path.startswith("/"):
        raise error(f"invalid {what} {_show(path)}: must not start with '/'")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise error(f"invalid {what} {_show(path)}: must not contain empty, '.' or '..' path segments")
    return path


def metric_value(key: str, value: Any) -> float:
    """A metric value as float. Any real number (including NaN and +/-inf) or scalar with __float__."""
    if isinstance(value, (str, bytes, complex)) or value is None:
        raise InvalidMetricValueError(
            f"metric {key!r}: value must be a number, got {type(value).__name__} {_show(value)}"
        )
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError) as e:
        raise InvalidMetricValueError(
            f"metric {key!r}: value must be a number, got {type(value).__name__} {_show(value)} ({e})"
        ) from None


def integer(key: str, what: str, value: Any) -> int:
    """A step or timestamp: an int (or numpy integer, or integral float) within int64."""
    if isinstance(value, bool):
        raise InvalidStepError(f"metric {key!r}: {what} must be an integer, got bool {value!r}")
    if isinstance(value, float) or (isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)):
        number = float(value)
        if not math.isfinite(number) or not number.is_integer():
            raise InvalidStepError(f"metric {key!r}: {what} must be an integer, got {_show(value)}")
        result = int(number)
    else:
        try:
            result = operator.index(value)
        except TypeError:
            raise InvalidStepError(
                f"metric {key!r}: {what} must be an integer, got {type(value).__name__} {_show(value)}"
            ) from None
    if not INT64_MIN <= result <= INT64_MAX:
        raise InvalidStepError(f"metric {key!r}: {what} {result} is outside the int64 range")
    return result


def check_length(what: str, value: str, limit: int) -> str:
    if len(value) > limit:
        raise ValueTooLongError(f"{what} is {len(value)} characters; the limit is {limit}: {_show(value)}")
    return value


def param_value(key: str, value: Any) -> str:
    """A param value as the string MLflow would store (str(value)), at most 6000 characters."""
    return check_length(f"value of param {key!r}", str(value), MAX_PARAM_VALUE_LENGTH)


def tag_value(key: str, value: Any) -> str:
    """A tag value as a string, at most 8000 characters."""
    return check_length(f"value of tag {key!r}", str(value), MAX_TAG_VALUE_LENGTH)


def tags_list(tags: Mapping[str, Any] | None, what: str = "tag") -> list[dict[str, str]]:
    """Checked tags as Avro KeyValue records."""
    if tags is None:
        return []
    if not isinstance(tags, Mapping):
        raise InvalidKeyError(f"{what}s must be a dict of key -> value, got {type(tags).__name__}")
    return [{"key": check_key(k, f"{what} key"), "value": tag_value(k, v)} for k, v in tags.items()]


def run_id(value: Any) -> str:
    """Run ids are 32 lowercase hex characters (uuid4 hex), as MLflow's."""
    if not isinstance(value, str) or not _RUN_ID.fullmatch(value):
        raise InvalidIdError(f"invalid run id {_show(value)}: expected 32 lowercase hex characters")
    return value


def experiment_id(value: Any) -> str:
    """Experiment ids: MLflow's rule, an alphanumeric then up to 63 alphanumerics, '_' or '-'."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _EXPERIMENT_ID.fullmatch(value):
        raise InvalidIdError(
            f"invalid experiment id {_show(value)}: expected an alphanumeric followed by up to 63 "
            "alphanumerics, underscores or dashes"
        )
    return value


def experiment_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidKeyError(f"experiment name must be a non-empty string, got {_show(value)}")
    return check_length("experiment name", value, MAX_EXPERIMENT_NAME_LENGTH)


def run_name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidKeyError(f"run name must be a non-empty string, got {_show(value)}")
    return check_length("run name", value, MAX_TAG_VALUE_LENGTH)


def batch_sizes(metrics: int, params: int, tags: int) -> None:
    """MLflow's log_batch limits: 1000 metrics, 100 params, 100 tags, 1000 entities in all."""
    for what, count, limit in (("metrics", metrics, MAX_METRICS_PER_BATCH),
                               ("params", params, MAX_PARAMS_TAGS_PER_BATCH),
                               ("tags", tags, MAX_PARAMS_TAGS_PER_BATCH)):
        if count > limit:
            raise BatchLimitError(f"log_batch got {count} {what}; at most {limit} fit in one batch, split the call")
    total = metrics + params + tags
    if total > MAX_ENTITIES_PER_BATCH:
        raise BatchLimitError(
            f"log_batch got {total} metrics, params and tags in all; at most {MAX_ENTITIES_PER_BATCH} fit in one batch"
        )
