"""Plain data objects of the SDK, shaped like MLflow's entities so scripts read the same fields."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from ledgerflow.ingest.sdk.errors import InvalidDatasetError
from ledgerflow.ingest.sdk.validation import check_length
from ledgerflow.schemas.limits import (
    MAX_DATASET_DIGEST_LENGTH,
    MAX_DATASET_NAME_LENGTH,
    MAX_DATASET_PROFILE_LENGTH,
    MAX_DATASET_SCHEMA_LENGTH,
    MAX_DATASET_SOURCE_LENGTH,
    MAX_INPUT_TAG_KEY_LENGTH,
    MAX_INPUT_TAG_VALUE_LENGTH,
)


class RunStatus:
    """Run statuses, the symbols of the ``ledgerflow.RunStatus`` Avro enum (as MLflow's)."""

    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    ALL = (RUNNING, SCHEDULED, FINISHED, FAILED, KILLED)
    TERMINATED = (FINISHED, FAILED, KILLED)


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric point for :meth:`TrackingClient.log_batch` (MLflow's Metric fields)."""

    key: str
    value: float
    timestamp: int | None = None
    step: int | None = 0


@dataclass(frozen=True, slots=True)
class Param:
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class RunTag:
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class Dataset:
    """A dataset reference for ``log_input``; any object with these attributes works too.

    ``source`` says where the data lives (a JSON string or a dict, as MLflow's DatasetSource.to_json);
    ``schema`` and ``profile`` are optional JSON strings or dicts.
    """

    name: str
    digest: str
    source: str | dict[str, Any]
    source_type: str = "local"
    schema: str | dict[str, Any] | None = None
    profile: str | dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    lifecycle_stage: str = "active"


@dataclass(slots=True)
class RunInfo:
    """What this process knows about a run (the SDK only writes; it never reads the store)."""

    run_id: str
    experiment_id: str
    run_name: str
    user_id: str
    status: str
    start_time: int
    end_time: int | None = None
    artifact_uri: str | None = None
    parent_run_id: str | None = None
    lifecycle_stage: str = "active"

    @property
    def run_uuid(self) -> str:
        return self.run_id


@dataclass(slots=True)
class RunData:
    """Params and tags this process logged to the run (metrics are not kept: they stream out)."""

    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Run:
    info: RunInfo
    data: RunData = field(default_factory=RunData)


def _as_json_text(value: Any, what: str, dataset: str) -> str | None:
    """A JSON field of a dataset: strings pass, dicts/lists are dumped, objects may offer to_json()."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if hasattr(value, "to_json"):
        return str(value.to_json())
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError) as e:
        raise InvalidDatasetError(f"dataset {dataset!r}: {what} is not JSON-serialisable: {e}") from None


def dataset_record(dataset: Any) -> dict[str, Any]:
    """The Avro ``Dataset`` record of any MLflow-Dataset-like object, with MLflow's size limits."""
    if hasattr(dataset, "_to_mlflow_entity"):  # an mlflow.data Dataset: use its flat entity form
        dataset = dataset._to_mlflow_entity()
    missing = [name for name in ("name", "digest", "source") if getattr(dataset, name, None) is None]
    if missing:
        raise InvalidDatasetError(
            f"log_input needs a dataset with name, digest and source (e.g. lf.Dataset); "
            f"{type(dataset).__name__} lacks {', '.join(missing)}"
        )
    name = dataset.name
    if not isinstance(name, str) or not name:
        raise InvalidDatasetError(f"dataset name must be a non-empty string, got {name!r}")
    source = dataset.source
    source_type = getattr(dataset, "source_type", None)
    if source_type is None and hasattr(source, "_get_source_type"):
        source_type = source._get_source_type()
    record = {
        "name": check_length("dataset name", name, MAX_DATASET_NAME_LENGTH),
        "digest": check_length(f"digest of dataset {name!r}", str(dataset.digest), MAX_DATASET_DIGEST_LENGTH),
        "source_type": str(source_type or "unknown"),
        "source": check_length(f"source of dataset {name!r}", _as_json_text(source, "source", name) or "",
                               MAX_DATASET_SOURCE_LENGTH),
        "schema": _as_json_text(getattr(dataset, "schema", None), "schema", name),
        "profile": _as_json_text(getattr(dataset, "profile", None), "profile", name),
    }
    if record["schema"] is not None:
        check_length(f"schema of dataset {name!r}", record["schema"], MAX_DATASET_SCHEMA_LENGTH)
    if record["profile"] is not None:
        check_length(f"profile of dataset {name!r}", record["profile"], MAX_DATASET_PROFILE_LENGTH)
    return record


def input_tags(tags: dict[str, Any] | None) -> list[dict[str, str]]:
    """Input tags of log_input: keys up to 255 and values up to 500 characters (MLflow's limits)."""
    if not tags:
        return []
    if not isinstance(tags, dict):
        raise InvalidDatasetError(f"input tags must be a dict, got {type(tags).__name__}")
    result = []
    for key, value in tags.items():
        if not isinstance(key, str) or not key:
            raise InvalidDatasetError(f"input tag key must be a non-empty string, got {key!r}")
        check_length("input tag key", key, MAX_INPUT_TAG_KEY_LENGTH)
        result.append({"key": key, "value": check_length(f"input tag {key!r}", str(value), MAX_INPUT_TAG_VALUE_LENGTH)})
    return result


_ADJECTIVES = (
    "amber", "brisk", "calm", "dapper", "eager", "fuzzy", "gentle", "hardy", "icy", "jolly", "keen", "lively",
    "mellow", "nimble", "opal", "plucky", "quiet", "rustic", "sunny", "tidy", "upbeat", "vivid", "witty",
    "zesty", "bold", "crisp", "dusky", "frosty", "golden", "hazel", "lucky", "misty", "noble", "polar",
    "rapid", "silver", "swift", "tawny", "velvet", "wild",
)
_NOUNS = (
    "otter", "falcon", "maple", "comet", "badger", "harbor", "lynx", "meadow", "nebula", "orchid", "pebble",
    "quokka", "raven", "sparrow", "tundra", "walrus", "yak", "zephyr", "bison", "cedar", "dolphin", "ember",
    "fjord", "gecko", "heron", "ibis", "jaguar", "kestrel", "lagoon", "marmot", "narwhal", "osprey", "puffin",
    "reef", "salmon", "thistle", "urchin", "violet", "willow", "wombat",
)


def friendly_run_name() -> str:
    """A readable default run name like ``brisk-otter-417``."""
    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.randbelow(1000)}"
