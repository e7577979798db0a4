"""search_registered_models and search_model_versions: MLflow's filter and order_by over the registry.

Filters use the shared parser (api/search/filter_parser.py) with the registry's identifiers:
registered models filter on ``name`` and ``tags.<key>``; model versions on ``name``, ``run_id``,
``source_path``, ``version_number`` and ``tags.<key>``. Conditions are AND-joined, compiled into one
parameterized DuckDB query; tag conditions are EXISTS subqueries, so a model matches only when it
has the tag. Prompts (MLflow's prompt registry stores them as models tagged
``mlflow.prompt.is_prompt = 'true'``) are left out unless the filter asks for them, as MLflow does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb

from ledgerflow.api.mlflow.protocol import invalid
from ledgerflow.api.mlflow.registry_validation import PROMPT_TAG
from ledgerflow.api.search.filter_parser import Comparison, parse_filter
from ledgerflow.api.search.grammar import ATTRIBUTE, TAG, Target
from ledgerflow.api.search.paging import decode_token, encode_token, query_fingerprint

_TAG_COMPARATORS = ("=", "!=", "LIKE", "ILIKE")
_PREFIXES = {"tags": TAG, "tag": TAG, "attribute": ATTRIBUTE, "attributes": ATTRIBUTE}

REGISTERED_MODELS = Target(
    name="registered models", table="registered_models", id_column="name", prefixes=_PREFIXES, key_tables={},
    string_attributes=frozenset({"name"}), numeric_attributes=frozenset(), bare_names_are_attributes=True,
    comparators={TAG: _TAG_COMPARATORS},
)
MODEL_VERSIONS = Target(
    name="model versions", table="model_versions", id_column="name", prefixes=_PREFIXES, key_tables={},
    string_attributes=frozenset({"name", "run_id", "source_path"}), numeric_attributes=frozenset({"version_number"}),
    bare_names_are_attributes=True, comparators={TAG: _TAG_COMPARATORS},
)
#: filter attribute -> column of the searched table (alias t)
_COLUMNS = {"name": "t.name", "run_id": "t.run_id", "source_path": "t.source", "version_number": "t.version"}
#: order_by key -> column, per target
_ORDER_COLUMNS = {
    "registered models": {"name": "t.name", "timestamp": "t.last_updated_time",
                          "last_updated_timestamp": "t.last_updated_time", "creation_timestamp": "t.creation_time"},
    "model versions": {"name": "t.name", "version_number": "t.version", "creation_timestamp": "t.creation_time",
                       "last_updated_timestamp": "t.last_updated_time", "timestamp": "t.last_updated_time"},
}
_SQL_OPS = {"=": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">=", "LIKE": "LIKE", "ILIKE": "ILIKE"}


@dataclass
class _Sql:
    conditions: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, condition: str, *params: Any) -> None:
        self.conditions.append(condition)
        self.params.extend(params)


def _comparisons(text: str | None, target: Target) -> list[Comparison]:
    comparisons = parse_filter(text, target)  # FilterError is a 400 (InvalidInputError)
    for c in comparisons:
        if c.kind == ATTRIBUTE and c.comparator in ("IN", "NOT IN") and c.key not in ("name", "run_id"):
            raise invalid(f"the filter cannot use {c.comparator} with {c.key}: only name and run_id take a list")
        if c.key == "version_number" and isinstance(c.value, float) and not c.value.is_integer():
            raise invalid(f"Invalid value for numeric attribute 'version_number': {c.value!r}")
    return comparisons


def _querying_prompts(comparisons: list[Comparison]) -> bool:
    for c in comparisons:
        if c.kind == TAG and c.key == PROMPT_TAG:
            value = str(c.value).lower()
            return (c.comparator == "=" and value == "true") or (c.comparator == "!=" and value == "false")
    return False


def _compile_filter(comparisons: list[Comparison], tag_table: str, owner: str) -> _Sql:
    """WHERE conditions over alias ``t``; ``owner`` joins a tag row to ``t`` (e.g. name and version).

    A prompt is excluded by name: any of the model's rows tagged as a prompt marks the whole model."""
    sql = _Sql()
    prompts = _querying_prompts(comparisons)
    for c in comparisons:
        if c.kind == TAG:
            if c.key == PROMPT_TAG and not prompts:
                continue  # the exclusion below decides about prompts
            sql.add(f"EXISTS (SELECT 1 FROM {tag_table} g WHERE {owner} AND g.key = ? AND g.value {_SQL_OPS[c.comparator]} ?)",
                    c.key, c.value)
            continue
        column = _COLUMNS[c.key]
        value = int(c.value) if c.key == "version_number" else c.value
        if c.comparator in ("IN", "NOT IN"):
            assert isinstance(value, tuple)
            sql.add(f"{column} {c.comparator} ({', '.join('?' for _ in value)})", *value)
        else:
            sql.add(f"{column} {_SQL_OPS[c.comparator]} ?", value)
    if not prompts:
        sql.add(f"NOT EXISTS (SELECT 1 FROM {tag_table} g WHERE g.name = t.name AND g.key = ? AND g.value = 'true')",
                PROMPT_TAG)
    return sql


