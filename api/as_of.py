"""Answers "as of a moment": the state of one entity rebuilt from the audit table ``events``.

Why a replay and not a snapshot table: ``events`` already holds every applied event with its
complete payload (metric payloads are per-key point counts), and the projector's handlers are pure.
Rebuilding an entity is therefore: take the events of its ordering key that occurred at or before
the moment, turn the rows back into :class:`~ledgerflow.schemas.Event` objects, apply them in log
order with :func:`ledgerflow.projector.handlers.apply` to a small in-memory state, and read that
state like the live tables. That is what ``ledgerflow replay --until T`` would hold for the entity,
without a new database. Metric points come from ``metrics``, linked to their events by position
(see :func:`latest_metrics_as_of`).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import duckdb
from fastapi import Query

from ledgerflow.api.entities import EXPERIMENT_COLUMNS, RUN_INFO_COLUMNS, json_number
from ledgerflow.api.errors import bad_request
from ledgerflow.projector.effects import Put, Rejected
from ledgerflow.projector.handlers import apply
from ledgerflow.projector.memory_state import MemoryState
from ledgerflow.projector.tables import TABLES_BY_NAME
from ledgerflow.schemas import Event

log = logging.getLogger("ledgerflow.api")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: SQL predicates selecting the event types of each ordering key's entity (by type, not entity_key:
#: the projector applies an event whatever key its producer chose; the type decides whose it is)
RUN_TYPES = ("RunStarted", "RunStatusChanged", "RunRenamed", "RunDeleted", "RunRestored", "ParamsLogged",
             "RunTagsSet", "RunTagDeleted", "MetricsLogged", "DatasetInputLogged", "ArtifactLogged")
EXPERIMENT_PREDICATE = "event_type LIKE 'Experiment%'"
RUN_PREDICATE = "event_type IN (" + ", ".join(f"'{t}'" for t in RUN_TYPES) + ")"
REGISTRY_PREDICATE = "(event_type LIKE 'RegisteredModel%' OR event_type LIKE 'ModelVersion%')"
_CREATES = {"RunStarted": "runs", "ExperimentCreated": "experiments", "RegisteredModelCreated": "registered_models",
            "ModelVersionCreated": "model_versions"}
ENVELOPE_SQL = ("event_id, event_type, epoch_us(occurred_at), actor, producer_id, sequence, entity_key, "
                "log_partition, log_offset, payload")

AsOfQuery = Annotated[str | None, Query(
    description="answer as of this instant (ISO 8601; no zone means UTC): rebuilt from the events that "
                "occurred at or before it (docs/api-reads.md)")]


def parse_as_of(text: str | None) -> datetime | None:
    """ISO 8601 instant (a date alone means its midnight; no zone means UTC) -> aware UTC datetime."""
    if text is None or text == "":
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise bad_request(f"as_of {text!r} is not an ISO 8601 timestamp (e.g. 2026-11-01T00:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise bad_request(f"as_of {text!r} is out of range") from None


def micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def iso(us: int) -> str:
    """Microseconds since the epoch -> ISO 8601 UTC with a Z."""
    return (_EPOCH + timedelta(microseconds=us)).isoformat().replace("+00:00", "Z")


def time_filter(as_of: datetime | None, column: str = "occurred_at") -> tuple[str, list[Any]]:
    """SQL ``AND ...`` clause and its parameter cutting at ``as_of`` (inclusive), or nothing."""
    if as_of is None:
        return "", []
    return f" AND {column} <= make_timestamptz(?::BIGINT)", [micros(as_of)]


class ReplayState(MemoryState):
    """The projector's in-memory state, fed by replayed events; counts what it had to skip."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped = 0

    def find(self, table: str, column: str, value: Any) -> list[dict[str, Any]]:
        """Current rows whose ``column`` equals ``value`` (e.g. the versions made from a run)."""
        return [r for r in self.tables.get(table, {}).values() if r.get(column) == value]

    def apply_rows(self, rows: list[tuple[Any, ...]]) -> None:
        """Apply ``events`` rows (selected with ENVELOPE_SQL, in log order)."""
        for row in rows:
            event = event_from_row(row)
            try:
                effects = apply(event, self)
            except Rejected as e:  # only if the cut removed an event a later one needs (skewed clocks)
                self.skipped += 1
                log.info("as-of replay skipped %s %s: %s", event.type, event.event_id, e)
                continue
            except Exception:  # the projector applied it, so this is a bug here: answer without it, loudly
                self.skipped += 1
                log.exception("as-of replay could not apply %s %s", event.type, event.event_id)
                continue
            created = _CREATES.get(event.type)
            for effect in effects:
                if created and isinstance(effect, Put) and effect.table == created:
                    # who created it and when, carried along because handlers copy rows ({**row, ...})
                    effect.row.update(_created_by=event.envelope["actor"], _created_at=iso(row[2]))
                    break
            self.observe(effects)


