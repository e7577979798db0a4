"""Lineage: which data, code, params and people produced a run, and through it a model version.

Always rebuilt from the events (api/as_of.py), live or ``as_of`` alike, so the answer for a past
instant is computed exactly like today's: an auditor asking "which data, code and person produced
the model that served on 1 November" gets the same shape as a developer asking about now.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb
from fastapi import APIRouter

from ledgerflow.api import as_of as past
from ledgerflow.api.as_of import AsOfQuery, ReplayState, parse_as_of
from ledgerflow.api.deps import Cursor
from ledgerflow.api.errors import not_found
from ledgerflow.api.routes.entities import live_version, parse_version, stamp, version_object, when

router = APIRouter(prefix="/api/v1", tags=["lineage"])

#: run tags MLflow sets to describe the code that ran -> the names used in ``code_version``
CODE_TAGS = {"git_commit": "mlflow.source.git.commit", "git_branch": "mlflow.source.git.branch",
             "git_repo_url": "mlflow.source.git.repoURL", "source_name": "mlflow.source.name",
             "source_type": "mlflow.source.type", "entry_point": "mlflow.project.entryPoint"}
MAX_PARENT_DEPTH = 100


def _summary(state: ReplayState, run_id: str) -> dict[str, Any]:
    """Who ran what, when: enough to identify a related run without its whole body."""
    row = state.row("runs", (run_id,))
    if row is None:  # recorded as a reference, never required to exist (docs/consistency.md)
        return {"run_id": run_id, "known": False}
    return {"run_id": run_id, "known": True, "run_name": row["run_name"], "experiment_id": row["experiment_id"],
            "user_id": row["user_id"], "started_by": row.get("_created_by"), "status": row["status"],
            "lifecycle_stage": row["lifecycle_stage"], "start_time": row["start_time"], "end_time": row["end_time"]}


def _parent_chain(cursor: duckdb.DuckDBPyConnection, state: ReplayState, run_id: str,
                  as_of: datetime | None) -> list[dict[str, Any]]:
    """Parent, grandparent, ... up to the root (or an unknown run, or a cycle)."""
    chain: list[dict[str, Any]] = []
    seen = {run_id}
    parent = state.row("runs", (run_id,))["parent_run_id"]
    while parent and parent not in seen and len(chain) < MAX_PARENT_DEPTH:
        seen.add(parent)
        ancestor = past.runs_state(cursor, [parent], as_of)
        chain.append(_summary(ancestor, parent))
        row = ancestor.row("runs", (parent,))
        parent = row["parent_run_id"] if row else None
    return chain


def _children(cursor: duckdb.DuckDBPyConnection, run_id: str, as_of: datetime | None) -> list[dict[str, Any]]:
    """Runs started with this run as parent (lineage parent_of edges whose event is within the cut)."""
    cut, params = past.time_filter(as_of, "e.occurred_at")
    ids = [r[0] for r in cursor.execute(
        "SELECT DISTINCT l.target_id FROM lineage l JOIN events e USING (event_id) WHERE l.relation = 'parent_of' "
        f"AND l.source_type = 'run' AND l.source_id = ?{cut} ORDER BY 1", [run_id, *params]).fetchall()]
    state = past.runs_state(cursor, ids, as_of) if ids else ReplayState()
    return [_summary(state, child) for child in ids]


def _models_produced(registry: ReplayState, run_id: str) -> list[dict[str, Any]]:
    """The lineage ``produced`` edges of the run, as the versions they created, under their names at the cut."""
    rows = [v for v in registry.find("model_versions", "run_id", run_id) if live_version(registry, v["name"], v["version"])]
    return [{**{k: obj[k] for k in ("name", "version", "current_stage", "aliases", "creation_timestamp")},
             "created_by": row.get("_created_by")}
            for row, obj in ((r, version_object(registry, r)) for r in sorted(rows, key=lambda r: (r["name"], r["version"])))]


def run_lineage(cursor: duckdb.DuckDBPyConnection, run_id: str, as_of: datetime | None,
                registry: ReplayState | None = None) -> dict[str, Any] | None:
    """The lineage of ``run_id`` at ``as_of`` (None: now); None when the run did not exist then."""
    state = past.runs_state(cursor, [run_id], as_of)
    run = past.run_object(state, run_id, {})
    if run is None:
        return None
    tags = run["data"]["tags"]
    chain = _parent_chain(cursor, state, run_id, as_of)
    registry = registry if registry is not None else past.registry_state(cursor, as_of)
    return {"run": _summary(state, run_id), "inputs": run["inputs"], "params": run["data"]["params"],
            "code_version": {name: tags.get(tag) for name, tag in CODE_TAGS.items()},
            "tags": tags, "parent_run": chain[0] if chain else None, "parent_chain": chain,
            "child_runs": _children(cursor, run_id, as_of), "models_produced": _models_produced(registry, run_id)}


@router.get("/runs/{run_id}/lineage", summary="Datasets, params, code version, parent/child runs, models produced")
def get_run_lineage(run_id: str, cursor: Cursor, as_of: AsOfQuery = None) -> dict[str, Any]:
    moment = parse_as_of(as_of)
    lineage = run_lineage(cursor, run_id, moment)
    if lineage is None:
        raise not_found(f"run {run_id!r}{when(moment)}")
    return {"run_id": run_id, "as_of": stamp(moment), **lineage}


@router.get("/models/{name}/versions/{version}/lineage",
            summary="The source run of a model version and, through it, its data, code, params and parents")
def get_version_lineage(name: str, version: str, cursor: Cursor, as_of: AsOfQuery = None) -> dict[str, Any]:
    moment, number = parse_as_of(as_of), parse_version(version)
    registry = past.registry_state(cursor, moment)
    row = live_version(registry, name, number)
    if row is None:
        raise not_found(f"model version {name!r} v{number}{when(moment)}")
    source = run_lineage(cursor, row["run_id"], moment, registry) if row["run_id"] else None
    return {"as_of": stamp(moment),
            "model_version": {**version_object(registry, row), "created_by": row.get("_created_by"),
                              "created_at": row.get("_created_at")},
            "source_run_id": row["run_id"], "source_run": source}
