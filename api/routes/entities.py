"""Single-entity reads (run, experiment, registered model, model version), optionally as of a moment.

Live reads come from the projected tables; with ``as_of`` the entity is rebuilt from the events
that occurred at or before that instant (api/as_of.py) and serialized into the same shape.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter

from ledgerflow.api import as_of as past
from ledgerflow.api.as_of import AsOfQuery, LiveView, View, parse_as_of
from ledgerflow.api.deps import Cursor
from ledgerflow.api.entities import load_experiments, load_runs
from ledgerflow.api.errors import bad_request, not_found

router = APIRouter(prefix="/api/v1", tags=["entities"])


def when(as_of: datetime | None) -> str:
    """' as of <instant>' for 404 messages, so a client sees why a known id was not found."""
    return f" as of {as_of.isoformat().replace('+00:00', 'Z')}" if as_of else ""


def stamp(as_of: datetime | None) -> str | None:
    return as_of.isoformat().replace("+00:00", "Z") if as_of else None


# ---- runs and experiments --------------------------------------------------------------------

def run_as_of(cursor: Cursor, run_id: str, as_of: datetime | None) -> dict[str, Any] | None:
    """The run object (api/entities shape) live or as of ``as_of``; None when it did not exist."""
    if as_of is None:
        found = load_runs(cursor, [run_id])
        return found[0] if found else None
    state = past.runs_state(cursor, [run_id], as_of)
    if state.row("runs", (run_id,)) is None:
        return None
    return past.run_object(state, run_id, past.latest_metrics_as_of(cursor, run_id, as_of))


@router.get("/runs/{run_id}", summary="A run: info, params, tags, latest metrics, inputs")
def get_run(run_id: str, cursor: Cursor, as_of: AsOfQuery = None) -> dict[str, Any]:
    moment = parse_as_of(as_of)
    run = run_as_of(cursor, run_id, moment)
    if run is None:
        raise not_found(f"run {run_id!r}{when(moment)}")
    return {"run": run, "as_of": stamp(moment)}


@router.get("/experiments/{experiment_id}", summary="An experiment with its tags")
def get_experiment(experiment_id: str, cursor: Cursor, as_of: AsOfQuery = None) -> dict[str, Any]:
    moment = parse_as_of(as_of)
    if moment is None:
        found = load_experiments(cursor, [experiment_id])
        experiment = found[0] if found else None
    else:
        experiment = past.experiment_object(past.experiment_state(cursor, experiment_id, moment), experiment_id)
    if experiment is None:
        raise not_found(f"experiment {experiment_id!r}{when(moment)}")
    return {"experiment": experiment, "as_of": stamp(moment)}


# ---- the registry ----------------------------------------------------------------------------

def registry_view(cursor: Cursor, as_of: datetime | None) -> View:
    return LiveView(cursor) if as_of is None else past.registry_state(cursor, as_of)


def version_object(view: View, row: dict[str, Any]) -> dict[str, Any]:
    """A model version shaped like MLflow's ModelVersion (tags as a map, as runs have them here)."""
    name, version = row["name"], row["version"]
    tags = sorted(view.rows("model_version_tags", (name, version)), key=lambda t: t["key"])
    aliases = sorted(a["alias"] for a in view.rows("model_aliases", (name,)) if a["version"] == version)
    return {"name": name, "version": version, "creation_timestamp": row["creation_time"],
            "last_updated_timestamp": row["last_updated_time"], "current_stage": row["stage"],
            "description": row["description"], "source": row["source"], "run_id": row["run_id"],
            "artifact_uri": row["artifact_uri"], "signature": row["signature"], "status": "READY",
            "tags": {t["key"]: t["value"] for t in tags}, "aliases": aliases}


def live_version(view: View, name: str, version: int) -> dict[str, Any] | None:
    model = view.row("registered_models", (name,))
    row = view.row("model_versions", (name, version))
    if model is None or model["lifecycle_stage"] != "active" or row is None or row["lifecycle_stage"] != "active":
        return None
    return row


def model_object(view: View, name: str) -> dict[str, Any] | None:
    """A registered model shaped like MLflow's RegisteredModel; None when absent or deleted."""
    row = view.row("registered_models", (name,))
    if row is None or row["lifecycle_stage"] != "active":
        return None
    versions = [v for v in view.rows("model_versions", (name,)) if v["lifecycle_stage"] == "active"]
    latest: dict[str, dict[str, Any]] = {}
    for version in versions:  # MLflow's latest_versions: the newest version in each stage
        if version["stage"] not in latest or version["version"] > latest[version["stage"]]["version"]:
            latest[version["stage"]] = version
    tags = sorted(view.rows("registered_model_tags", (name,)), key=lambda t: t["key"])
    aliases = sorted(view.rows("model_aliases", (name,)), key=lambda a: a["alias"])
    return {"name": name, "description": row["description"], "creation_timestamp": row["creation_time"],
            "last_updated_timestamp": row["last_updated_time"], "tags": {t["key"]: t["value"] for t in tags},
            "aliases": [{"alias": a["alias"], "version": a["version"]} for a in aliases],
            "latest_versions": [version_object(view, v) for v in sorted(latest.values(), key=lambda v: v["version"])]}


def parse_version(version: str) -> int:
    """MLflow sends versions as strings; a non-integer is a client error, not a 404."""
    try:
        number = int(version)
    except ValueError:
        raise bad_request(f"model version {version!r} is not an integer") from None
    if not 0 < number < 2**63:
        raise bad_request(f"model version {version!r} is out of range (1 .. 2^63-1)")
    return number


@router.get("/models/{name}", summary="A registered model: tags, aliases, latest version per stage")
def get_model(name: str, cursor: Cursor, as_of: AsOfQuery = None) -> dict[str, Any]:
    moment = parse_as_of(as_of)
    model = model_object(registry_view(cursor, moment), name)
    if model is None:
        raise not_found(f"registered model {name!r}{when(moment)}")
    return {"registered_model": model, "as_of": stamp(moment)}


@router.get("/models/{name}/versions/{version}", summary="A model version: source run, stage, tags, aliases")
def get_model_version(name: str, version: str, cursor: Cursor, as_of: AsOfQuery = None) -> dict[str, Any]:
    moment, number = parse_as_of(as_of), parse_version(version)
    view = registry_view(cursor, moment)
    row = live_version(view, name, number)
    if row is None:
        raise not_found(f"model version {name!r} v{number}{when(moment)}")
    return {"model_version": version_object(view, row), "as_of": stamp(moment)}
