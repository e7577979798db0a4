"""The audit timeline of runs, experiments, models and versions, on a real server."""

from __future__ import annotations

import base64

from ledgerflow.ingest.log import open_log
from ledgerflow.schemas import pack_series
from tests.projector.workload import DAY2, DAY3, run_id, standard_workload

LONG_RUN_EVENTS = 230


def _load(server) -> None:
    w = standard_workload(0, runs=3, points_per_run=30)
    w.event("RegisteredModelRenamed", DAY3, "registry", name="churn-model-0", new_name="churn-champion")
    for i in range(LONG_RUN_EVENTS):  # a long run: hundreds of small MetricsLogged events
        w.event("MetricsLogged", DAY3, f"run/{run_id(2)}", run_id=run_id(2),
                series=[pack_series("loss", [100 + i], [2_000_000 + i], [0.01])])
    log = open_log(server.log_uri)
    try:
        log.append_batch(w.entries())
    finally:
        log.close()


def _types(body: dict) -> list[str]:
    return [e["event_type"] for e in body["events"]]


def test_run_and_experiment_timelines_with_as_of(server) -> None:
    _load(server)
    with server.client() as client:
        body = client.get(f"/api/v1/audit/run/{run_id(0)}").json()
        assert _types(body) == ["RunStarted", "ParamsLogged", "DatasetInputLogged", "MetricsLogged", "ArtifactLogged",
                                "RunStatusChanged", "RunTagDeleted"]
        assert body["next_page_token"] is None and body["as_of"] is None
        first = body["events"][0]
        assert first["actor"] == "ana" and first["occurred_at"].startswith("2026-10-30T09:00:00.")
        assert first["payload"]["run_name"] == "run-0" and first["log_position"]["offset"] >= 0
        metrics = body["events"][3]["payload"]["series"]
        assert sorted(metrics, key=lambda s: s["key"]) == [{"key": "acc", "points": 30}, {"key": "loss", "points": 30}]
        cut = client.get(f"/api/v1/audit/run/{run_id(0)}", params={"as_of": (DAY2 - DAY2.resolution).isoformat()}).json()
        assert _types(cut) == ["RunStarted", "ParamsLogged", "DatasetInputLogged"]
        experiment = client.get("/api/v1/audit/experiment/exp-0").json()
        assert _types(experiment) == ["ExperimentCreated", "ExperimentTagSet", "ExperimentRenamed"]
        assert experiment["events"][2]["payload"]["new_name"] == "churn-0-v2"
        assert _types(client.get("/api/v1/audit/experiment/exp-0", params={"as_of": DAY3.isoformat()}).json()) == [
            "ExperimentCreated", "ExperimentTagSet"]
        for path in (f"/api/v1/audit/run/{'d' * 32}", "/api/v1/audit/experiment/none", "/api/v1/audit/model/none",
                     "/api/v1/audit/model_version/churn-champion/9"):
            response = client.get(path)
            assert response.status_code == 404 and response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST", path
        assert client.get("/api/v1/audit/run/x", params={"as_of": "2026-10-01"}).status_code == 404
        for path, params, named in (("/api/v1/audit/dataset/x", {}, "entity_type"),
                                    (f"/api/v1/audit/run/{run_id(0)}", {"limit": 0}, "limit"),
                                    (f"/api/v1/audit/run/{run_id(0)}", {"page_token": "garbage!"}, "page_token"),
                                    ("/api/v1/audit/model_version/churn-champion", {}, "version")):
            response = client.get(path, params=params)
            assert response.status_code == 400 and named in response.json()["message"], path


def test_long_histories_page_in_log_order(server) -> None:
    _load(server)
    with server.client() as client:
        pages, token = [], None
        while True:
            params = {"limit": 100, **({"page_token": token} if token else {})}
            body = client.get(f"/api/v1/audit/run/{run_id(2)}", params=params).json()
            pages.append(body["events"])
            token = body["next_page_token"]
            if token is None:
                break
        events = [e for page in pages for e in page]
        assert [len(p) for p in pages] == [100, 100, 6 + LONG_RUN_EVENTS - 200]
        positions = [(e["log_position"]["partition"], e["log_position"]["offset"]) for e in events]
        assert positions == sorted(positions) and len(set(positions)) == len(positions)
        assert len(events) == len({e["event_id"] for e in events}) == 6 + LONG_RUN_EVENTS


def test_model_and_version_timelines_follow_renames(server) -> None:
    _load(server)
    with server.client() as client:
        model = client.get("/api/v1/audit/model/churn-champion").json()
        assert _types(model) == ["RegisteredModelCreated", "ModelVersionCreated", "ModelVersionCreated",
                                 "ModelVersionAliasSet", "ModelVersionAliasSet", "ModelVersionStageChanged",
                                 "RegisteredModelRenamed"]
        version = client.get("/api/v1/audit/model_version/churn-champion/2").json()
        assert _types(version) == ["ModelVersionCreated", "ModelVersionAliasSet", "ModelVersionStageChanged",
                                   "RegisteredModelRenamed"]
        assert version["events"][0]["payload"]["run_id"] == run_id(1)
        old = client.get("/api/v1/audit/model/churn-model-0").json()  # the old name leads to the rename
        assert _types(old)[-1] == "RegisteredModelRenamed" and old["events"][-1]["payload"]["new_name"] == "churn-champion"
        then = client.get("/api/v1/audit/model_version/churn-model-0/1", params={"as_of": DAY3.isoformat()}).json()
        assert _types(then) == ["ModelVersionCreated", "ModelVersionAliasSet"]
        assert client.get("/api/v1/audit/model/churn-champion", params={"as_of": DAY3.isoformat()}).status_code == 404


def test_hostile_input_never_gets_a_5xx(embedded_server) -> None:
    _load(embedded_server)
    huge = base64.urlsafe_b64encode(f"{2**70}:{2**70}".encode()).decode()
    with embedded_server.client() as client:
        for path, params in ((f"/api/v1/audit/run/{run_id(0)}", {"page_token": huge}),
                             (f"/api/v1/audit/run/{run_id(0)}", {"as_of": "0001-01-01T00:00:00+01:00"}),
                             (f"/api/v1/runs/{run_id(0)}", {"as_of": "9999-12-31T23:59:59-01:00"}),
                             ("/api/v1/runs/a%00b", {}), ("/api/v1/runs/x%00/lineage", {"as_of": "2026-11-01"}),
                             (f"/api/v1/runs/{run_id(0)}/metric-history", {"key": "lo\x00ss"}),
                             ("/api/v1/audit/model_version/%00/1", {}), ("/api/v1/audit/model//", {}),
                             ("/api/v1/models/churn-champion/versions/99999999999999999999", {}),
                             ("/api/v1/models/churn-champion/versions/-1/lineage", {}),
                             ("/api/v1/experiments/%E2%98%83", {"as_of": "2026-11-01"})):
            response = client.get(path, params=params)
            assert response.status_code < 500, (path, params, response.status_code, response.text)
            assert response.status_code == 200 or set(response.json()) == {"error_code", "message"}
