"""The HTTP event log (the SDK writing through a server) against a real server, embedded and Kafka."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

import ledgerflow as lf
from ledgerflow.api.app import create_app
from ledgerflow.api.runtime import Runtime
from ledgerflow.errors import ConfigurationError
from ledgerflow.ingest.log import DeliveryError, Entry, LogError, LogUnavailableError, open_log
from ledgerflow.ingest.log.file import FileLog
from ledgerflow.ingest.log.http import MAX_REQUEST_EVENTS, HttpLog, _chunks
from ledgerflow.schemas import Event, decode, encode, make_envelope
from tests.api.serving import free_port, log_uri_for, serving


@pytest.fixture(params=["embedded", "kafka"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, Runtime]]:
    """(server URL, the server's own log URI, its runtime) of a real server on loopback."""
    home = tmp_path / "server-home"
    home.mkdir()
    with serving(log_uri_for(request, home), home) as running:
        yield running.url, running.log_uri, running.runtime


def _entries(n: int, run_id: str | None = None) -> list[Entry]:
    run_id = run_id or uuid.uuid4().hex
    out = []
    for i in range(n):
        envelope = make_envelope(actor="t", producer_id="p", sequence=i, entity_key=f"run/{run_id}")
        out.append(Entry(f"run/{run_id}", encode(Event("RunTagsSet", {
            "envelope": envelope, "run_id": run_id, "tags": [{"key": f"k{i}", "value": "v"}]}))))
    return out


def test_append_batch_returns_the_servers_positions(served: tuple[str, str, Runtime]) -> None:
    url, server_log_uri, _ = served
    entries = _entries(5)
    with open_log(url) as log:
        assert isinstance(log, HttpLog) and log.uri == url
        before = log.end_position()
        positions = log.append_batch(entries)
        after = log.end_position()
        assert log.append_batch([]) == []
    assert len(positions) == 5 and after != before
    with open_log(server_log_uri) as direct:
        stored = {(r.partition, r.offset): r.value for r in direct.read_all()}
        assert direct.end_position() == after
    assert [stored[p] for p in positions] == [e.value for e in entries]


def test_a_refused_batch_raises_delivery_error_with_the_servers_message(served: tuple[str, str, Runtime]) -> None:
    url, _, _ = served
    good = _entries(2)
    with HttpLog(url) as log:
        before = log.end_position()
        with pytest.raises(DeliveryError, match=r"refused 3 events \(HTTP 400\): INVALID_PARAMETER_VALUE: .*event 2: "
                                                r"not an Avro single-object encoded event"):
            log.append_batch([*good, Entry("run/x", b"garbage")])
        assert log.end_position() == before  # all-or-nothing


def test_reading_over_http_is_refused(served: tuple[str, str, Runtime]) -> None:
    url, _, _ = served
    with HttpLog(url) as log:
        with pytest.raises(LogError, match="cannot be read over HTTP; query the server"):
            log.reader()
        with pytest.raises(LogError, match="cannot be read over HTTP"):
            list(log.read_all())


def test_an_unreachable_server_raises_log_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with HttpLog(url, timeout=5) as log:
        with pytest.raises(LogUnavailableError, match=f"cannot reach the ledgerflow server at {url}"):
            log.append_batch(_entries(1))
        with pytest.raises(LogUnavailableError):
            log.end_position()


def test_bad_http_uris() -> None:
    for uri in ("http://", "http://host:notaport"):
        with pytest.raises(ConfigurationError):
            open_log(uri)


def test_big_batches_are_split_into_requests() -> None:
    entries = [Entry("k", b"x" * 10)] * (2 * MAX_REQUEST_EVENTS + 1)
    chunks = list(_chunks(entries))
    assert [len(c) for c in chunks] == [MAX_REQUEST_EVENTS, MAX_REQUEST_EVENTS, 1]
    huge = [Entry("k", b"x" * (20 * 1024 * 1024))] * 3
    assert [len(c) for c in _chunks(huge)] == [1, 1, 1]
    assert list(_chunks([])) == []


def test_the_sdk_logs_through_the_server(served: tuple[str, str, Runtime], data_home: Path) -> None:
    """lf.set_tracking_uri("http://...") end to end: SDK -> HTTP -> server's log -> projection."""
    from ledgerflow.ingest.sdk import fluent

    url, server_log_uri, runtime = served
    fluent._reset_for_tests()
    try:
        lf.set_tracking_uri(url)
        assert lf.get_tracking_uri() == url
        lf.set_experiment("over-http")
        with lf.start_run(run_name="via-server") as run:
            lf.log_params({"lr": 0.01, "layers": 3})
            for step in range(200):
                lf.log_metric("loss", 1 / (step + 1), step=step)
            lf.set_tag("stage", "test")
        run_id = run.info.run_id
    finally:
        fluent._reset_for_tests()
    with runtime.read_cursor() as cursor:
        assert cursor.execute("SELECT count(*) FROM metrics WHERE run_id = ?", [run_id]).fetchone() == (200,)
        assert cursor.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchone() == ("FINISHED",)
        assert dict(cursor.execute("SELECT key, value FROM params WHERE run_id = ?", [run_id]).fetchall()) == {
            "lr": "0.01", "layers": "3"}
    with open_log(server_log_uri) as log:
        producers = {decode(r.value).envelope["producer_id"] for r in log.read_all()}
    assert len(producers) == 1 and not next(iter(producers)).startswith("server-")  # the SDK's envelopes, kept


def test_a_delivery_failure_surfaces_in_the_sdk_and_is_retried(tmp_path: Path, data_home: Path) -> None:
    """Server down: flush raises DeliveryFailedError; once a server answers, the kept batch is delivered."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    client = lf.TrackingClient(url, flush_interval=60)
    run = client.create_run("0", run_name="waiting")
    client.log_metric(run.info.run_id, "m", 1.0, step=0)
    with pytest.raises(lf.DeliveryFailedError, match="cannot reach the ledgerflow server"):
        client.flush()
    home = tmp_path / "late-server"
    home.mkdir()
    runtime = Runtime(FileLog(home / "events"), home / "state.duckdb")
    runtime.start()
    server = uvicorn.Server(uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        client.flush()
        client.close()
        with runtime.read_cursor() as cursor:
            assert cursor.execute("SELECT count(*) FROM metrics WHERE run_id = ?",
                                  [run.info.run_id]).fetchone() == (1,)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        runtime.stop()
