"""MLflow 3 logged models read from the projection: MLflow's JSON shape, and search_logged_models.

A model's metrics are the points logged with its ``model_id`` (table ``logged_model_metrics``, each
distinct point once). A search filters with MLflow's syntax over attributes (``name``, ``model_id``,
``model_type``, ``status``, ``source_run_id``, ``creation_timestamp`` ...), ``params.<key>``,
``tags.<key>`` and ``metrics.<key>``, and orders by attributes and ``metrics.<key>``; by default the
newest model first. As in MLflow, a metric condition holds when any point of that metric does (on one
of the ``datasets`` when given), a ``datasets`` scope alone keeps the models with a point on one of
them, and a metric order sorts by the model's latest point (newest timestamp, then highest step)
of that metric (on the order's dataset when given), models without one last. A NaN point satisfies
only ``!=`` and sorts after every number.
"""

from __future__ import annotations

from typing import Any

import duckdb

from ledgerflow.api.mlflow.protocol import does_not_exist, invalid, missing_parameter, wrong_type
from ledgerflow.api.mlflow.shapes import json_double
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


def _metrics(cursor: duckdb.DuckDBPyConnection, model_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each model's distinct metric points as MLflow's Metric JSON (unset run and dataset left out)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for model_id, key, value, timestamp, step, run_id, dataset_name, dataset_digest in cursor.execute(
            "SELECT DISTINCT model_id, key, value, timestamp, step, run_id, dataset_name, dataset_digest "
            "FROM logged_model_metrics WHERE model_id IN (SELECT unnest(?)) "
            "ORDER BY model_id, key, timestamp, step, run_id NULLS FIRST, dataset_name NULLS FIRST, "
            "dataset_digest NULLS FIRST, value", [model_ids]).fetchall():
        metric: dict[str, Any] = {"key": key, "value": json_double(value), "timestamp": timestamp, "step": step}
        for name, given in (("dataset_name", dataset_name), ("dataset_digest", dataset_digest), ("run_id", run_id)):
            if given is not None:
                metric[name] = given
        metric["model_id"] = model_id
        grouped.setdefault(model_id, []).append(metric)
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
    metrics = _metrics(cursor, model_ids)
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
        models.append({"info": info, "data": {"params": params.get(model_id, []), "metrics": metrics.get(model_id, [])}})
    return models


def logged_model_json(cursor: duckdb.DuckDBPyConnection, model_id: str, *, allow_deleted: bool = False
                      ) -> dict[str, Any]:
    found = logged_models_json(cursor, [model_id], allow_deleted=allow_deleted)
    if not found:
        raise model_not_found(model_id)
    return found[0]


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


def _condition(c: Comparison, datasets: tuple[str, list[Any]] | None) -> tuple[str, list[Any]]:
    if c.kind == METRIC:
        test, params = _test("g.value", c)
        if c.comparator != "!=":
            test = f"{test} AND NOT isnan(g.value)"  # NaN is no number: only != holds for it
        scope, scope_params = datasets if datasets is not None else ("TRUE", [])
        return (f"EXISTS (SELECT 1 FROM logged_model_metrics g WHERE g.model_id = t.model_id AND g.key = ? "
                f"AND {test} AND {scope})", [c.key, *params, *scope_params])
    if c.kind in (PARAM, TAG):
        table = "logged_model_params" if c.kind == PARAM else "logged_model_tags"
        test, params = _test("g.value", c)
        return f"EXISTS (SELECT 1 FROM {table} g WHERE g.model_id = t.model_id AND g.key = ? AND {test})", \
            [c.key, *params]
    value = c.value
    if c.key == "status" and isinstance(value, str) and c.comparator in ("=", "!="):
        value = value.upper().removeprefix(STATUS_PREFIX)
    return _test(f"t.{_ATTRIBUTE_COLUMNS[c.key]}", Comparison(c.kind, c.key, c.comparator, value, c.position))


def _dataset_scope(datasets: list[Any]) -> tuple[str, list[Any]] | None:
    """``datasets`` as a condition on a metric point ``g``: on any of them (a name, and a digest when given)."""
    alternatives, params = [], []
    for dataset in datasets:
        if not isinstance(dataset, dict) or not isinstance(dataset.get("dataset_name"), str) \
                or not dataset["dataset_name"]:
            raise invalid("`dataset_name` in the `datasets` clause must be specified.")
        digest = dataset.get("dataset_digest")
        if digest is not None and not isinstance(digest, str):
            raise wrong_type("datasets.dataset_digest", digest)
        alternatives.append("(g.dataset_name = ?" + (" AND g.dataset_digest = ?)" if digest is not None else ")"))
        params += [dataset["dataset_name"], *([digest] if digest is not None else [])]
    return (f"({' OR '.join(alternatives)})", params) if alternatives else None


def _test(column: str, c: Comparison) -> tuple[str, list[Any]]:
    if c.comparator in ("IN", "NOT IN"):
        assert isinstance(c.value, tuple)
        return f"{column} {c.comparator} ({', '.join('?' for _ in c.value)})", list(c.value)
    value = int(c.value) if isinstance(c.value, float) and c.value.is_integer() else c.value
    return f"{column} {_SQL_OPS[c.comparator]} ?", [value]


def _latest_metric_join(alias: str, key: str, item: dict[str, Any]) -> tuple[str, list[Any]]:
    """LEFT JOIN ``alias`` (model_id, value): each model's latest point of ``key`` (newest timestamp, then
    highest step, then first run id), on the order item's dataset name / digest when it gives them."""
    conditions, params = ["key = ?"], [key]
    for field in ("dataset_name", "dataset_digest"):
        given = item.get(field)
        if given is not None and given != "":
            if not isinstance(given, str):
                raise wrong_type(f"order_by.{field}", given)
            conditions.append(f"{field} = ?")
            params.append(given)
    return (f"LEFT JOIN (SELECT model_id, value FROM (SELECT model_id, value, row_number() OVER (PARTITION BY "
            f"model_id ORDER BY timestamp DESC, step DESC, run_id ASC NULLS FIRST, value DESC) AS newest "
            f"FROM logged_model_metrics WHERE {' AND '.join(conditions)}) WHERE newest = 1) {alias} "
            f"ON {alias}.model_id = t.model_id", params)


def _order(order_by: list[Any]) -> tuple[list[str], list[Any], list[str]]:
    """(joins, their parameters, ORDER BY terms) for MLflow's order_by items."""
    joins: list[str] = []
    params: list[Any] = []
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
        direction = "ASC" if ascending else "DESC"
        if "." in field:
            entity, key = field.split(".", 1)
            if entity != "metrics":
                raise invalid(f"Invalid order by field name: {field}. Only metrics are supported.")
            alias = f"o{len(joins)}"
            join, join_params = _latest_metric_join(alias, key, item)
            joins.append(join)
            params += join_params
            # numbers in the asked direction, then NaN, then models without the metric (MLflow: nulls last)
            terms += [f"CASE WHEN {alias}.value IS NULL THEN 2 WHEN isnan({alias}.value) THEN 1 ELSE 0 END",
                      f"{alias}.value {direction}"]
            continue
        key = _ALIASES.get(field, field)
        if key not in _ATTRIBUTE_COLUMNS:
            raise invalid(f"Invalid order by field name: {field}")
        seen.add(key)
        terms.append(f"t.{_ATTRIBUTE_COLUMNS[key]} {direction} NULLS LAST")
    if "creation_timestamp_ms" not in seen:
        terms.append("t.creation_time DESC")
    if "model_id" not in seen:
        terms.append("t.model_id ASC")
    return joins, params, terms


def search_logged_model_ids(cursor: duckdb.DuckDBPyConnection, experiment_ids: list[str], filter_text: str | None,
                            datasets: list[Any], order_by: list[Any], max_results: int,
                            page_token: str | None) -> tuple[list[str], str | None]:
    """One page of active logged model ids in ``experiment_ids`` matching the filter, and the next token."""
    scope = _dataset_scope(datasets)
    fingerprint = query_fingerprint("logged_models", experiment_ids, filter_text, datasets, order_by)
    offset = decode_token(page_token, fingerprint)
    joins, join_params, terms = _order(order_by)
    conditions = ["t.lifecycle_stage = 'active'", "t.experiment_id IN (SELECT unnest(?))"]
    params: list[Any] = [experiment_ids]
    comparisons = parse_filter(filter_text, LOGGED_MODELS)
    for comparison in comparisons:
        sql, values = _condition(comparison, scope)
        conditions.append(sql)
        params += values
    if scope is not None and not any(c.kind == METRIC for c in comparisons):
        # a datasets scope without a metric condition: the models with any point on those datasets
        conditions.append(f"EXISTS (SELECT 1 FROM logged_model_metrics g WHERE g.model_id = t.model_id AND {scope[0]})")
        params += scope[1]
    rows = cursor.execute(f"SELECT t.model_id FROM logged_models t {' '.join(joins)} WHERE {' AND '.join(conditions)} "
                          f"ORDER BY {', '.join(terms)} LIMIT ? OFFSET ?",
                          [*join_params, *params, max_results + 1, offset]).fetchall()
    token = encode_token(offset + max_results, fingerprint) if len(rows) > max_results else None
    return [r[0] for r in rows[:max_results]], token
