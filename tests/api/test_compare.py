"""POST /api/v1/runs/compare on a real server (embedded and Kafka): diffs, latest metrics, aligned series."""

from __future__ import annotations

import math
import uuid

import pytest

from ledgerflow.ingest.log import open_log
from ledgerflow.schemas import pack_series
from tests.projector.workload import DAY1, DAY2, Workload


def rid(n: int) -> str:
    return uuid.UUID(int=0xC0 << 64 | n).hex


def loss(n: int, step: int) -> float:
    return 100.0 if (n == 0 and step == 500) else 1 / (step + 1) + n


def compare_workload() -> Workload:
    w = Workload(seed=12)
    w.event("ExperimentCreated", DAY1, "experiment/exp-c", experiment_id="exp-c", name="cmp", artifact_location=None,
            tags=[])
    for n, (params, last_step) in enumerate([({"lr": "0.1", "model": "rf"}, 999), ({"lr": "0.2", "model": "rf"}, 499),
                                             ({"lr": "0.1", "model": "rf", "depth": "3"}, 999)]):
        key = f"run/{rid(n)}"
        w.event("RunStarted", DAY1, key, run_id=rid(n), experiment_id="exp-c", run_name=f"r{n}", parent_run_id=None,
                start_time=n, status="RUNNING", user_id="ana", artifact_uri=None, tags=[{"key": "seed", "value": "1"}])
        w.event("ParamsLogged", DAY1, key, run_id=rid(n), params=[{"key": k, "value": v} for k, v in params.items()])
        steps = list(range(0, last_step + 1))
        series = [pack_series("loss", steps, [1000 + s for s in steps], [loss(n, s) for s in steps])]
        if n != 1:  # run 1 has no 'acc': it is not a shared key
            series.append(pack_series("acc", steps, [1000 + s for s in steps],
                                      [math.nan if (n == 2 and s == 7) else s / 1000 for s in steps]))
        w.event("MetricsLogged", DAY2, key, run_id=rid(n), series=series)
    return w


@pytest.fixture
def comparable(server):
    log = open_log(server.log_uri)
    try:
        log.append_batch(compare_workload().entries())
    finally:
        log.close()
    return server


def compare(client, **body):
    return client.post("/api/v1/runs/compare", json=body)


def test_compare_diffs_latest_metrics_and_downsampled_series(comparable) -> None:
    ids = [rid(0), rid(1), rid(2)]
    with comparable.client() as client:
        response = compare(client, run_ids=ids, max_points=100)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["run_name"] for r in body["runs"]] == ["r0", "r1", "r2"]
    params = {p["key"]: p for p in body["params"]}
    assert params["lr"]["differs"] and params["lr"]["values"] == {ids[0]: "0.1", ids[1]: "0.2", ids[2]: "0.1"}
    assert not params["model"]["differs"]
    assert params["depth"]["differs"] and params["depth"]["values"][ids[0]] is None
    assert body["tags"] == [{"key": "seed", "differs": False, "values": dict.fromkeys(ids, "1")}]
    latest = {m["key"]: m for m in body["metrics"]}
    assert latest["loss"]["values"][ids[1]] == {"value": 1 / 500 + 1, "step": 499, "timestamp": 1499}
    assert latest["acc"]["values"][ids[1]] is None and latest["acc"]["differs"]
    # default series: the keys every run has (run 1 has no 'acc')
    assert [s["key"] for s in body["series"]] == ["loss"]
    series = body["series"][0]
    assert series["downsampled"] and len(series["step_start"]) == 50 == len(series["step_end"])
    assert series["step_start"][0] == 0 and series["step_end"][-1] == 999
    assert all(a <= b for a, b in zip(series["step_start"], series["step_end"], strict=True))
    r0, r1 = series["values"][ids[0]], series["values"][ids[1]]
    assert max(r0["max"]) == 100.0  # the spike at step 500 survives downsampling
    assert r0["min"][0] == loss(0, 19) and r0["max"][0] == loss(0, 0)  # bucket 0 = steps 0..19
    assert r1["min"][-1] is None and r1["max"][24] is not None  # run 1 stops at step 499: aligned by step
    assert all(len(v["min"]) == 50 for v in series["values"].values())


def test_compare_exact_series_and_explicit_keys(comparable) -> None:
    ids = [rid(0), rid(2)]
    with comparable.client() as client:
        body = compare(client, run_ids=ids, metric_keys=["acc", "nothing"], max_points=5000).json()
    acc, nothing = body["series"]
    assert not acc["downsampled"] and acc["step_start"] == list(range(1000)) == acc["step_end"]
    assert acc["values"][ids[0]]["min"] == acc["values"][ids[0]]["max"] == [s / 1000 for s in range(1000)]
    assert acc["values"][ids[1]]["max"][7] == "NaN"
    assert nothing == {"key": "nothing", "downsampled": False, "step_start": [], "step_end": [],
                       "values": {ids[0]: {"min": [], "max": []}, ids[1]: {"min": [], "max": []}}}
    assert body["max_points"] == 5000


def test_compare_bad_requests(comparable) -> None:
    missing = uuid.UUID(int=7).hex
    with comparable.client() as client:
        response = compare(client, run_ids=[rid(0), missing])
        assert response.status_code == 404 and response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        assert missing in response.json()["message"] and rid(0) not in response.json()["message"]
        for body, fragment in [({"run_ids": [rid(0)]}, "at least 2"),
                               ({"run_ids": [uuid.UUID(int=i).hex for i in range(101)]}, "at most 100"),
                               ({"run_ids": [rid(0), rid(0)]}, "more than once"),
                               ({"run_ids": [rid(0), rid(1)], "max_points": 1}, "max_points"),
                               ({"run_ids": [rid(0), rid(1)], "max_points": 10**6}, "max_points"),
                               ({"run_ids": [rid(0), rid(1)], "metric_keys": [f"k{i}" for i in range(101)]},
                                "metric_keys"),
                               ({"run_ids": "abc"}, "run_ids"),
                               ({}, "run_ids")]:
            response = compare(client, **body)
            assert response.status_code == 400, (body, response.text)
            assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE" and fragment in response.json()["message"]
