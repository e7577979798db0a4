"""What MLflow's model registry accepts as names, tags, aliases, versions and stages.

The limits and the error codes are MLflow's (mlflow/utils/validation.py), so a client gets the same
``MlflowException`` here as against MLflow's own server. A few messages keep MLflow's exact phrasing
because clients and MLflow's tests match on them; those are marked.
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any

from ledgerflow.api.mlflow.protocol import invalid, missing_parameter, wrong_type

MAX_TAG_KEY_LENGTH = 250
MAX_TAG_VALUE_LENGTH = 100_000
MAX_ALIAS_LENGTH = 255
#: alias that always means "the highest version"; reserved, never set
LATEST_ALIAS = "latest"
PROMPT_TAG = "mlflow.prompt.is_prompt"

_TAG_KEY = re.compile(r"^[/\w.\- :]*$")
_ALIAS = re.compile(r"^[\w\-]*$")
_VERSION_LIKE_ALIAS = re.compile(r"^[vV]\d+$")
#: MLflow's stage names, by their lower-case spelling, and the symbols of the ModelVersionStage enum
STAGES = {"none": "None", "staging": "Staging", "production": "Production", "archived": "Archived"}
STAGE_SYMBOL = {"None": "NONE", "Staging": "STAGING", "Production": "PRODUCTION", "Archived": "ARCHIVED"}
STAGE_NAME = {symbol: name for name, symbol in STAGE_SYMBOL.items()}
ACTIVE_STAGES = ("Staging", "Production")


def _resolves_elsewhere(name: str) -> bool:
    """Names double as file paths in some stores: refuse those that normalize to another path."""
    normalized = posixpath.normpath(name)
    return normalized != name or normalized == "." or normalized.startswith(("..", "/"))


def _shown(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def check_model_name(name: str | None, field: str = "name") -> str:
    if name is None or name.strip() == "":
        raise missing_parameter(field)
    if "/" in name or ":" in name:
        raise invalid(f"Invalid model name '{name}'. Names cannot contain '/' or ':'.")
    if _resolves_elsewhere(name):
        raise invalid(f"Invalid value {_shown(name)} for parameter '{field}' supplied: the name would resolve "
                      f"to {posixpath.normpath(name)!r} when used as a path")
    return name


def check_tag(key: Any, value: Any) -> tuple[str, str]:
    """A registry tag: a key of letters, digits, ``_ - . / :`` and spaces, at most 250 characters;
    a string value of at most 100,000 characters (a missing value is "", as in MLflow's protocol)."""
    if key is None:
        raise missing_parameter("key")
    if not isinstance(key, str):
        raise wrong_type("key", key)
    if not _TAG_KEY.match(key):
        raise invalid(f"Invalid value {_shown(key)} for parameter 'key' supplied: names may only contain "
                      f"letters, digits, underscores (_), dashes (-), periods (.), spaces, colons (:) and "
                      f"slashes (/)")
    if _resolves_elsewhere(key):
        raise invalid(f"Invalid value {_shown(key)} for parameter 'key' supplied: the name would resolve to "
                      f"{posixpath.normpath(key)!r} when used as a path")
    if len(key) > MAX_TAG_KEY_LENGTH:
        raise invalid(f"'key' exceeds the maximum length of {MAX_TAG_KEY_LENGTH} characters")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise wrong_type("value", value)
    if len(value) > MAX_TAG_VALUE_LENGTH:
        raise invalid(f"'value' exceeds the maximum length of {MAX_TAG_VALUE_LENGTH} characters")
    return key, value


def tag_list(values: list[Any]) -> list[dict[str, str]]:
    """``[{key, value}, ...]`` checked, one entry per key (a repeated key keeps its last value, as MLflow)."""
    tags: dict[str, str] = {}
    for item in values:
        if not isinstance(item, dict):
            raise wrong_type("tags", item)
        key, value = check_tag(item.get("key"), item.get("value"))
        tags[key] = value
    return [{"key": k, "value": v} for k, v in tags.items()]


def check_alias(alias: str | None) -> str:
    if alias is None or alias == "":
        raise invalid("Registered model alias name cannot be empty.")
    if not _ALIAS.match(alias):
        raise invalid(f"Invalid alias name: '{alias}'. An alias may only contain letters, digits, underscores "
                      f"(_) and dashes (-).")
    if len(alias) > MAX_ALIAS_LENGTH:
        raise invalid(f"'Registered model alias name' exceeds the maximum length of {MAX_ALIAS_LENGTH} characters")
    return alias


def check_alias_settable(alias: str) -> None:
    """'latest' and version-like names (v1, V12) are what model URIs resolve by themselves."""
    if alias.lower() == LATEST_ALIAS:
        raise invalid("'latest' alias name (case insensitive) is reserved.")
    if _VERSION_LIKE_ALIAS.match(alias):
        raise invalid(f"Version alias name '{alias}' is reserved.")


def parse_version(text: str | None) -> int:
    if text is None or text == "":
        raise missing_parameter("version")
    try:
        return int(text)
    except ValueError:
        # MLflow's wording (its tests match it)
        raise invalid(f"Parameter 'version' must be an integer, got '{text}'.") from None


def canonical_stage(stage: str) -> str:
    """'production' -> 'Production'; anything else than MLflow's four stages is a 400."""
    found = STAGES.get(stage.lower())
    if found is None:
        raise invalid(f"Invalid Model Version stage: {stage}. Value must be one of {', '.join(STAGES.values())}.")
    return found
