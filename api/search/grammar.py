"""What each search target (runs, experiments) lets a filter or an order_by name, and how.

Kept apart from the parser so the parser stays a pure text -> AST function and the SQL compiler
reads the same table of identifiers; nothing here touches DuckDB.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

# entity kinds an identifier resolves to
METRIC, PARAM, TAG, ATTRIBUTE, DATASET = "metric", "param", "tag", "attribute", "dataset"

# the display prefix of each kind in messages
DISPLAY_PREFIX = {METRIC: "metrics", PARAM: "params", TAG: "tags", ATTRIBUTE: "attributes", DATASET: "datasets"}

NUMERIC_COMPARATORS = ("=", "!=", "<", "<=", ">", ">=")
STRING_COMPARATORS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
NULL_COMPARATORS = ("IS NULL", "IS NOT NULL")
ALL_COMPARATORS = NUMERIC_COMPARATORS + ("LIKE", "ILIKE", "IN", "NOT IN") + NULL_COMPARATORS


@dataclass(frozen=True)
class KeyTable:
    """A key/value table joined per referenced key (latest_metrics, params, tags, experiment_tags)."""

    table: str
    id_column: str
    numeric: bool


@dataclass(frozen=True)
class Target:
    """One searchable entity: its table, prefixes, attributes and allowed comparators per kind."""

    name: str  # "runs" | "experiments"
    table: str
    id_column: str
    prefixes: dict[str, str]  # lower-case prefix -> kind
    key_tables: dict[str, KeyTable]  # kind -> table
    string_attributes: frozenset[str]
    numeric_attributes: frozenset[str]
    attribute_aliases: dict[str, str] = field(default_factory=dict)
    bare_names_are_attributes: bool = False  # experiments: `name` means `attributes.name`
    dataset_fields: frozenset[str] = frozenset()
    orderable_kinds: frozenset[str] = frozenset()
    comparators: dict[str, tuple[str, ...]] = field(default_factory=dict)  # kind -> allowed

    @property
    def attributes(self) -> frozenset[str]:
        return self.string_attributes | self.numeric_attributes

    def canonical_attribute(self, name: str) -> str | None:
        """MLflow accepts spellings like `Run name` or `Created`: fold them onto the column name."""
        folded = name.strip().lower().replace(" ", "_")
        folded = self.attribute_aliases.get(folded, folded)
        return folded if folded in self.attributes else None

    def allowed_comparators(self, kind: str, key: str) -> tuple[str, ...]:
        if kind == ATTRIBUTE:
            return NUMERIC_COMPARATORS if key in self.numeric_attributes else STRING_COMPARATORS
        return self.comparators[kind]

    def is_numeric(self, kind: str, key: str) -> bool:
        if kind == ATTRIBUTE:
            return key in self.numeric_attributes
        return kind == METRIC


_PARAM_TAG_COMPARATORS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN") + NULL_COMPARATORS

RUNS = Target(
    name="runs",
    table="runs",
    id_column="run_id",
    prefixes={"metrics": METRIC, "metric": METRIC, "params": PARAM, "param": PARAM, "parameters": PARAM,
              "parameter": PARAM, "tags": TAG, "tag": TAG, "attributes": ATTRIBUTE, "attribute": ATTRIBUTE,
              "attr": ATTRIBUTE, "run": ATTRIBUTE, "datasets": DATASET, "dataset": DATASET},
    key_tables={METRIC: KeyTable("latest_metrics", "run_id", True), PARAM: KeyTable("params", "run_id", False),
                TAG: KeyTable("tags", "run_id", False)},
    string_attributes=frozenset({"run_id", "run_name", "status", "user_id", "artifact_uri", "lifecycle_stage"}),
    numeric_attributes=frozenset({"start_time", "end_time"}),
    attribute_aliases={"created": "start_time", "run_uuid": "run_id"},
    dataset_fields=frozenset({"name", "digest", "context"}),
    orderable_kinds=frozenset({METRIC, PARAM, TAG, ATTRIBUTE}),
    comparators={METRIC: NUMERIC_COMPARATORS + NULL_COMPARATORS, PARAM: _PARAM_TAG_COMPARATORS,
                 TAG: _PARAM_TAG_COMPARATORS, DATASET: STRING_COMPARATORS},
)

#: MLflow's own endpoint reads a bare name as an attribute (``status = 'FAILED'``), as MLflow does;
#: ledgerflow's query API asks for the prefix instead, so a mistyped key is never taken for one
MLFLOW_RUNS = replace(RUNS, bare_names_are_attributes=True)

EXPERIMENTS = Target(
    name="experiments",
    table="experiments",
    id_column="experiment_id",
    prefixes={"tags": TAG, "tag": TAG, "attributes": ATTRIBUTE, "attribute": ATTRIBUTE, "attr": ATTRIBUTE},
    key_tables={TAG: KeyTable("experiment_tags", "experiment_id", False)},
    string_attributes=frozenset({"name", "experiment_id", "artifact_location"}),
    numeric_attributes=frozenset({"creation_time", "last_update_time"}),
    bare_names_are_attributes=True,
    orderable_kinds=frozenset({ATTRIBUTE, TAG}),
    comparators={TAG: _PARAM_TAG_COMPARATORS},
)
