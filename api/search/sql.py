"""Compile a parsed filter and order_by into one parameterized DuckDB query returning ids in order.

Why one query with a join per referenced key: DuckDB filters each key table by its key first, then
hash-joins on the id, so a filter + order over 100k runs stays a handful of scans with no per-run
Python work. Every value is bound as a parameter; only identifiers from the grammar (never from the
request) are written into the SQL text. Pure string building: nothing here imports DuckDB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ledgerflow.api.search.filter_parser import Comparison, FilterError, OrderKey
from ledgerflow.api.search.grammar import ATTRIBUTE, DATASET, NULL_COMPARATORS, Target

MAX_JOINED_KEYS = 50
_SQL_COMPARATORS = {"=": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">=", "LIKE": "LIKE",
                    "ILIKE": "ILIKE"}
_DATASET_COLUMNS = {"name": "d.name", "digest": "d.digest", "context": "i.context"}


@dataclass
class Query:
    """SQL text and its positional parameters, in placeholder order."""

    sql: str
    params: list[Any] = field(default_factory=list)


@dataclass
class _Builder:
    target: Target
    joins: list[str] = field(default_factory=list)
    join_params: list[Any] = field(default_factory=list)
    aliases: dict[tuple[str, str], str] = field(default_factory=dict)
    where: list[str] = field(default_factory=list)
    where_params: list[Any] = field(default_factory=list)

    def key_alias(self, kind: str, key: str) -> str:
        """The alias of the join for (kind, key); each referenced key is joined once."""
        alias = self.aliases.get((kind, key))
        if alias is None:
            if len(self.aliases) >= MAX_JOINED_KEYS:
                raise FilterError(f"a search may reference at most {MAX_JOINED_KEYS} distinct metric, param and "
                                  f"tag keys")
            alias = f"k{len(self.aliases)}"
            self.aliases[(kind, key)] = alias
        return alias

    def column(self, kind: str, key: str) -> str:
        if kind == ATTRIBUTE:
            return f"t.{key}"  # key was validated against the grammar's attribute names
        return f"{self.key_alias(kind, key)}.value"


def _condition(b: _Builder, c: Comparison) -> tuple[str, list[Any]]:
    if c.kind == DATASET:
        return _dataset_condition(c)
    column = b.column(c.kind, c.key)
    if c.comparator == "IS NULL":
        return f"{column} IS NULL", []
    if c.comparator == "IS NOT NULL":
        return f"{column} IS NOT NULL", []
    if c.comparator in ("IN", "NOT IN"):
        assert isinstance(c.value, tuple)
        placeholders = ", ".join("?" for _ in c.value)
        return f"{column} {c.comparator} ({placeholders})", list(c.value)
    op = _SQL_COMPARATORS[c.comparator]
    if b.target.is_numeric(c.kind, c.key) and c.kind != ATTRIBUTE and op != "!=":
        # DuckDB orders NaN above every number; a NaN metric satisfies no comparison but != (IEEE)
        return f"({column} {op} ? AND NOT isnan({column}))", [c.value]
    return f"{column} {op} ?", [c.value]


def _dataset_condition(c: Comparison) -> tuple[str, list[Any]]:
    """A run matches when any of its inputs matches (MLflow's rule for datasets.*)."""
    column = _DATASET_COLUMNS[c.key]
    if c.comparator in ("IN", "NOT IN"):
        assert isinstance(c.value, tuple)
        test, params = f"{column} {c.comparator} ({', '.join('?' for _ in c.value)})", list(c.value)
    else:
        test, params = f"{column} {_SQL_COMPARATORS[c.comparator]} ?", [c.value]
    return (f"EXISTS (SELECT 1 FROM run_inputs i JOIN datasets d ON d.dataset_id = i.dataset_id "
            f"WHERE i.run_id = t.run_id AND {test})"), params


def _order_terms(b: _Builder, order: list[OrderKey]) -> list[str]:
    terms: list[str] = []
    for o in order:
        column = b.column(o.kind, o.key)
        direction = "ASC" if o.ascending else "DESC"
        if b.target.is_numeric(o.kind, o.key) and o.kind != ATTRIBUTE:
            # MLflow: numbers first (in the asked direction), then NaN, then runs without the metric
            terms.append(f"CASE WHEN {column} IS NULL THEN 2 WHEN isnan({column}) THEN 1 ELSE 0 END")
        terms.append(f"{column} {direction} NULLS LAST")
    return terms


def compile_search(target: Target, comparisons: list[Comparison], order: list[OrderKey], *,
                   scope_sql: list[str], scope_params: list[Any], limit: int, offset: int) -> Query:
    """SELECT the target's ids matching ``comparisons`` (AND) and the scope, in ``order``, then by id.

    ``scope_sql``/``scope_params`` are extra conditions built by the caller from validated input
    (experiment ids, lifecycle stage) over the target table's alias ``t``.
    """
    b = _Builder(target)
    # a key that a filter needs to exist (anything but IS NULL) is inner-joined: DuckDB then filters
    # the key table before the join instead of after
    required: set[tuple[str, str]] = {(c.kind, c.key) for c in comparisons
                                      if c.kind in target.key_tables and c.comparator not in NULL_COMPARATORS}
    conditions, condition_params = [], []
    for c in comparisons:
        sql, params = _condition(b, c)
        conditions.append(sql)
        condition_params.extend(params)
    order_terms = _order_terms(b, order)
    for (kind, key), alias in b.aliases.items():
        table = target.key_tables[kind]
        join = "JOIN" if (kind, key) in required else "LEFT JOIN"
        b.joins.append(f"{join} {table.table} {alias} ON {alias}.{table.id_column} = t.{target.id_column} "
                       f"AND {alias}.key = ?")
        b.join_params.append(key)
    if not any(o.kind == ATTRIBUTE and o.key == target.id_column for o in order):
        order_terms.append(f"t.{target.id_column} ASC")  # the stable tiebreak that makes offsets page cleanly
    where = scope_sql + conditions
    sql = (f"SELECT t.{target.id_column} FROM {target.table} t " + " ".join(b.joins)
           + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY " + ", ".join(order_terms) + " LIMIT ? OFFSET ?")
    return Query(sql, [*b.join_params, *scope_params, *condition_params, limit, offset])
