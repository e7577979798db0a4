"""Metric history with server-side min/max downsampling, on a real server."""

from __future__ import annotations

import math

from ledgerflow.ingest.log import open_log
from ledgerflow.schemas import pack_series
from tests.projector.workload import DAY1, DAY2, Workload

RUN = "a" * 32
SPIKE_STEP = 617


def _load(server, points: int = 1000) -> None:
    w = Workload(7)
    w.event("RunStarted", DAY1, f"run/{RUN}", run_id=RUN, experiment_id="e", run_name="spiky", parent_run_id=None,
            start_time=1, status="RUNNING", user_id="ana", artifact_uri=None, tags=[])
    steps = list(range(points))
    values = [1e12 if s == SPIKE_STEP else -math.inf if s == 10 else math.nan if s == 3 else 1.0 / (s + 1) for s in steps]
    for start in range(0, points, 400):  # several events, so rows of one series come from several batches
        part = steps[start:start + 400]
        w.event("MetricsLogged", DAY2, f"run/{RUN}", run_id=RUN, series=[
            pack_series("loss", part, [1000 + s for s in part], values[start:start + 400]),
            pack_series("flat", part, [1000 + s for s in part], [0.5] * len(part))])
    log = open_log(server.log_uri)
    try:
        log.append_batch(w.entries())
    finally:
        log.close()


def test_downsampling_keeps_a_spike_and_the_envelope(server) -> None:
    _load(server)
    with server.client() as client:
        body = client.get(f"/api/v1/runs/{RUN}/metric-history", params={"key": "loss", "max_points": 10}).json()
        assert body["downsampled"] is True and body["total_points"] == 1000 and body["max_points"] == 10
        points = body["points"]
        assert 2 <= len(points) <= 10 and body["returned_points"] == len(points)
        assert {"step": SPIKE_STEP, "timestamp": 1000 + SPIKE_STEP, "value": 1e12} in points
        assert {"step": 10, "timestamp": 1010, "value": "-Infinity"} in points  # the lowest survives too
        assert [p["step"] for p in points] == sorted(p["step"] for p in points)
        flat = client.get(f"/api/v1/runs/{RUN}/metric-history", params={"key": "flat", "max_points": 10}).json()
        assert {p["value"] for p in flat["points"]} == {0.5} and len(flat["points"]) <= 10


def test_full_history_step_range_and_special_values(server) -> None:
    _load(server)
    with server.client() as client:
        body = client.get(f"/api/v1/runs/{RUN}/metric-history",
                          params={"key": "loss", "start_step": 2, "end_step": 11}).json()
        assert body["downsampled"] is False and body["total_points"] == 10
        assert [p["step"] for p in body["points"]] == list(range(2, 12))
        assert body["points"][1] == {"step": 3, "timestamp": 1003, "value": "NaN"}
        assert body["points"][-2]["value"] == "-Infinity"
        everything = client.get(f"/api/v1/runs/{RUN}/metric-history", params={"key": "loss"}).json()
        assert everything["downsampled"] is False and len(everything["points"]) == 1000  # default max_points 1000
        missing = client.get(f"/api/v1/runs/{RUN}/metric-history", params={"key": "nope"})
        assert missing.status_code == 200 and missing.json()["points"] == [] and missing.json()["total_points"] == 0


def test_history_errors(server) -> None:
    _load(server, points=10)
    url = f"/api/v1/runs/{RUN}/metric-history"
    with server.client() as client:
        unknown = client.get(f"/api/v1/runs/{'b' * 32}/metric-history", params={"key": "loss"})
        assert unknown.status_code == 404 and "b" * 32 in unknown.json()["message"]
        for params, named in (({}, "key"), ({"key": "loss", "max_points": 0}, "max_points"),
                              ({"key": "loss", "max_points": 100_001}, "max_points"),
                              ({"key": "loss", "max_points": "many"}, "max_points"),
                              ({"key": "loss", "start_step": 5, "end_step": 4}, "start_step"),
                              ({"key": "loss", "end_step": 2**70}, "end_step")):
            response = client.get(url, params=params)
            assert response.status_code == 400, params
            assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE" and named in response.json()["message"]
