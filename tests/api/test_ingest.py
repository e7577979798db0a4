"""POST /api/v1/events and GET /api/v1/log/position on a real server, embedded and Kafka."""

from __future__ import annotations

import socket
import struct
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledgerflow.ingest.log import open_log
from ledgerflow.schemas import Event, decode, encode, make_envelope, pack_series
from tests.api.serving import RunningServer, start_server

AVRO = "application/vnd.ledgerflow.events+avro"


def run_events(run_id: str, points: int = 3) -> list[dict[str, Any]]:
    """JSON events of one small run: started, two params, one metric series."""
    return [
        {"type": "RunStarted", "fields": {"run_id": run_id, "experiment_id": "0", "run_name": "r", "start_time": 1,
                                          "status": "RUNNING", "user_id": "ana", "tags": []}},
        {"type": "ParamsLogged", "fields": {"run_id": run_id, "params": [{"key": "lr", "value": "0.1"},
                                                                        {"key": "depth", "value": "4"}]}},
        {"type": "MetricsLogged", "fields": {"run_id": run_id, "series": [
            {"key": "loss", "values": [1.0 / (i + 1) for i in range(points - 1)] + ["NaN"]}]}},
    ]


def avro_event(event_type: str, entity_key: str, **fields: Any) -> bytes:
    envelope = make_envelope(actor="avro-client", producer_id="p-test", sequence=0, entity_key=entity_key)
    return encode(Event(event_type, {"envelope": envelope, **fields}))


def frames(*values: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(v)) + v for v in values)


def query(server: RunningServer, sql: str, *args: Any) -> list[tuple]:
    """Read the projection the way every API read does: through the runtime's read-your-writes cursor."""
    with server.runtime.read_cursor() as cursor:
        return cursor.execute(sql, list(args)).fetchall()


def end(server: RunningServer) -> dict[str, int]:
    with server.client() as client:
        return client.get("/api/v1/log/position").json()["end_position"]


