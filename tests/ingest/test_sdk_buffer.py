"""Buffering, batching, flush at exit, back-pressure and delivery failures, against real file logs."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import ledgerflow as lf
from ledgerflow.schemas import count_points

from .conftest import metric_points, of_type, read_events


def test_many_points_become_few_events(data_home: Path) -> None:
    with lf.TrackingClient(f"file:{data_home}", flush_interval=60) as client:
        run = client.create_run("0").info.run_id
        for i in range(15_000):
            client.log_metric(run, "loss", i * 0.5, timestamp=1_000 + i, step=i)
            client.log_metric(run, "acc", -i, step=i, timestamp=5)
        client.flush()
    events = read_events(data_home)
    metrics = of_type(events, "MetricsLogged")
    assert len(metrics) == 3  # 30,000 points, at most 10,000 per event, one flush
    assert all(count_points(e.body["series"]) <= 10_000 for e in metrics)
    points = metric_points(events)
    assert points["loss"] == [(i, 1_000 + i, i * 0.5) for i in range(15_000)]
    assert points["acc"] == [(i, 5, float(-i)) for i in range(15_000)]


def test_periodic_flush_without_calls(data_home: Path) -> None:
    with lf.TrackingClient(f"file:{data_home}", flush_interval=0.05) as client:
        run = client.create_run("0").info.run_id
        client.log_metric(run, "m", 1.0)
        deadline = time.monotonic() + 10
        while not of_type(read_events(data_home), "MetricsLogged") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [e.type for e in read_events(data_home)] == ["ExperimentCreated", "RunStarted", "MetricsLogged"]


_EXIT_SCRIPT = """
import sys, ledgerflow as lf
lf.set_tracking_uri("file:" + sys.argv[1])
lf.set_experiment("exit")
run = lf.start_run()
for i in range(20_000):
    lf.log_metric("m", i / 2, step=i)
lf.set_tag("last", "tag")
client = lf.TrackingClient("file:" + sys.argv[1])
client.log_metric(run.info.run_id, "other", 7.0)
print(run.info.run_id)
"""


def test_flush_at_exit(data_home: Path) -> None:
    env = dict(os.environ, LEDGERFLOW_FLUSH_INTERVAL="600")  # only the exit hook can deliver in time
    done = subprocess.run([sys.executable, "-c", _EXIT_SCRIPT, str(data_home)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    events = read_events(data_home)
    points = metric_points(events, run_id)
    assert points["m"] == [(i, points["m"][i][1], i / 2) for i in range(20_000)]
    assert points["other"][0][2] == 7.0
    assert of_type(events, "RunTagsSet")[0].body["tags"] == [{"key": "last", "value": "tag"}]
    assert of_type(events, "RunStatusChanged")[0].body["status"] == "FINISHED"  # ended at exit, as MLflow


class HeldLogLock:
    """Hold the embedded log's append lock from outside, as another writer would: appends block."""

    def __init__(self, home: Path) -> None:
        self.fd = os.open(home / "events" / "log.lock", os.O_RDWR)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def test_full_buffer_blocks_until_drained(data_home: Path) -> None:
    client = lf.TrackingClient(f"file:{data_home}", buffer_max_points=10, flush_interval=0.01)
    run = client.create_run("0").info.run_id
    client.flush()
    held = HeldLogLock(data_home)
    logged: list[int] = []

    def train() -> None:
        for i in range(50):
            client.log_metric(run, "m", float(i), step=i)
            logged.append(i)

    trainer = threading.Thread(target=train)
    try:
        trainer.start()
        time.sleep(0.5)
        assert trainer.is_alive() and len(logged) == 10  # blocked: the buffer holds 10 undelivered points
    finally:
        held.release()
    trainer.join(timeout=30)
    assert not trainer.is_alive() and len(logged) == 50
    client.close()
    assert metric_points(read_events(data_home))["m"] == [(i, metric_points(read_events(data_home))["m"][i][1],
                                                           float(i)) for i in range(50)]


@pytest.mark.parametrize("configured_by", ["argument", "environment"])
def test_full_buffer_raises_when_configured(data_home: Path, monkeypatch: pytest.MonkeyPatch,
                                             configured_by: str) -> None:
    if configured_by == "environment":
        monkeypatch.setenv("LEDGERFLOW_BUFFER_FULL", "raise")
        monkeypatch.setenv("LEDGERFLOW_BUFFER_MAX_POINTS", "10")
        client = lf.TrackingClient(f"file:{data_home}", flush_interval=0.01)
    else:
        client = lf.TrackingClient(f"file:{data_home}", buffer_max_points=10, buffer_full="raise", flush_interval=0.01)
    run = client.create_run("0").info.run_id
    client.flush()
    held = HeldLogLock(data_home)
    try:
        for i in range(10):
            client.log_metric(run, "m", float(i), step=i)
        with pytest.raises(lf.BufferFullError, match="10 of 10 points"):
            client.log_metric(run, "m", 10.0, step=10)
    finally:
        held.release()
    client.flush()
    client.log_metric(run, "m", 10.0, step=10)
    client.close()
    assert [p[2] for p in metric_points(read_events(data_home))["m"]] == [float(i) for i in range(11)]


def _break_log(home: Path) -> Path:
    """Make the next append fail for real: the active segment file is a directory."""
    segment = home / "events" / "segments" / f"{0:020d}.seg"
    segment.mkdir(parents=True)
    return segment


def test_delivery_failure_surfaces_and_nothing_is_lost(data_home: Path) -> None:
    client = lf.TrackingClient(f"file:{data_home}", flush_interval=0.02)
    segment = _break_log(data_home)
    run = client.create_run("0").info.run_id
    client.log_metric(run, "m", 0.0)
    accepted = [0.0]
    with pytest.raises(lf.DeliveryFailedError, match="not durable") as raised:
        client.flush()
    assert raised.value.__cause__ is not None
    deadline = time.monotonic() + 10  # the background flusher fails too: a later call must say so
    with pytest.raises(lf.DeliveryFailedError, match="retried at the next flush"):
        while time.monotonic() < deadline:
            value = float(len(accepted))
            client.log_metric(run, "m", value, step=len(accepted))
            accepted.append(value)  # only calls that returned normally logged their point
            time.sleep(0.005)
    segment.rmdir()
    client.flush()
    client.close()
    events = read_events(data_home)
    assert [e.type for e in events[:2]] == ["ExperimentCreated", "RunStarted"]
    assert [p[2] for p in metric_points(events)["m"]] == accepted  # each accepted point exactly once, in order
    assert [e.envelope["sequence"] for e in events] == list(range(len(events)))


def test_end_run_raises_on_delivery_failure_and_can_be_retried(lf_home: Path) -> None:
    run = lf.start_run()
    lf.flush()
    segment = lf_home / "events" / "segments"
    moved = segment.with_name("segments-away")
    segment.rename(moved)
    segment.write_text("not a directory")
    lf.log_metric("m", 1.0)
    with pytest.raises(lf.DeliveryFailedError):
        lf.end_run()
    assert lf.active_run() is run
    segment.unlink()
    moved.rename(segment)
    lf.end_run()
    assert lf.active_run() is None
    events = read_events(lf_home)
    assert metric_points(events)["m"][0][2] == 1.0
    assert of_type(events, "RunStatusChanged")[-1].body["status"] == "FINISHED"
