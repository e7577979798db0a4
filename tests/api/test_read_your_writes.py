"""Read-your-writes: a client that got its write acknowledged sees it in its very next read.

Writes go through POST /api/v1/events and through the SDK over HTTP, while other threads ingest
concurrently; reads are ordinary query endpoints (GET /api/v1/runs/{id}, lf.Client). Embedded and
Kafka. And the wait is bounded: a projector that does not catch up yields 503 PROJECTION_LAG.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

import ledgerflow as lf
from ledgerflow.api.app import create_app
from ledgerflow.api.runtime import Runtime
from ledgerflow.ingest.log import open_log
from tests.api.serving import RunningServer, free_port

from .test_ingest import run_events


@contextmanager
def background_ingest(url: str, threads: int = 2) -> Iterator[list[int]]:
    """Other clients writing small batches as fast as they can; yields their write counts."""
    stop, counts, errors = threading.Event(), [0] * threads, []

    def write(slot: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not stop.is_set():
                answer = client.post("/api/v1/events", json={"events": run_events(uuid.uuid4().hex, points=50)})
                if answer.status_code != 200:
                    errors.append(answer.text)
                    return
                counts[slot] += 1

    workers = [threading.Thread(target=write, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    try:
        yield counts
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
    assert not errors, errors


def test_a_write_is_visible_to_the_next_read_under_concurrent_ingest(server: RunningServer) -> None:
    latencies = []
    with background_ingest(server.url) as others, server.client() as client:
        for _ in range(15):
            run_id = uuid.uuid4().hex
            started = time.perf_counter()
            assert client.post("/api/v1/events", json={"events": run_events(run_id, points=20)}).status_code == 200
            read = client.get(f"/api/v1/runs/{run_id}")
            latencies.append(time.perf_counter() - started)
            assert read.status_code == 200, read.text  # never a 404: the write is visible at once
            run = read.json()["run"]
            assert run["data"]["params"] == {"depth": "4", "lr": "0.1"}
            assert run["data"]["metrics"]["loss"]["step"] == 19
    assert sum(others) > 0
    print(f"write+read p50 {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms "
          f"with {sum(others)} concurrent batches")


def test_the_sdk_over_http_reads_its_writes(server: RunningServer, data_home: Path) -> None:
    from ledgerflow.ingest.sdk import fluent

    fluent._reset_for_tests()
    try:
        lf.set_tracking_uri(server.url)
        with background_ingest(server.url, threads=1), lf.Client(server.url) as reader:
            for attempt in range(3):
                with lf.start_run(run_name=f"ryw-{attempt}") as run:
                    lf.log_param("attempt", attempt)
                    for step in range(100):
                        lf.log_metric("acc", step / 100, step=step)
                # end_run returned: everything is durable, so the next read must see it all
                seen = reader.get_run(run.info.run_id)
                assert seen["info"]["status"] == "FINISHED"
                assert seen["data"]["params"] == {"attempt": str(attempt)}
                assert seen["data"]["metrics"]["acc"]["value"] == 0.99
    finally:
        fluent._reset_for_tests()


@pytest.mark.parametrize("mode", ["embedded", "kafka"])
def test_a_projection_that_does_not_catch_up_answers_503_after_the_bounded_wait(
        mode: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A runtime whose projector has not started: the write is durable, the read waits read_wait, then 503."""
    home = tmp_path / "home"
    home.mkdir()
    if mode == "embedded":
        uri = f"file:{home}"
    else:
        uri = f"kafka://{request.getfixturevalue('kafka_bootstrap')}/{request.getfixturevalue('kafka_topic')(3)}"
    runtime = Runtime(open_log(uri), home / "state.duckdb", read_wait=0.3)  # projector not started (yet)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    run_id, projecting = uuid.uuid4().hex, False
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            assert client.post("/api/v1/events", json={"events": run_events(run_id)}).status_code == 200
            started = time.perf_counter()
            lagging = client.get(f"/api/v1/runs/{run_id}")
            waited = time.perf_counter() - started
            assert lagging.status_code == 503, lagging.text
            assert lagging.json()["error_code"] == "PROJECTION_LAG"
            assert "has not reached the log position of this request within 0.3 s" in lagging.json()["message"]
            assert 0.3 <= waited < 5
            # eventual consistency does not wait: the run is simply not projected yet
            assert client.get(f"/api/v1/runs/{run_id}", params={"consistency": "eventual"}).status_code == 404
            with pytest.raises(lf.ServerError) as raised:
                lf.Client(f"http://127.0.0.1:{port}").get_run(run_id)
            assert raised.value.error_code == "PROJECTION_LAG" and raised.value.status == 503
            assert raised.value.transient
            runtime.start()  # the projector catches up: the same read now succeeds
            projecting = True
            assert client.get(f"/api/v1/runs/{run_id}").status_code == 200
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        if not projecting:
            runtime.start()  # stop() joins the projector thread, so it must have started
        runtime.stop()
