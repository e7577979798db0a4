"""The state the projector maintains: every DuckDB table, its key and its meaning (docs/tables.md).

Only the projector writes these tables. Nothing in them depends on wall-clock time or on the order
in which Kafka partitions happened to be polled, so a replay of the same log yields the same
content (``ledgerflow db checksum``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: bumped whenever a table gains or changes columns: a database of another version must be rebuilt
STATE_VERSION = 2


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, DuckDB type)
    key: tuple[str, ...] = ()  # primary key; empty for append-only tables
    doc: str = ""
    #: secondary indexes (column tuples): lookups by a prefix of a composite key, e.g. all params
    #: of a page of runs, cannot use the primary key's index
    indexes: tuple[tuple[str, ...], ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def ddl(self) -> str:
        columns = [f"{name} {kind}" for name, kind in self.columns]
        if self.key:
            columns.append(f"PRIMARY KEY ({', '.join(self.key)})")
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n  " + ",\n  ".join(columns) + "\n)"

    def index_ddl(self) -> list[str]:
        return [f"CREATE INDEX IF NOT EXISTS {self.name}_by_{'_'.join(cols)} ON {self.name} ({', '.join(cols)})"
                for cols in self.indexes]


_LIFECYCLE = ("lifecycle_stage", "VARCHAR NOT NULL")  # 'active' | 'deleted' (soft delete, restorable)

TABLES: tuple[Table, ...] = (
    Table("events", (
        ("event_id", "UUID NOT NULL"), ("event_type", "VARCHAR NOT NULL"), ("schema_version", "INTEGER NOT NULL"),
        ("occurred_at", "TIMESTAMPTZ NOT NULL"), ("actor", "VARCHAR NOT NULL"), ("producer_id", "VARCHAR NOT NULL"),
        ("sequence", "BIGINT NOT NULL"), ("entity_key", "VARCHAR NOT NULL"),
        ("experiment_id", "VARCHAR"), ("run_id", "VARCHAR"), ("model_name", "VARCHAR"), ("model_version", "BIGINT"),
        ("log_partition", "INTEGER NOT NULL"), ("log_offset", "BIGINT NOT NULL"), ("payload", "JSON NOT NULL"),
    ), ("event_id",), "Every event ever applied: the audit log. MetricsLogged payloads hold a per-key summary."),
    Table("experiments", (
        ("experiment_id", "VARCHAR NOT NULL"), ("name", "VARCHAR NOT NULL"), ("artifact_location", "VARCHAR"),
        _LIFECYCLE, ("creation_time", "BIGINT NOT NULL"), ("last_update_time", "BIGINT NOT NULL"),
        ("deleted_time", "BIGINT"),
    ), ("experiment_id",), "One row per experiment. Times are ms since the epoch, from event times."),
    Table("experiment_tags", (("experiment_id", "VARCHAR NOT NULL"), ("key", "VARCHAR NOT NULL"), ("value", "VARCHAR NOT NULL")),
          ("experiment_id", "key"), "Current experiment tags."),
    Table("runs", (
        ("run_id", "VARCHAR NOT NULL"), ("experiment_id", "VARCHAR NOT NULL"), ("run_name", "VARCHAR NOT NULL"),
        ("user_id", "VARCHAR NOT NULL"), ("status", "VARCHAR NOT NULL"), ("start_time", "BIGINT NOT NULL"),
        ("end_time", "BIGINT"), _LIFECYCLE, ("artifact_uri", "VARCHAR"), ("parent_run_id", "VARCHAR"),
        ("deleted_time", "BIGINT"),
    ), ("run_id",), "One row per run, its current status and lifecycle."),
    Table("params", (("run_id", "VARCHAR NOT NULL"), ("key", "VARCHAR NOT NULL"), ("value", "VARCHAR NOT NULL")),
          ("run_id", "key"), "Run params; immutable once logged.", (("run_id",),)),
    Table("tags", (("run_id", "VARCHAR NOT NULL"), ("key", "VARCHAR NOT NULL"), ("value", "VARCHAR NOT NULL")),
          ("run_id", "key"), "Current run tags.", (("run_id",),)),
    Table("metrics", (
        ("run_id", "VARCHAR NOT NULL"), ("key", "VARCHAR NOT NULL"), ("step", "BIGINT NOT NULL"),
        ("timestamp", "BIGINT NOT NULL"), ("value", "DOUBLE NOT NULL"),
    ), (), "Full metric history, one row per point; NaN and +/-inf kept."),
    Table("latest_metrics", (
        ("run_id", "VARCHAR NOT NULL"), ("key", "VARCHAR NOT NULL"), ("step", "BIGINT NOT NULL"),
        ("timestamp", "BIGINT NOT NULL"), ("value", "DOUBLE NOT NULL"),
    ), ("run_id", "key"), "Latest point per run and key, as MLflow: highest step, then timestamp, then value.",
        (("run_id",),)),
    Table("datasets", (
        ("dataset_id", "VARCHAR NOT NULL"), ("name", "VARCHAR NOT NULL"), ("digest", "VARCHAR NOT NULL"),
        ("source_type", "VARCHAR NOT NULL"), ("source", "VARCHAR NOT NULL"), ("schema", "VARCHAR"), ("profile", "VARCHAR"),
    ), ("dataset_id",), "Datasets seen as run inputs; dataset_id is derived from (name, digest)."),
    Table("run_inputs", (
        ("run_id", "VARCHAR NOT NULL"), ("dataset_id", "VARCHAR NOT NULL"), ("context", "VARCHAR NOT NULL"),
        ("tags", "JSON NOT NULL"),
    ), ("run_id", "dataset_id", "context"), "Which dataset a run used, and how ('' when no context).",
        (("run_id",),)),
    Table("artifacts", (
        ("run_id", "VARCHAR NOT NULL"), ("path", "VARCHAR NOT NULL"), ("uri", "VARCHAR NOT NULL"),
        ("size", "BIGINT NOT NULL"), ("sha256", "VARCHAR NOT NULL"), ("logged_at", "TIMESTAMPTZ NOT NULL"),
    ), ("run_id", "path"), "Artifact references; the newest upload of a path wins."),
    Table("registered_models", (
        ("name", "VARCHAR NOT NULL"), ("description", "VARCHAR"), _LIFECYCLE,
        ("creation_time", "BIGINT NOT NULL"), ("last_updated_time", "BIGINT NOT NULL"),
    ), ("name",), "Registered models (deleted ones stay, lifecycle_stage='deleted')."),
    Table("registered_model_tags", (("name", "VARCHAR NOT NULL"), ("key", "VARCHAR NOT NULL"), ("value", "VARCHAR NOT NULL")),
          ("name", "key"), "Current registered model tags."),
    Table("model_versions", (
        ("name", "VARCHAR NOT NULL"), ("version", "BIGINT NOT NULL"), ("source", "VARCHAR NOT NULL"),
        ("run_id", "VARCHAR"), ("artifact_uri", "VARCHAR"), ("signature", "VARCHAR"), ("description", "VARCHAR"),
        ("stage", "VARCHAR NOT NULL"), _LIFECYCLE, ("creation_time", "BIGINT NOT NULL"),
        ("last_updated_time", "BIGINT NOT NULL"), ("model_id", "VARCHAR"), ("run_link", "VARCHAR"),
    ), ("name", "version"), "Model versions and their current stage; artifact_uri is where the version's files "
                            "are downloaded from, model_id the MLflow 3 logged model it was registered from."),
    Table("model_version_tags", (
        ("name", "VARCHAR NOT NULL"), ("version", "BIGINT NOT NULL"), ("key", "VARCHAR NOT NULL"), ("value", "VARCHAR NOT NULL"),
    ), ("name", "version", "key"), "Current model version tags."),
    Table("model_aliases", (("name", "VARCHAR NOT NULL"), ("alias", "VARCHAR NOT NULL"), ("version", "BIGINT NOT NULL")),
          ("name", "alias"), "Where each alias points now."),
    Table("model_alias_history", (
        ("name", "VARCHAR NOT NULL"), ("alias", "VARCHAR NOT NULL"), ("version", "BIGINT"),
        ("action", "VARCHAR NOT NULL"), ("event_id", "UUID NOT NULL"), ("occurred_at", "TIMESTAMPTZ NOT NULL"),
        ("actor", "VARCHAR NOT NULL"),
    ), (), "Every alias move: action 'set' (version) or 'deleted' (version NULL)."),
    Table("logged_models", (
        ("model_id", "VARCHAR NOT NULL"), ("experiment_id", "VARCHAR NOT NULL"), ("name", "VARCHAR NOT NULL"),
        ("artifact_location", "VARCHAR NOT NULL"), ("model_type", "VARCHAR"), ("source_run_id", "VARCHAR"),
        ("status", "VARCHAR NOT NULL"), ("status_message", "VARCHAR"), _LIFECYCLE,
        ("creation_time", "BIGINT NOT NULL"), ("last_updated_time", "BIGINT NOT NULL"),
    ), ("model_id",), "MLflow 3 logged models; status 'PENDING' until finalized 'READY' or 'UPLOAD_FAILED'.",
        (("experiment_id",),)),
    Table("logged_model_tags", (("model_id", "VARCHAR NOT NULL"), ("key", "VARCHAR NOT NULL"), ("value", "VARCHAR NOT NULL")),
          ("model_id", "key"), "Current logged model tags."),
    Table("logged_model_params", (("model_id", "VARCHAR NOT NULL"), ("key", "VARCHAR NOT NULL"), ("value", "VARCHAR NOT NULL")),
          ("model_id", "key"), "Logged model params; immutable once logged."),
    Table("run_outputs", (("run_id", "VARCHAR NOT NULL"), ("model_id", "VARCHAR NOT NULL"), ("step", "BIGINT NOT NULL")),
          ("run_id", "model_id", "step"), "Logged models a run recorded as its outputs (MLflow 3 log_outputs), "
                                          "and at which step.", (("model_id",),)),
    Table("logged_model_metrics", (
        ("model_id", "VARCHAR NOT NULL"), ("key", "VARCHAR NOT NULL"), ("step", "BIGINT NOT NULL"),
        ("timestamp", "BIGINT NOT NULL"), ("value", "DOUBLE NOT NULL"), ("run_id", "VARCHAR"),
        ("dataset_name", "VARCHAR"), ("dataset_digest", "VARCHAR"),
    ), (), "Metric points logged for an MLflow 3 logged model (a metric with a model_id), with the run and "
           "dataset they came from; a point logged twice appears twice (readers take DISTINCT).",
        (("model_id",),)),
    Table("run_model_inputs", (("run_id", "VARCHAR NOT NULL"), ("model_id", "VARCHAR NOT NULL")),
          ("run_id", "model_id"), "Logged models a run recorded as its inputs (MLflow 3 log_inputs with models).",
          (("model_id",),)),
    Table("lineage", (
        ("source_type", "VARCHAR NOT NULL"), ("source_id", "VARCHAR NOT NULL"), ("target_type", "VARCHAR NOT NULL"),
        ("target_id", "VARCHAR NOT NULL"), ("relation", "VARCHAR NOT NULL"), ("event_id", "UUID NOT NULL"),
    ), (), "Edges dataset -> run (input), run -> model_version (produced), run -> run (parent_of), "
           "run -> logged_model (produced: its source run; output: log_outputs), logged_model -> model_version "
           "(registered_as), logged_model -> run (input: log_inputs)."),
    Table("dead_letters", (
        ("log_partition", "INTEGER NOT NULL"), ("log_offset", "BIGINT NOT NULL"), ("reason", "VARCHAR NOT NULL"),
        ("event_id", "UUID"), ("event_type", "VARCHAR"), ("raw", "BLOB NOT NULL"),
    ), (), "Records the projector could not apply, with why; good events around them are applied."),
    Table("projector_positions", (("log_partition", "INTEGER NOT NULL"), ("next_offset", "BIGINT NOT NULL")),
          ("log_partition",), "Next offset to read per partition, committed with the rows it produced."),
    Table("projector_metric_ranges", (
        ("run_id", "VARCHAR NOT NULL"), ("key", "VARCHAR NOT NULL"), ("first_row", "BIGINT NOT NULL"),
        ("row_count", "BIGINT NOT NULL"), ("min_step", "BIGINT NOT NULL"), ("max_step", "BIGINT NOT NULL"),
    ), (), "Where each series' points sit in metrics (rowid ranges; metrics is append-only), so a series "
           "is read without scanning the table. Physical layout, not state: excluded from checksums.",
        (("run_id",),)),
    Table("projector_meta", (("key", "VARCHAR NOT NULL"), ("value", "VARCHAR NOT NULL")), ("key",),
          "The log this database projects, state version, and replay bounds."),
)

TABLES_BY_NAME = {table.name: table for table in TABLES}

#: tables whose content is the projected state (compared by checksums); bookkeeping excluded
STATE_TABLES = tuple(t.name for t in TABLES if not t.name.startswith("projector_"))
