"""The audit timeline: every event that changed an entity, who sent it and when, in log order.

Read straight from the ``events`` table (every applied event, with its envelope and payload).
Pages are keyset pages on the log position, so a run with thousands of MetricsLogged events pages
in constant time per page and a page token stays valid while new events arrive.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated, Any

import duckdb
from fastapi import APIRouter, Query

from ledgerflow.api import as_of as past
from ledgerflow.api.as_of import AsOfQuery, parse_as_of
from ledgerflow.api.deps import Cursor
from ledgerflow.api.errors import bad_request, not_found
from ledgerflow.api.routes.entities import parse_version, stamp, when

router = APIRouter(prefix="/api/v1", tags=["audit"])

ENTITY_TYPES = ("experiment", "run", "model", "model_version")
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
MAX_STRING = 512  # longer payload strings (signatures, profiles) are cut: this is a timeline, not an export
_COLUMNS = "event_id, event_type, epoch_us(occurred_at), actor, producer_id, sequence, log_partition, log_offset, payload"
Position = tuple[int, int]


def encode_token(position: Position) -> str:
    return base64.urlsafe_b64encode(f"{position[0]}:{position[1]}".encode()).decode().rstrip("=")


def decode_token(token: str | None) -> Position:
    """The log position after which the next page starts; (-1, -1) for the first page."""
    if not token:
        return (-1, -1)
    try:
        partition, offset = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().split(":")
        position = (int(partition), int(offset))
        if not all(0 <= p < 2**31 for p in position[:1]) or not 0 <= position[1] < 2**63:
            raise ValueError(token)
        return position
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise bad_request(f"page_token {token!r} is not a token this endpoint returned") from None


def _compact(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_STRING:
        return value[:MAX_STRING] + f"... ({len(value)} characters)"
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


def _item(row: tuple[Any, ...]) -> dict[str, Any]:
    event_id, event_type, occurred_us, actor, producer_id, sequence, partition, offset, payload = row[:9]
    return {"event_id": str(event_id), "event_type": event_type, "occurred_at": past.iso(occurred_us),
            "actor": actor, "producer_id": producer_id, "sequence": sequence,
            "log_position": {"partition": partition, "offset": offset}, "payload": _compact(json.loads(payload))}


def _keyed_rows(cursor: duckdb.DuckDBPyConnection, predicate: str, params: list[Any], as_of: datetime | None,
                after: Position, limit: int) -> list[tuple[Any, ...]]:
    cut, cut_params = past.time_filter(as_of)
    return cursor.execute(
        f"SELECT {_COLUMNS} FROM events WHERE ({predicate}){cut} AND (log_partition, log_offset) > (?, ?) "
        "ORDER BY log_partition, log_offset LIMIT ?", [*params, *cut_params, *after, limit]).fetchall()


def _model_rows(cursor: duckdb.DuckDBPyConnection, name: str, version: int | None,
                as_of: datetime | None) -> list[tuple[Any, ...]]:
    """Registry events of the model called ``name`` at the cut (of one of its versions if given).

    A model keeps its identity across renames. Walking the registry log backwards: a rename *to*
    the current name belongs to it and switches to the old name; its creation ends the walk (an
    earlier, deleted model of the same name is another entity). A name that was renamed away
    answers with its history up to that rename, so an old name still leads an auditor somewhere.
    """
    cut, cut_params = past.time_filter(as_of)
    rows = cursor.execute(
        f"SELECT {_COLUMNS}, model_name, model_version FROM events WHERE {past.REGISTRY_PREDICATE}{cut} "
        "ORDER BY log_partition, log_offset", cut_params).fetchall()
    current, belongs, found = name, [], False
    for row in reversed(rows):
        event_type, model_name, model_version = row[1], row[9], row[10]
        renamed = event_type == "RegisteredModelRenamed"
        if renamed and json.loads(row[8]).get("new_name") == current:
            belongs.append(row)
            current, found = model_name, True
            continue
        if model_name != current:
            continue
        if renamed and found:  # the name was another model's before that model moved away
            break
        found = True
        if renamed or version is None or model_version == version or event_type == "RegisteredModelDeleted":
            belongs.append(row)
        if event_type == "RegisteredModelCreated":
            break
    belongs.reverse()
    return belongs


@router.get("/audit/{entity_type}/{entity_id:path}",
            summary="Every event that touched an entity: who, when, what, in log order; paged")
def audit(
    entity_type: str,
    entity_id: str,
    cursor: Cursor,
    as_of: AsOfQuery = None,
    limit: Annotated[int, Query(description=f"events per page (1 .. {MAX_LIMIT})")] = DEFAULT_LIMIT,
    page_token: Annotated[str | None, Query(description="next_page_token of the previous page")] = None,
) -> dict[str, Any]:
    if entity_type not in ENTITY_TYPES:
        raise bad_request(f"entity_type {entity_type!r} is not one of {', '.join(ENTITY_TYPES)}")
    if not 1 <= limit <= MAX_LIMIT:
        raise bad_request(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    moment, after = parse_as_of(as_of), decode_token(page_token)
    if entity_type in ("experiment", "run"):
        predicate = (f"experiment_id = ? AND {past.EXPERIMENT_PREDICATE}" if entity_type == "experiment"
                     else f"run_id = ? AND {past.RUN_PREDICATE}")
        rows = _keyed_rows(cursor, predicate, [entity_id], moment, after, limit + 1)
        exists = bool(rows) or after != (-1, -1) or cursor.execute(
            f"SELECT 1 FROM events WHERE {predicate}{past.time_filter(moment)[0]} LIMIT 1",
            [entity_id, *past.time_filter(moment)[1]]).fetchone() is not None
    else:
        name, version = entity_id, None
        if entity_type == "model_version":
            name, _, text = entity_id.rpartition("/")
            if not name:
                raise bad_request(f"a model_version id is 'name/version', got {entity_id!r}")
            version = parse_version(text)
        everything = _model_rows(cursor, name, version, moment)
        exists = any(version is None or r[10] == version for r in everything)
        rows = [r for r in everything if (r[6], r[7]) > after][:limit + 1]
    if not exists:
        raise not_found(f"{entity_type.replace('_', ' ')} {entity_id!r}{when(moment)}")
    page = rows[:limit]
    more = len(rows) > limit
    return {"entity_type": entity_type, "entity_id": entity_id, "as_of": stamp(moment),
            "events": [_item(r) for r in page], "next_page_token": encode_token((page[-1][6], page[-1][7])) if more else None}
