"""Registered models and model versions read from the projection, shaped as MLflow's JSON.

Entities are loaded in bulk (one query per table for a whole page), so a search page costs a fixed
number of queries. Deleted models and versions stay in the tables (lifecycle_stage 'deleted'); every
read here sees only active ones, as MLflow, which deletes them.
"""

from __future__ import annotations

from typing import Any

import duckdb

from ledgerflow.api.mlflow.protocol import does_not_exist
from ledgerflow.api.mlflow.registry_validation import STAGE_NAME

_VERSION_COLUMNS = ("name", "version", "source", "run_id", "artifact_uri", "description", "stage", "creation_time",
                    "last_updated_time", "model_id", "run_link")
_INT64 = 2**63


def model_not_found(name: str) -> Exception:
    # MLflow's wording: clients and MLflow's tests match "Registered Model with name=... not found"
    return does_not_exist(f"Registered Model with name={name} not found")


def version_not_found(name: str, version: int | str) -> Exception:
    return does_not_exist(f"Model Version (name={name}, version={version}) not found")


def _rows(cursor: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    result = cursor.execute(sql, params)
    names = [d[0] for d in result.description]
    return [dict(zip(names, values, strict=True)) for values in result.fetchall()]


def model_row(cursor: duckdb.DuckDBPyConnection, name: str) -> dict[str, Any] | None:
    """The active registered model ``name``, or None."""
    found = _rows(cursor, "SELECT * FROM registered_models WHERE name = ? AND lifecycle_stage = 'active'", [name])
    return found[0] if found else None


def require_model(cursor: duckdb.DuckDBPyConnection, name: str) -> dict[str, Any]:
    row = model_row(cursor, name)
    if row is None:
        raise model_not_found(name)
    return row


def version_row(cursor: duckdb.DuckDBPyConnection, name: str, version: int) -> dict[str, Any] | None:
    """The active version, or None (also for numbers no version can have)."""
    if not 0 < version < _INT64:
        return None
    found = _rows(cursor, f"SELECT {', '.join(_VERSION_COLUMNS)} FROM model_versions "
                          "WHERE name = ? AND version = ? AND lifecycle_stage = 'active'", [name, version])
    return found[0] if found else None


def require_version(cursor: duckdb.DuckDBPyConnection, name: str, version: int) -> dict[str, Any]:
    row = version_row(cursor, name, version)
    if row is None:
        raise version_not_found(name, version)
    return row


def next_version(cursor: duckdb.DuckDBPyConnection, name: str) -> int:
    """One above the highest number the model ever used: deleted versions' numbers are not reused."""
    return cursor.execute("SELECT coalesce(max(version), 0) + 1 FROM model_versions WHERE name = ?", [name]).fetchone()[0]


def alias_version(cursor: duckdb.DuckDBPyConnection, name: str, alias: str) -> int | None:
    found = cursor.execute("SELECT version FROM model_aliases WHERE name = ? AND alias = ?", [name, alias]).fetchone()
    return found[0] if found else None


def latest_version_number(cursor: duckdb.DuckDBPyConnection, name: str, stage: str | None = None) -> int | None:
    """The highest active version (of ``stage``, a ModelVersionStage symbol, when given)."""
    sql = "SELECT max(version) FROM model_versions WHERE name = ? AND lifecycle_stage = 'active'"
    params: list[Any] = [name]
    if stage is not None:
        sql += " AND stage = ?"
        params.append(stage)
    return cursor.execute(sql, params).fetchone()[0]


# ---- JSON ----------------------------------------------------------------------------------------

def _tags_by_owner(cursor: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> dict[Any, list[dict[str, str]]]:
    grouped: dict[Any, list[dict[str, str]]] = {}
    for *owner, key, value in cursor.execute(sql, params).fetchall():
        grouped.setdefault(tuple(owner) if len(owner) > 1 else owner[0], []).append({"key": key, "value": value})
    return grouped


def _version_object(row: dict[str, Any], tags: list[dict[str, str]], aliases: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": row["name"], "version": str(row["version"]), "creation_timestamp": row["creation_time"],
        "last_updated_timestamp": row["last_updated_time"], "current_stage": STAGE_NAME[row["stage"]],
        "source": row["source"], "status": "READY", "tags": tags, "aliases": aliases,
    }
    for field in ("description", "run_id", "run_link", "model_id"):
        if row[field] is not None:
            body[field] = row[field]
    return body


def versions_json(cursor: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """MLflow ModelVersion objects for version rows (as :func:`version_row` returns), in their order."""
    if not rows:
        return []
    names = sorted({r["name"] for r in rows})
    tags = _tags_by_owner(cursor, "SELECT name, version, key, value FROM model_version_tags "
                                  "WHERE name IN (SELECT unnest(?)) ORDER BY name, version, key", [names])
    aliases: dict[tuple[str, int], list[str]] = {}
    for name, alias, version in cursor.execute("SELECT name, alias, version FROM model_aliases WHERE name IN "
                                               "(SELECT unnest(?)) ORDER BY name, alias", [names]).fetchall():
        aliases.setdefault((name, version), []).append(alias)
    return [_version_object(r, tags.get((r["name"], r["version"]), []), aliases.get((r["name"], r["version"]), []))
            for r in rows]


def version_rows(cursor: duckdb.DuckDBPyConnection, keys: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """Active version rows for (name, version) keys, in the order of ``keys``."""
    if not keys:
        return []
    found = _rows(cursor, f"SELECT {', '.join(_VERSION_COLUMNS)} FROM model_versions v "
                          "JOIN (SELECT unnest(?) AS k_name, unnest(?) AS k_version) k "
                          "ON v.name = k.k_name AND v.version = k.k_version WHERE v.lifecycle_stage = 'active'",
                  [[k[0] for k in keys], [k[1] for k in keys]])
    by_key = {(r["name"], r["version"]): r for r in found}
    return [by_key[k] for k in keys if k in by_key]


def latest_version_rows(cursor: duckdb.DuckDBPyConnection, names: list[str],
                        stages: list[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Per model, its newest active version in each stage (of ``stages``, symbols, when given), by version."""
    if not names:
        return {}
    stage_filter = " AND stage IN (SELECT unnest(?))" if stages is not None else ""
    params: list[Any] = [names, *([stages] if stages is not None else [])]
    found = _rows(cursor, f"SELECT {', '.join(_VERSION_COLUMNS)} FROM model_versions WHERE name IN (SELECT unnest(?)) "
                          f"AND lifecycle_stage = 'active'{stage_filter} "
                          "QUALIFY row_number() OVER (PARTITION BY name, stage ORDER BY version DESC) = 1 "
                          "ORDER BY name, version", params)
    grouped: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for row in found:
        grouped[row["name"]].append(row)
    return grouped


def models_json(cursor: duckdb.DuckDBPyConnection, names: list[str]) -> list[dict[str, Any]]:
    """MLflow RegisteredModel objects (tags, aliases, latest version per stage) for active ``names``, in order."""
    if not names:
        return []
    rows = {r["name"]: r for r in _rows(cursor, "SELECT * FROM registered_models WHERE name IN (SELECT unnest(?)) "
                                                "AND lifecycle_stage = 'active'", [names])}
    tags = _tags_by_owner(cursor, "SELECT name, key, value FROM registered_model_tags WHERE name IN "
                                  "(SELECT unnest(?)) ORDER BY name, key", [names])
    aliases: dict[str, list[dict[str, str]]] = {}
    for name, alias, version in cursor.execute("SELECT name, alias, version FROM model_aliases WHERE name IN "
                                               "(SELECT unnest(?)) ORDER BY name, alias", [names]).fetchall():
        aliases.setdefault(name, []).append({"alias": alias, "version": str(version)})
    latest = latest_version_rows(cursor, names)
    latest_json = iter(versions_json(cursor, [v for name in names if name in rows for v in latest[name]]))
    models = []
    for name in names:
        row = rows.get(name)
        if row is None:
            continue
        body: dict[str, Any] = {"name": name, "creation_timestamp": row["creation_time"],
                                "last_updated_timestamp": row["last_updated_time"],
                                "latest_versions": [next(latest_json) for _ in latest[name]],
                                "tags": tags.get(name, []), "aliases": aliases.get(name, [])}
        if row["description"] is not None:
            body["description"] = row["description"]
        models.append(body)
    return models


def model_json(cursor: duckdb.DuckDBPyConnection, name: str) -> dict[str, Any]:
    found = models_json(cursor, [name])
    if not found:
        raise model_not_found(name)
    return found[0]


def version_json(cursor: duckdb.DuckDBPyConnection, name: str, version: int) -> dict[str, Any]:
    return versions_json(cursor, [require_version(cursor, name, version)])[0]
