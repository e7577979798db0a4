"""MLflow 3 logged models read from the projection: MLflow's JSON shape, and search_logged_models.

A search filters with MLflow's syntax over attributes (``name``, ``model_id``, ``model_type``,
``status``, ``source_run_id``, ``creation_timestamp`` ...), ``params.<key>`` and ``tags.<key>``, and
orders by attributes; by default the newest model first. Metrics linked to a logged model are not
recorded yet (the tracking events carry no model id), so ``metrics.<key>`` conditions match no model,
``metrics.<key>`` ordering leaves the order to the tie-breaks, and a ``datasets`` scope (which only
selects metrics) matches nothing.
"""

from __future__ import annotations

from typing import Any

import duckdb

from ledgerflow.api.mlflow.protocol import does_not_exist, invalid, missing_parameter, wrong_type
from ledgerflow.api.search.filter_parser import Comparison, parse_filter
from ledgerflow.api.search.grammar import ATTRIBUTE, METRIC, NUMERIC_COMPARATORS, PARAM, TAG, Target
from ledgerflow.api.search.paging import decode_token, encode_token, query_fingerprint

STATUS_PREFIX = "LOGGED_MODEL_"
#: MLflow's LoggedModelStatus numbers, for clients that send the enum as a number
STATUS_NUMBERS = {1: "PENDING", 2: "READY", 3: "UPLOAD_FAILED"}
_STRING_COMPARATORS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
_ATTRIBUTE_COLUMNS = {"model_id": "model_id", "name": "name", "model_type": "model_type", "status": "status",
                      "source_run_id": "source_run_id", "experiment_id": "experiment_id",
                      "artifact_location": "artifact_location", "status_message": "status_message",
                      "creation_timestamp_ms": "creation_time", "last_updated_timestamp_ms": "last_updated_time"}
_ALIASES = {"creation_time": "creation_timestamp_ms", "creation_timestamp": "creation_timestamp_ms",
            "last_updated_timestamp": "last_updated_timestamp_ms", "artifact_uri": "artifact_location"}

LOGGED_MODELS = Target(
    name="logged models", table="logged_models", id_column="model_id",
    prefixes={"attributes": ATTRIBUTE, "attribute": ATTRIBUTE, "metrics": METRIC, "metric": METRIC,
              "params": PARAM, "param": PARAM, "tags": TAG, "tag": TAG},
    key_tables={}, bare_names_are_attributes=True, attribute_aliases=_ALIASES,
    string_attributes=frozenset(k for k in _ATTRIBUTE_COLUMNS if not k.endswith("_ms")),
    numeric_attributes=frozenset({"creation_timestamp_ms", "last_updated_timestamp_ms"}),
    comparators={METRIC: NUMERIC_COMPARATORS, PARAM: _STRING_COMPARATORS, TAG: _STRING_COMPARATORS},
)
_SQL_OPS = {"=": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">=", "LIKE": "LIKE", "ILIKE": "ILIKE"}


def model_not_found(model_id: str) -> Exception:
    return does_not_exist(f"Logged model with ID '{model_id}' not found.")


def logged_model_row(cursor: duckdb.DuckDBPyConnection, model_id: str, *, allow_deleted: bool = False
                     ) -> dict[str, Any] | None:
    result = cursor.execute("SELECT * FROM logged_models WHERE model_id = ?"
                            + ("" if allow_deleted else " AND lifecycle_stage = 'active'"), [model_id])
    names = [d[0] for d in result.description]
    found = result.fetchone()
    return dict(zip(names, found, strict=True)) if found else None


def require_logged_model(cursor: duckdb.DuckDBPyConnection, model_id: str, *, allow_deleted: bool = False
                         ) -> dict[str, Any]:
    row = logged_model_row(cursor, model_id, allow_deleted=allow_deleted)
    if row is None:
        raise model_not_found(model_id)
    return row