def test_json_events_are_durable_validated_and_projected(server: RunningServer) -> None:
    run_id = uuid.uuid4().hex
    with server.client() as client:
        answer = client.post("/api/v1/events", json={"events": run_events(run_id)},
                             headers={"X-Ledgerflow-Actor": "bob"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
    assert len(body["positions"]) == 3 and all(len(p) == 2 for p in body["positions"])
    assert all(body["end_position"][str(p)] > o for p, o in body["positions"])
    assert query(server, "SELECT key, value FROM params WHERE run_id = ? ORDER BY key", run_id) == [
        ("depth", "4"), ("lr", "0.1")]
    values = [v for (v,) in query(server, "SELECT value FROM metrics WHERE run_id = ? ORDER BY step", run_id)]
    assert values[:2] == [1.0, 0.5] and values[2] != values[2]  # NaN travels as "NaN"
    envelopes = query(server, "SELECT actor, producer_id, sequence, entity_key FROM events WHERE run_id = ? "
                              "ORDER BY sequence", run_id)
    assert {(a, k) for a, _, _, k in envelopes} == {("bob", f"run/{run_id}")}
    assert len({p for _, p, _, _ in envelopes}) == 1 and envelopes[0][1].startswith("server-")
    sequences = [s for _, _, s, _ in envelopes]
    assert sequences == list(range(sequences[0], sequences[0] + 3))


def test_json_envelope_options_and_body_actor(server: RunningServer) -> None:
    run_id, event_id = uuid.uuid4().hex, uuid.uuid4()
    started = run_events(run_id)[0]
    started["envelope"] = {"event_id": str(event_id), "occurred_at": "2024-05-01T12:00:00+02:00", "actor": "eve"}
    tags = {"type": "RunTagsSet", "fields": {"run_id": run_id, "tags": [{"key": "k", "value": "v"}]},
            "envelope": {"occurred_at": 1_714_560_000_000}}
    with server.client() as client:
        assert client.post("/api/v1/events", json={"events": [started, tags], "actor": "carol"}).status_code == 200
    rows = query(server, "SELECT event_id, actor, epoch_ms(occurred_at) FROM events WHERE run_id = ? "
                         "ORDER BY sequence", run_id)
    assert rows == [(event_id, "eve", 1_714_557_600_000), (rows[1][0], "carol", 1_714_560_000_000)]


def test_avro_frames_are_stored_byte_for_byte(server: RunningServer) -> None:
    run_id = uuid.uuid4().hex
    started = avro_event("RunStarted", f"run/{run_id}", run_id=run_id, experiment_id="0", run_name="a",
                         start_time=5, status="RUNNING", user_id="u", tags=[], parent_run_id=None,
                         artifact_uri=None)
    metrics = avro_event("MetricsLogged", f"run/{run_id}", run_id=run_id,
                         series=[pack_series("acc", range(100), [7] * 100, [i / 100 for i in range(100)])])
    with server.client() as client:
        answer = client.post("/api/v1/events", content=frames(started, metrics), headers={"Content-Type": AVRO})
    assert answer.status_code == 200, answer.text
    assert query(server, "SELECT count(*), max(value) FROM metrics WHERE run_id = ?", run_id) == [(100, 0.99)]
    with open_log(server.log_uri) as log:
        positions = {tuple(p) for p in answer.json()["positions"]}
        stored = [r.value for r in log.read_all() if (r.partition, r.offset) in positions]
    assert sorted(stored) == sorted([started, metrics])


def test_a_bad_event_rejects_the_whole_batch(server: RunningServer) -> None:
    run_id = uuid.uuid4().hex
    good = run_events(run_id)
    before = end(server)
    bad_json = [
        ([*good[:2], {"type": "ParamsLogged", "fields": {"run_id": run_id, "params": [{"key": "x", "value": 1}]}}],
         "event 2: ParamsLogged"),
        ([good[0], {"type": "NoSuchEvent", "fields": {}}], "event 1: unknown event type 'NoSuchEvent'"),
        ([good[0], {"type": "RunStarted", "fields": {"run_id": run_id}}], "event 1: RunStarted: missing required"),
        ([{"type": "RunTagsSet", "fields": {"run_id": run_id, "tags": [], "colour": "red"}}],
         "event 0: RunTagsSet: unknown field(s) colour"),
        ([good[0], {"type": "RunStarted", "fields": good[0]["fields"], "envelope": {"sequence": 3}}],
         "event 1: envelope may only set"),
        ([good[0], {"type": "RunStarted", "fields": good[0]["fields"], "envelope": {"event_id": "nope"}}],
         "event 1: envelope.event_id 'nope' is not a UUID"),
        ([{"type": "MetricsLogged", "fields": {"run_id": run_id, "series": [{"key": "m", "values": [1, 2],
                                                                              "steps": [0]}]}}],
         "event 0: series 'm': values, steps and timestamps differ in length"),
        ([{"type": "MetricsLogged", "fields": {"run_id": run_id, "series": [{"key": "m", "values": ["x"]}]}}],
         "event 0: series 'm': value 'x' is not a number"),
        ([{"type": "RunTagsSet", "fields": {"tags": []}}], "event 0: RunTagsSet: missing required field(s) run_id"),
    ]
    started = avro_event("RunStarted", f"run/{run_id}", run_id=run_id, experiment_id="0", run_name="a",
                         start_time=5, status="RUNNING", user_id="u", tags=[], parent_run_id=None,
                         artifact_uri=None)
    unknown_fingerprint = started[:2] + b"\x00" * 8 + started[10:]
    bad_avro = [
        (frames(started, started[:-3]), "event 1: RunStarted v1: corrupt event body"),
        (frames(started, started, unknown_fingerprint), "event 2: unknown writer schema fingerprint"),
        (frames(b"{json}"), "event 0: not an Avro single-object encoded event"),
        (frames(started) + b"\x01\x00", "event 1: truncated frame"),
        (frames(started) + struct.pack("<I", 1000) + b"abc", "event 1: frame length 1000 does not fit"),
        (frames(avro_event("RunTagsSet", "run/other", run_id=run_id, tags=[])),
         f"event 0: RunTagsSet must carry entity_key 'run/{run_id}', not 'run/other'"),
        (frames(avro_event("MetricsLogged", f"run/{run_id}", run_id=run_id,
                           series=[{"key": "m", "steps": b"\0" * 8, "timestamps": b"\0" * 8, "values": b"\0" * 16}])),
         "event 0:"),
    ]
    with server.client() as client:
        for events, message in bad_json:
            answer = client.post("/api/v1/events", json={"events": events})
            assert answer.status_code == 400, (message, answer.text)
            assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
            assert message in answer.json()["message"] and "nothing was appended" in answer.json()["message"]
        for body, message in bad_avro:
            answer = client.post("/api/v1/events", content=body, headers={"Content-Type": AVRO})
            assert answer.status_code == 400, (message, answer.text)
            assert message in answer.json()["message"], answer.text
    assert end(server) == before
    assert query(server, "SELECT count(*) FROM events WHERE run_id = ?", run_id) == [(0,)]


@pytest.mark.parametrize(("body", "content_type", "status", "message"), [
    (b"{not json", "application/json", 400, "the body is not valid JSON"),
    (b'{"events": []}', "application/json", 400, "the batch holds no events"),
    (b'{"events": {}}', "application/json", 400, 'the body must be a JSON object {"events"'),
    (b'[1, 2]', "application/json", 400, 'the body must be a JSON object {"events"'),
    (b'{"events": [], "extra": 1}', "application/json", 400, "unknown top-level fields ['extra']"),
    (b'{"events": [{"type": "RunStarted"}], "actor": 5}', "application/json", 400, "actor must be a non-empty string"),
    (b"", AVRO, 400, "the batch holds no events"),
    (b"a=b", "application/x-www-form-urlencoded", 415, "send application/json or"),
])
def test_malformed_bodies_get_4xx_with_a_message(embedded_server: RunningServer, body: bytes, content_type: str,
                                                 status: int, message: str) -> None:
    with embedded_server.client() as client:
        answer = client.post("/api/v1/events", content=body, headers={"Content-Type": content_type})
    assert answer.status_code == status, answer.text
    assert message in answer.json()["message"]


def test_size_limits(embedded_server: RunningServer) -> None:
    event = {"type": "RunTagDeleted", "fields": {"run_id": "r", "key": "k"}}
    with embedded_server.client() as client:
        answer = client.post("/api/v1/events", json={"events": [event] * 10_001})
        assert answer.status_code == 413 and "at most 10000" in answer.json()["message"]
        small = frames(avro_event("RunTagDeleted", "run/r", run_id="r", key="k"))
        answer = client.post("/api/v1/events", content=small * 10_001, headers={"Content-Type": AVRO})
        assert answer.status_code == 413 and "at most 10000" in answer.json()["message"]
    # a declared body over 64 MiB is refused before it is read
    host, port = embedded_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 70000000\r\n\r\n")
        reply = b""
        while b"}" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        reply = reply.decode()
    assert reply.startswith("HTTP/1.1 413") and "at most 67108864 are accepted" in reply
    assert not any(end(embedded_server).values())  # nothing was appended


def test_counters_and_log_position(embedded_server: RunningServer) -> None:
    with embedded_server.client() as client:
        before = client.get("/api/v1/log/position").json()
        answer = client.post("/api/v1/events", json={"events": run_events(uuid.uuid4().hex, points=5)})
        after = client.get("/api/v1/log/position").json()
        metrics = client.get("/metrics").text
    assert before["log"] == after["log"] == embedded_server.runtime.log.uri
    assert after["end_position"] == answer.json()["end_position"] != before["end_position"]
    assert "\nledgerflow_ingested_events_total 3\n" in metrics
    assert "\nledgerflow_ingested_points_total 5\n" in metrics


@pytest.mark.parametrize("mode", ["embedded", "kafka"])
def test_acknowledged_events_survive_a_restart(mode: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    home = tmp_path / "home"
    home.mkdir()
    if mode == "embedded":
        uri = f"file:{home}"
    else:
        topic = request.getfixturevalue("kafka_topic")(partitions=3)
        uri = f"kafka://{request.getfixturevalue('kafka_bootstrap')}/{topic}"
    run_id = uuid.uuid4().hex
    running, uvicorn_server, thread = start_server(open_log(uri), uri, home)
    try:
        with running.client() as client:
            assert client.post("/api/v1/events", json={"events": run_events(run_id)}).status_code == 200
    finally:
        uvicorn_server.should_exit = True
        thread.join(timeout=30)
        running.runtime.stop()
    (home / "state.duckdb").unlink()  # rebuilt from the log alone: the events were durable there
    running, uvicorn_server, thread = start_server(open_log(uri), uri, home)
    try:
        with running.client() as client:
            found = client.get(f"/api/v1/runs/{run_id}")
        assert found.status_code == 200, found.text
        assert found.json()["run"]["data"]["params"] == {"depth": "4", "lr": "0.1"}
    finally:
        uvicorn_server.should_exit = True
        thread.join(timeout=30)
        running.runtime.stop()


def test_a_log_that_cannot_take_the_write_answers_503(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    uri = f"file:{home}"
    running, uvicorn_server, thread = start_server(open_log(uri), uri, home)
    try:
        running.runtime.log.close()  # the log is gone (as during shutdown): nothing can be acknowledged
        with running.client() as client:
            answer = client.post("/api/v1/events", json={"events": run_events(uuid.uuid4().hex)})
        assert answer.status_code == 503, answer.text
        assert answer.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
        assert "nothing is acknowledged" in answer.json()["message"]
    finally:
        uvicorn_server.should_exit = True
        thread.join(timeout=30)
        try:
            running.runtime.stop()
        except Exception:
            pass  # the log was closed on purpose


def test_decoded_events_round_trip(embedded_server: RunningServer) -> None:
    """What the JSON path stores decodes with the catalog like any SDK event."""
    run_id = uuid.uuid4().hex
    with embedded_server.client() as client:
        positions = client.post("/api/v1/events", json={"events": run_events(run_id)}).json()["positions"]
    with open_log(embedded_server.log_uri) as log:
        events = [decode(r.value) for r in log.read_all() if [r.partition, r.offset] in positions]
    assert [e.type for e in events] == ["RunStarted", "ParamsLogged", "MetricsLogged"]
    assert events[0].body["parent_run_id"] is None  # defaults filled in


def test_unknown_http_errors_keep_the_error_shape(embedded_server: RunningServer) -> None:
    with httpx.Client(base_url=embedded_server.url) as client:
        answer = client.get("/api/v1/events")
    assert answer.status_code == 405 and set(answer.json()) == {"error_code", "message"}