def _parse_order_clause(clause: Any, target: Target) -> tuple[str, bool]:
    """``key [ASC|DESC]`` with an optional ``attribute.`` prefix -> (key, ascending)."""
    if not isinstance(clause, str) or not clause.strip():
        raise invalid(f"Invalid order_by clause {clause!r}: expected '<key> [ASC|DESC]'")
    tokens = clause.replace("`", " ").split()
    if len(tokens) > 2:
        raise invalid(f"Invalid order_by clause '{clause}'. Could not be parsed.")
    ascending = True
    if len(tokens) == 2:
        if tokens[1].lower() not in ("asc", "desc"):
            raise invalid(f"Invalid ordering key in order_by clause '{clause}': expected ASC or DESC.")
        ascending = tokens[1].lower() == "asc"
    key = tokens[0]
    prefix, _, rest = key.partition(".")
    if rest and prefix.lower() in ("attribute", "attributes"):
        key = rest
    columns = _ORDER_COLUMNS[target.name]
    if key not in columns:
        raise invalid(f"Invalid order by key '{key}' specified. Valid keys are {sorted(columns)}")
    return key, ascending


def _order_terms(order_by: list[Any], target: Target, tiebreaks: list[tuple[str, bool]]) -> list[str]:
    columns = _ORDER_COLUMNS[target.name]
    terms, seen = [], set()
    for clause in order_by:
        key, ascending = _parse_order_clause(clause, target)
        column = columns[key]
        if column in seen:
            raise invalid(f"`order_by` contains duplicate fields: {order_by}")
        seen.add(column)
        terms.append(f"{column} {'ASC' if ascending else 'DESC'}")
    for key, ascending in tiebreaks:
        if columns[key] not in seen:
            terms.append(f"{columns[key]} {'ASC' if ascending else 'DESC'}")
    return terms


@dataclass
class Page:
    keys: list[Any]
    next_page_token: str | None


def _page(cursor: duckdb.DuckDBPyConnection, select: str, sql: _Sql, terms: list[str], *, max_results: int,
          page_token: str | None, fingerprint: str) -> tuple[list[tuple[Any, ...]], str | None]:
    offset = decode_token(page_token, fingerprint)
    where = " WHERE " + " AND ".join(sql.conditions) if sql.conditions else ""
    rows = cursor.execute(f"{select}{where} ORDER BY {', '.join(terms)} LIMIT ? OFFSET ?",
                          [*sql.params, max_results + 1, offset]).fetchall()
    token = encode_token(offset + max_results, fingerprint) if len(rows) > max_results else None
    return rows[:max_results], token


def search_model_names(cursor: duckdb.DuckDBPyConnection, filter_text: str | None, order_by: list[Any],
                       max_results: int, page_token: str | None) -> Page:
    """Active registered model names matching the filter, ordered (then by name), one page."""
    comparisons = _comparisons(filter_text, REGISTERED_MODELS)
    sql = _compile_filter(comparisons, "registered_model_tags", "g.name = t.name")
    sql.conditions.insert(0, "t.lifecycle_stage = 'active'")
    terms = _order_terms(order_by, REGISTERED_MODELS, [("name", True)])
    rows, token = _page(cursor, "SELECT t.name FROM registered_models t", sql, terms, max_results=max_results,
                        page_token=page_token, fingerprint=query_fingerprint("registered_models", filter_text, order_by))
    return Page([r[0] for r in rows], token)


def search_version_keys(cursor: duckdb.DuckDBPyConnection, filter_text: str | None, order_by: list[Any],
                        max_results: int, page_token: str | None) -> Page:
    """(name, version) of active versions matching the filter; by default the most recently updated first."""
    comparisons = _comparisons(filter_text, MODEL_VERSIONS)
    sql = _compile_filter(comparisons, "model_version_tags", "g.name = t.name AND g.version = t.version")
    sql.conditions.insert(0, "t.lifecycle_stage = 'active'")
    default = ["last_updated_timestamp DESC", "name ASC", "version_number DESC"]
    terms = _order_terms(order_by or default, MODEL_VERSIONS, [("name", True), ("version_number", False)])
    rows, token = _page(cursor, "SELECT t.name, t.version FROM model_versions t", sql, terms, max_results=max_results,
                        page_token=page_token, fingerprint=query_fingerprint("model_versions", filter_text, order_by))
    return Page([(r[0], r[1]) for r in rows], token)