def _pairs(cursor: duckdb.DuckDBPyConnection, table: str, model_ids: list[str]) -> dict[str, list[dict[str, str]]]:
    grouped: dict[str, list[dict[str, str]]] = {}
    for model_id, key, value in cursor.execute(f"SELECT model_id, key, value FROM {table} WHERE model_id IN "
                                               "(SELECT unnest(?)) ORDER BY model_id, key", [model_ids]).fetchall():
        grouped.setdefault(model_id, []).append({"key": key, "value": value})
    return grouped


def logged_models_json(cursor: duckdb.DuckDBPyConnection, model_ids: list[str], *,
                       allow_deleted: bool = False) -> list[dict[str, Any]]:
    """MLflow LoggedModel objects ({info, data}) for ``model_ids``, in their order (missing ones left out)."""
    if not model_ids:
        return []
    result = cursor.execute("SELECT * FROM logged_models WHERE model_id IN (SELECT unnest(?))"
                            + ("" if allow_deleted else " AND lifecycle_stage = 'active'"), [model_ids])
    names = [d[0] for d in result.description]
    rows = {r[0]: dict(zip(names, r, strict=True)) for r in result.fetchall()}
    tags, params = _pairs(cursor, "logged_model_tags", model_ids), _pairs(cursor, "logged_model_params", model_ids)
    models = []
    for model_id in model_ids:
        row = rows.get(model_id)
        if row is None:
            continue
        info: dict[str, Any] = {
            "model_id": model_id, "experiment_id": row["experiment_id"], "name": row["name"],
            "creation_timestamp_ms": row["creation_time"], "last_updated_timestamp_ms": row["last_updated_time"],
            "artifact_uri": row["artifact_location"], "status": STATUS_PREFIX + row["status"],
            "tags": tags.get(model_id, []),
        }
        for field in ("model_type", "source_run_id", "status_message"):
            if row[field] is not None:
                info[field] = row[field]
        models.append({"info": info, "data": {"params": params.get(model_id, []), "metrics": []}})
    return models


def logged_model_json(cursor: duckdb.DuckDBPyConnection, model_id: str, *, allow_deleted: bool = False
                      ) -> dict[str, Any]:
    found = logged_models_json(cursor, [model_id], allow_deleted=allow_deleted)
    if not found:
        raise model_not_found(model_id)
    return found[0]


