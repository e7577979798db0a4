"""MLflow's JSON shapes of runs, experiments and metrics, loaded from the projection.

The shapes follow MLflow's proto JSON exactly (field names, int64 as numbers, NaN and infinities
as the strings "NaN", "Infinity", "-Infinity", empty lists left out), so the unmodified client
parses them with its own protos. A page of runs is loaded with a few queries, never one per run:
its params, tags and metrics arrive as JSON text built by DuckDB, and a search keeps each run's
JSON in the server's cache (run_cache.py) until an event touching the run is projected.
"""

from __future__ import annotations

import json
import math
from typing import Any

import duckdb
from fastapi import Response

from ledgerflow.api.mlflow.run_cache import RunJsonCache
from ledgerflow.api.mlflow.run_facts import EXPERIMENT_COLUMNS
from ledgerflow.ingest.log import Position

WORKSPACE = "default"  # MLflow 3 servers name the workspace of every experiment; there is one


def json_text_response(text: str) -> Response:
    """A response whose JSON was assembled as text (runs arrive as JSON from DuckDB)."""
    return Response(content=text.encode("utf-8"), media_type="application/json")


def json_double(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def run_info_json(info: dict[str, Any]) -> dict[str, Any]:
    """RunInfo: MLflow sends the id twice (run_uuid is the deprecated spelling); end_time only once ended."""
    shaped = {"run_uuid": info["run_id"], "experiment_id": info["experiment_id"], "run_name": info["run_name"],
              "user_id": info["user_id"], "status": info["status"], "start_time": info["start_time"]}
    if info.get("end_time") is not None:
        shaped["end_time"] = info["end_time"]
    if info.get("artifact_uri") is not None:
        shaped["artifact_uri"] = info["artifact_uri"]
    shaped["lifecycle_stage"] = info["lifecycle_stage"]
    shaped["run_id"] = info["run_id"]
    return shaped


def pairs(mapping: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in mapping.items()]


def dataset_json(name: str, digest: str, source_type: str, source: str, schema: str | None,
                 profile: str | None) -> dict[str, Any]:
    shaped = {"name": name, "digest": digest, "source_type": source_type, "source": source}
    if schema is not None:
        shaped["schema"] = schema
    if profile is not None:
        shaped["profile"] = profile
    return shaped


def _in(ids: list[str]) -> tuple[str, list[Any]]:
    """``IN (...)`` over a page of ids. A few ids are bound one by one (index probes); a page of
    hundreds goes in as one list parameter, which binds and plans ~3x faster than that many."""
    if len(ids) <= 20:
        return f"IN ({', '.join('?' * len(ids))})", list(ids)
    return "IN (SELECT unnest(?))", [list(ids)]


#: DuckDB writes NaN and the infinities as bare words; proto JSON writes them as strings. Fixed in the
#: text (a CASE per point in SQL costs ~30% of the query): within a metrics array ``"value":`` followed by
#: a bare word can only be a value, as a quote inside a key is escaped
_NON_FINITE = (('"value":NaN', '"value":"NaN"'), ('"value":Infinity', '"value":"Infinity"'),
               ('"value":-Infinity', '"value":"-Infinity"'))
_PAIRS_JSON = "to_json(list({'key': key, 'value': value} ORDER BY key))"
_DATA_SECTIONS = ("metrics", "params", "tags")
_INFO = 3
#: RunInfo as run_info_json shapes it, as text: the id twice (run_uuid is the deprecated spelling),
#: end_time and artifact_uri only when set
_INFO_JSON = """'{"run_uuid":' || to_json(run_id) || ',"experiment_id":' || to_json(experiment_id)
  || ',"run_name":' || to_json(run_name) || ',"user_id":' || to_json(user_id) || ',"status":' || to_json(status)
  || ',"start_time":' || start_time || coalesce(',"end_time":' || end_time, '')
  || coalesce(',"artifact_uri":' || to_json(artifact_uri), '') || ',"lifecycle_stage":' || to_json(lifecycle_stage)
  || ',"run_id":' || to_json(run_id) || '}'"""
#: each section of run.data as one JSON array per run, and the run's info, built by DuckDB in one
#: UNION ALL (its branches run in parallel): a page of 1,000 runs costs a few thousand short strings
#: in Python instead of tens of thousands of tuples and dicts, and ~40% less than one query per table
_SECTIONS_SQL = f"""
SELECT 0, run_id, to_json(list({{'key': key, 'value': value, 'timestamp': timestamp, 'step': step}}
                                ORDER BY key))::VARCHAR
FROM latest_metrics WHERE run_id {{ids}} GROUP BY run_id
UNION ALL SELECT 1, run_id, {_PAIRS_JSON}::VARCHAR FROM params WHERE run_id {{ids}} GROUP BY run_id
UNION ALL SELECT 2, run_id, {_PAIRS_JSON}::VARCHAR FROM tags WHERE run_id {{ids}} GROUP BY run_id
UNION ALL SELECT {_INFO}, run_id, {_INFO_JSON} FROM runs WHERE run_id {{ids}}
"""


def _named_in(ids: list[str]) -> tuple[str, dict[str, Any]]:
    """``IN (...)`` with named parameters, usable several times in one query (see ``_in``)."""
    if len(ids) <= 20:
        return f"IN ({', '.join(f'$r{i}' for i in range(len(ids)))})", {f"r{i}": v for i, v in enumerate(ids)}
    return "IN (SELECT unnest($ids))", {"ids": list(ids)}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _quote_non_finite(metrics_json: str) -> str:
    for bare, quoted in _NON_FINITE:
        if bare in metrics_json:
            metrics_json = metrics_json.replace(bare, quoted)
    return metrics_json


def _run_bodies(cursor: duckdb.DuckDBPyConnection, run_ids: list[str]) -> dict[str, str]:
    """``"info":{...},"data":{...}`` of each run that exists among ``run_ids``, from one query."""
    if not run_ids:
        return {}
    named_where, named = _named_in(run_ids)
    sections: dict[str, list[str]] = {}
    for section, run_id, text in cursor.execute(_SECTIONS_SQL.replace("{ids}", named_where), named).fetchall():
        sections.setdefault(run_id, ["", "", "", ""])[section] = _quote_non_finite(text) if section == 0 else text
    bodies = {}
    for run_id, parts in sections.items():
        if parts[_INFO]:  # rows under a run id the runs table lacks are no run
            data = ",".join(f'"{name}":{text}' for name, text in zip(_DATA_SECTIONS, parts, strict=False) if text)
            bodies[run_id] = f'"info":{parts[_INFO]},"data":{{{data}}}'
    return bodies


#: dataset inputs, logged-model inputs and logged-model outputs of a page of runs, in one query (each
#: table is small; one round trip instead of three). Columns: part, run_id, name or model_id, input
#: tags, digest, source_type, source, schema, profile, step
_LINKS_SQL = """
SELECT 0 AS part, i.run_id, d.name, i.tags, d.digest, d.source_type, d.source, d.schema, d.profile, NULL::BIGINT AS step
FROM run_inputs i JOIN datasets d ON d.dataset_id = i.dataset_id WHERE i.run_id {ids}
UNION ALL SELECT 1, run_id, model_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM run_model_inputs WHERE run_id {ids}
UNION ALL SELECT 2, run_id, model_id, NULL, NULL, NULL, NULL, NULL, NULL, step FROM run_outputs WHERE run_id {ids}
ORDER BY part, run_id, step NULLS FIRST, name, digest
"""


def _run_links(cursor: duckdb.DuckDBPyConnection, run_ids: list[str]) -> dict[str, str]:
    """``"inputs":{...},"outputs":{...}`` of each of ``run_ids``."""
    datasets: dict[str, list[dict[str, Any]]] = {}
    models_in: dict[str, list[dict[str, str]]] = {}
    models_out: dict[str, list[dict[str, Any]]] = {}
    named_where, named = _named_in(run_ids)
    for part, run_id, name, input_tags, digest, source_type, source, schema, profile, step in cursor.execute(
            _LINKS_SQL.replace("{ids}", named_where), named).fetchall():
        if part == 0:
            dataset_input: dict[str, Any] = {}
            if input_tags and input_tags != "{}":
                dataset_input["tags"] = pairs(json.loads(input_tags))
            dataset_input["dataset"] = dataset_json(name, digest, source_type, source, schema, profile)
            datasets.setdefault(run_id, []).append(dataset_input)
        elif part == 1:
            models_in.setdefault(run_id, []).append({"model_id": name})
        else:
            models_out.setdefault(run_id, []).append({"model_id": name, "step": step})
    links = {}
    for run_id in run_ids:
        inputs = {**({"dataset_inputs": datasets[run_id]} if run_id in datasets else {}),
                  **({"model_inputs": models_in[run_id]} if run_id in models_in else {})}
        outputs = {"model_outputs": models_out[run_id]} if run_id in models_out else {}
        links[run_id] = f'"inputs":{_dumps(inputs)},"outputs":{_dumps(outputs)}'
    return links


def load_runs_json(cursor: duckdb.DuckDBPyConnection, run_ids: list[str],
                   cache: tuple[RunJsonCache, Position] | None = None) -> list[str]:
    """Runs in MLflow's shape as JSON text, in the order of ``run_ids``; unknown ids are left out.

    With ``cache`` (the server's cache and the projector position read before this read began), runs
    whose JSON is cached are not read again, and the runs read are added to it."""
    if not run_ids:
        return []
    unique = list(dict.fromkeys(run_ids))
    snapshot = cache[0].lookup(cursor, cache[1], unique) if cache is not None else None
    runs = dict(snapshot.cached) if snapshot is not None else {}
    bodies = _run_bodies(cursor, [run_id for run_id in unique if run_id not in runs])
    if bodies:
        links = _run_links(cursor, list(bodies))
        built = {run_id: f"{{{body},{links[run_id]}}}" for run_id, body in bodies.items()}
        if cache is not None and snapshot is not None:
            cache[0].store(snapshot.epoch, built)
        runs.update(built)
    return [runs[run_id] for run_id in unique if run_id in runs]


def load_experiments(cursor: duckdb.DuckDBPyConnection, experiment_ids: list[str]) -> list[dict[str, Any]]:
    """Experiments in MLflow's shape, in the order of ``experiment_ids``; unknown ids are left out."""
    if not experiment_ids:
        return []
    where, ids = _in(experiment_ids)
    rows = {row[0]: row for row in cursor.execute(
        f"SELECT {', '.join(EXPERIMENT_COLUMNS)}, creation_time, last_update_time FROM experiments "
        f"WHERE experiment_id {where}", ids).fetchall()}
    tags: dict[str, list[dict[str, str]]] = {experiment_id: [] for experiment_id in rows}
    for experiment_id, key, value in cursor.execute(
            f"SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id {where} ORDER BY key",
            ids).fetchall():
        tags[experiment_id].append({"key": key, "value": value})
    shaped = []
    for experiment_id in experiment_ids:
        row = rows.get(experiment_id)
        if row is None:
            continue
        experiment = {"experiment_id": row[0], "name": row[1], "artifact_location": row[2] or "",
                      "lifecycle_stage": row[3], "last_update_time": row[5], "creation_time": row[4]}
        if tags[experiment_id]:
            experiment["tags"] = tags[experiment_id]
        experiment["workspace"] = WORKSPACE
        shaped.append(experiment)
    return shaped