class LiveView:
    """The same read interface over the live tables, so one serializer reads live and replayed state."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection) -> None:
        self.cursor = cursor

    def _select(self, table: str, columns: tuple[str, ...], values: tuple[Any, ...]) -> list[dict[str, Any]]:
        spec = TABLES_BY_NAME[table]
        where = " AND ".join(f"{c} = ?" for c in columns) or "TRUE"
        result = self.cursor.execute(f"SELECT {', '.join(spec.column_names)} FROM {table} WHERE {where} "
                                     f"ORDER BY {', '.join(spec.key)}", list(values))
        return [dict(zip(spec.column_names, values_, strict=True)) for values_ in result.fetchall()]

    def row(self, table: str, key: tuple[Any, ...]) -> dict[str, Any] | None:
        found = self._select(table, TABLES_BY_NAME[table].key, key)
        return found[0] if found else None

    def rows(self, table: str, prefix: tuple[Any, ...]) -> list[dict[str, Any]]:
        return self._select(table, TABLES_BY_NAME[table].key[:len(prefix)], prefix)

    def find(self, table: str, column: str, value: Any) -> list[dict[str, Any]]:
        return self._select(table, (column,), (value,))


View = ReplayState | LiveView


def event_from_row(row: tuple[Any, ...]) -> Event:
    """An ``events`` row (ENVELOPE_SQL columns) back to the Event the projector applied."""
    event_id, event_type, occurred_us, actor, producer_id, sequence, entity_key, _, _, payload = row
    envelope = {"event_id": event_id, "occurred_at": _EPOCH + timedelta(microseconds=occurred_us), "actor": actor,
                "producer_id": producer_id, "sequence": sequence, "entity_key": entity_key}
    return Event(event_type, {"envelope": envelope, **json.loads(payload)})


def replay(cursor: duckdb.DuckDBPyConnection, predicate: str, params: list[Any], as_of: datetime | None,
           *, with_metrics: bool = False) -> ReplayState:
    """The state left by the events matching ``predicate`` that occurred at or before ``as_of``.

    MetricsLogged events are skipped unless asked for: applying them changes no replayed table
    (points are linked separately), and a long run has thousands of them.
    """
    cut, cut_params = time_filter(as_of)
    metrics = "" if with_metrics else " AND event_type <> 'MetricsLogged'"
    rows = cursor.execute(f"SELECT {ENVELOPE_SQL} FROM events WHERE ({predicate}){metrics}{cut} "
                          "ORDER BY log_partition, log_offset", [*params, *cut_params]).fetchall()
    state = ReplayState()
    state.apply_rows(rows)
    return state


def runs_state(cursor: duckdb.DuckDBPyConnection, run_ids: list[str], as_of: datetime | None) -> ReplayState:
    return replay(cursor, f"run_id IN (SELECT unnest(?)) AND {RUN_PREDICATE}", [run_ids], as_of)


def experiment_state(cursor: duckdb.DuckDBPyConnection, experiment_id: str, as_of: datetime | None) -> ReplayState:
    return replay(cursor, f"experiment_id = ? AND {EXPERIMENT_PREDICATE}", [experiment_id], as_of)


def registry_state(cursor: duckdb.DuckDBPyConnection, as_of: datetime | None) -> ReplayState:
    """The whole registry as of ``as_of``: one ordering key, and renames move names between models."""
    return replay(cursor, REGISTRY_PREDICATE, [], as_of)


_SERIES_COUNTS = """
    SELECT s->>'key' AS key, (s->>'points')::BIGINT AS n, e.occurred_at <= make_timestamptz(?::BIGINT) AS included
    FROM events e, unnest(CAST(e.payload->'series' AS JSON[])) AS u(s)
    WHERE e.run_id = ? AND e.event_type = 'MetricsLogged'
    ORDER BY e.log_partition, e.log_offset"""

# the latest point among the points whose insertion-order number per key falls in an included interval
_LINKED_LATEST = """
    WITH points AS (
        SELECT key, step, timestamp, value, row_number() OVER (PARTITION BY key ORDER BY rowid) AS position
        FROM metrics WHERE run_id = ? AND key IN (SELECT unnest(?)))
    SELECT p.key, arg_max(p.step, (p.step, p.timestamp, p.value)), arg_max(p.timestamp, (p.step, p.timestamp, p.value)),
           arg_max(p.value, (p.step, p.timestamp, p.value))
    FROM points p JOIN (SELECT unnest(?) AS key, unnest(?) AS lo, unnest(?) AS hi) i
         ON p.key = i.key AND p.position >= i.lo AND p.position <= i.hi
    GROUP BY p.key"""


def _included_intervals(counts: list[tuple[str, int, bool]]) -> dict[str, list[list[int]]]:
    """Per key, the merged 1-based position intervals of the points of included events."""
    seen: dict[str, int] = {}
    intervals: dict[str, list[list[int]]] = {}
    for key, n, included in counts:
        start = seen.get(key, 0) + 1
        seen[key] = start - 1 + n
        if not included or n == 0:
            continue
        spans = intervals.setdefault(key, [])
        if spans and spans[-1][1] == start - 1:
            spans[-1][1] = seen[key]
        else:
            spans.append([start, seen[key]])
    return intervals


def latest_metrics_as_of(cursor: duckdb.DuckDBPyConnection, run_id: str,
                         as_of: datetime) -> dict[str, dict[str, Any]]:
    """Latest point per key (highest step, then timestamp, then value) among the points of the
    run's MetricsLogged events that occurred at or before ``as_of``.

    ``metrics`` rows carry no event id, but the projector appends a run's points in log order, and
    each event's audit payload records how many points it carried per key. So the k-th event's
    points of key K are rows (sum of earlier counts, + its count] of K in insertion (rowid) order.
    Keys whose events are all inside the cut read ``latest_metrics``; only keys cut part-way
    (as_of during training) pay for numbering their points.
    """
    counts = cursor.execute(_SERIES_COUNTS, [micros(as_of), run_id]).fetchall()
    intervals = _included_intervals(counts)
    totals: dict[str, int] = {}
    for key, n, _ in counts:
        totals[key] = totals.get(key, 0) + n
    whole = [k for k, spans in intervals.items() if spans == [[1, totals[k]]]]
    rows = cursor.execute("SELECT key, step, timestamp, value FROM latest_metrics WHERE run_id = ? "
                          "AND key IN (SELECT unnest(?))", [run_id, whole]).fetchall() if whole else []
    flat = [(k, lo, hi) for k, spans in intervals.items() if k not in whole for lo, hi in spans]
    if flat:
        keys, los, his = (list(column) for column in zip(*flat, strict=True))
        rows += cursor.execute(_LINKED_LATEST, [run_id, sorted(set(keys)), keys, los, his]).fetchall()
    return {key: {"value": json_number(value), "step": step, "timestamp": timestamp}
            for key, step, timestamp, value in sorted(rows)}


# ---- the live shapes, from replayed state ----------------------------------------------------

def run_object(state: ReplayState, run_id: str, metrics: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The run as api/entities.load_runs shapes it, from replayed state; None if it did not exist."""
    row = state.row("runs", (run_id,))
    if row is None:
        return None
    inputs = []
    for link in state.rows("run_inputs", (run_id,)):
        dataset = state.row("datasets", (link["dataset_id"],)) or {}
        inputs.append({"name": dataset.get("name"), "digest": dataset.get("digest"),
                       "source_type": dataset.get("source_type"), "source": dataset.get("source"),
                       "context": link["context"]})
    inputs.sort(key=lambda i: (i["name"] or "", i["context"], i["digest"] or ""))
    return {"info": {c: row[c] for c in RUN_INFO_COLUMNS},
            "data": {"params": {p["key"]: p["value"] for p in sorted(state.rows("params", (run_id,)), key=_by_key)},
                     "tags": {t["key"]: t["value"] for t in sorted(state.rows("tags", (run_id,)), key=_by_key)},
                     "metrics": dict(sorted(metrics.items()))},
            "inputs": inputs}


def experiment_object(state: ReplayState, experiment_id: str) -> dict[str, Any] | None:
    """The experiment as api/entities.load_experiments shapes it; None if it did not exist."""
    row = state.row("experiments", (experiment_id,))
    if row is None:
        return None
    tags = sorted(state.rows("experiment_tags", (experiment_id,)), key=_by_key)
    return {**{c: row[c] for c in EXPERIMENT_COLUMNS}, "tags": {t["key"]: t["value"] for t in tags}}


def _by_key(row: dict[str, Any]) -> str:
    return row["key"]