def run_outputs_json(cursor: duckdb.DuckDBPyConnection, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each run's MLflow ``RunOutputs`` ({"model_outputs": [{model_id, step}]}), for the run JSON of get_run."""
    outputs: dict[str, dict[str, Any]] = {run_id: {"model_outputs": []} for run_id in run_ids}
    if run_ids:
        for run_id, model_id, step in cursor.execute(
                "SELECT run_id, model_id, step FROM run_outputs WHERE run_id IN (SELECT unnest(?)) "
                "ORDER BY run_id, step, model_id", [run_ids]).fetchall():
            outputs[run_id]["model_outputs"].append({"model_id": model_id, "step": step})
    return outputs


# ---- search --------------------------------------------------------------------------------------

def status_of(value: Any, field: str = "status") -> str:
    """READY / PENDING / UPLOAD_FAILED from MLflow's enum name (LOGGED_MODEL_READY), bare name or number."""
    if isinstance(value, int) and not isinstance(value, bool) and value in STATUS_NUMBERS:
        return STATUS_NUMBERS[value]
    if isinstance(value, str):
        name = value.upper().removeprefix(STATUS_PREFIX)
        if name.isdigit() and int(name) in STATUS_NUMBERS:
            return STATUS_NUMBERS[int(name)]
        if name in STATUS_NUMBERS.values():
            return name
    raise invalid(f"Invalid value {value!r} for parameter '{field}': use LOGGED_MODEL_READY or "
                  f"LOGGED_MODEL_UPLOAD_FAILED (or LOGGED_MODEL_PENDING)")


def _condition(c: Comparison) -> tuple[str, list[Any]]:
    if c.kind == METRIC:
        return "FALSE", []  # no metric is linked to a logged model yet (module docstring)
    if c.kind in (PARAM, TAG):
        table = "logged_model_params" if c.kind == PARAM else "logged_model_tags"
        test, params = _test("g.value", c)
        return f"EXISTS (SELECT 1 FROM {table} g WHERE g.model_id = t.model_id AND g.key = ? AND {test})", \
            [c.key, *params]
    value = c.value
    if c.key == "status" and isinstance(value, str) and c.comparator in ("=", "!="):
        value = value.upper().removeprefix(STATUS_PREFIX)
    return _test(f"t.{_ATTRIBUTE_COLUMNS[c.key]}", Comparison(c.kind, c.key, c.comparator, value, c.position))


def _test(column: str, c: Comparison) -> tuple[str, list[Any]]:
    if c.comparator in ("IN", "NOT IN"):
        assert isinstance(c.value, tuple)
        return f"{column} {c.comparator} ({', '.join('?' for _ in c.value)})", list(c.value)
    value = int(c.value) if isinstance(c.value, float) and c.value.is_integer() else c.value
    return f"{column} {_SQL_OPS[c.comparator]} ?", [value]


def _order_terms(order_by: list[Any]) -> list[str]:
    terms: list[str] = []
    seen: set[str] = set()
    for item in order_by:
        if not isinstance(item, dict):
            raise wrong_type("order_by", item)
        field = item.get("field_name")
        if not isinstance(field, str) or not field:
            raise missing_parameter("order_by.field_name")
        ascending = item.get("ascending", True)
        if not isinstance(ascending, bool):
            raise wrong_type("order_by.ascending", ascending)
        if "." in field:
            entity = field.split(".", 1)[0]
            if entity != "metrics":
                raise invalid(f"Invalid order by field name: {field}. Only metrics are supported.")
            continue  # no metric is linked to a logged model yet: every model ties
        key = _ALIASES.get(field, field)
        if key not in _ATTRIBUTE_COLUMNS:
            raise invalid(f"Invalid order by field name: {field}")
        seen.add(key)
        terms.append(f"t.{_ATTRIBUTE_COLUMNS[key]} {'ASC' if ascending else 'DESC'} NULLS LAST")
    if "creation_timestamp_ms" not in seen:
        terms.append("t.creation_time DESC")
    if "model_id" not in seen:
        terms.append("t.model_id ASC")
    return terms


def search_logged_model_ids(cursor: duckdb.DuckDBPyConnection, experiment_ids: list[str], filter_text: str | None,
                            datasets: list[Any], order_by: list[Any], max_results: int,
                            page_token: str | None) -> tuple[list[str], str | None]:
    """One page of active logged model ids in ``experiment_ids`` matching the filter, and the next token."""
    for dataset in datasets:
        if not isinstance(dataset, dict) or not dataset.get("dataset_name"):
            raise invalid("`dataset_name` in the `datasets` clause must be specified.")
    fingerprint = query_fingerprint("logged_models", experiment_ids, filter_text, datasets, order_by)
    offset = decode_token(page_token, fingerprint)
    conditions = ["t.lifecycle_stage = 'active'", "t.experiment_id IN (SELECT unnest(?))"]
    params: list[Any] = [experiment_ids]
    for comparison in parse_filter(filter_text, LOGGED_MODELS):
        sql, values = _condition(comparison)
        conditions.append(sql)
        params += values
    if datasets:
        conditions.append("FALSE")  # a datasets scope selects models by their metrics on those datasets
    rows = cursor.execute(f"SELECT t.model_id FROM logged_models t WHERE {' AND '.join(conditions)} "
                          f"ORDER BY {', '.join(_order_terms(order_by))} LIMIT ? OFFSET ?",
                          [*params, max_results + 1, offset]).fetchall()
    token = encode_token(offset + max_results, fingerprint) if len(rows) > max_results else None
    return [r[0] for r in rows[:max_results]], token
