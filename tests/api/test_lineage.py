"""Run and model-version lineage, live and as of a past instant: the auditor's question, on a real server."""

from __future__ import annotations

import uuid
from datetime import timedelta

from ledgerflow.ingest.log import Entry, open_log
from ledgerflow.schemas import Event, encode, make_envelope
from tests.projector.workload import DAY1, DAY3, run_id, standard_workload

CODE = {"mlflow.source.git.commit": "3f2a9c1", "mlflow.source.name": "train.py", "mlflow.source.type": "LOCAL"}


def _load(server) -> None:
    w = standard_workload(0, runs=3, points_per_run=30)
    w.event("RunTagsSet", DAY1, f"run/{run_id(0)}", run_id=run_id(0),
            tags=[{"key": k, "value": v} for k, v in CODE.items()])
    entries = w.entries()
    # a third version, registered by someone else on day 3 from the nested run
    by_bob = Event("ModelVersionCreated", {
        "envelope": make_envelope(actor="bob", producer_id="p-bob", sequence=0, entity_key="registry",
                                  occurred_at=DAY3 + timedelta(hours=2), event_id=uuid.uuid4()),
        "name": "churn-model-0", "version": 3, "source": f"runs:/{run_id(2)}/model", "run_id": run_id(2),
        "artifact_uri": None, "signature": None, "description": None, "tags": []})
    entries.append(Entry("registry", encode(by_bob)))
    log = open_log(server.log_uri)
    try:
        log.append_batch(entries)
    finally:
        log.close()


def test_run_lineage_live_and_as_of(server) -> None:
    _load(server)
    with server.client() as client:
        lineage = client.get(f"/api/v1/runs/{run_id(0)}/lineage").json()
        assert lineage["run"]["run_name"] == "run-0" and lineage["run"]["started_by"] == "ana"
        assert lineage["inputs"] == [{"name": "churn", "digest": "d0", "source_type": "local",
                                      "source": '{"uri": "/data"}', "context": "training"}]
        assert lineage["params"] == {"lr": "0.1", "model": "gbm"}
        assert lineage["code_version"]["git_commit"] == "3f2a9c1" and lineage["code_version"]["source_name"] == "train.py"
        assert lineage["code_version"]["source_type"] == "LOCAL" and lineage["code_version"]["git_branch"] is None
        assert lineage["parent_run"] is None and lineage["parent_chain"] == []
        assert [c["run_id"] for c in lineage["child_runs"]] == [run_id(2)]
        assert [(m["name"], m["version"], m["aliases"]) for m in lineage["models_produced"]] == [("churn-model-0", 1, [])]
        child = client.get(f"/api/v1/runs/{run_id(2)}/lineage").json()
        assert child["parent_run"]["run_id"] == run_id(0) and child["parent_run"]["run_name"] == "run-0"
        assert [(m["version"], m["created_by"]) for m in child["models_produced"]] == [(3, "bob")]
        early = client.get(f"/api/v1/runs/{run_id(0)}/lineage", params={"as_of": "2026-10-30T12:00:00Z"}).json()
        assert early["models_produced"] == [] and early["run"]["status"] == "RUNNING"
        assert [c["run_id"] for c in early["child_runs"]] == [run_id(2)]
        served = client.get(f"/api/v1/runs/{run_id(0)}/lineage", params={"as_of": "2026-11-01T00:00:00Z"}).json()
        assert served["models_produced"][0]["aliases"] == ["champion"]
        deleted = client.get(f"/api/v1/runs/{run_id(1)}/lineage").json()
        assert deleted["run"]["lifecycle_stage"] == "deleted"
        assert client.get(f"/api/v1/runs/{'c' * 32}/lineage").status_code == 404
        assert client.get(f"/api/v1/runs/{run_id(0)}/lineage", params={"as_of": "2026-10-01"}).status_code == 404


def test_which_data_code_and_person_produced_the_model_that_served_on_1_november(server) -> None:
    _load(server)
    moment = "2026-11-01T00:00:00Z"
    with server.client() as client:
        model = client.get("/api/v1/models/churn-model-0", params={"as_of": moment}).json()["registered_model"]
        serving = next(a["version"] for a in model["aliases"] if a["alias"] == "champion")
        assert serving == 1
        answer = client.get(f"/api/v1/models/churn-model-0/versions/{serving}/lineage", params={"as_of": moment}).json()
        assert answer["as_of"] == moment
        assert answer["model_version"]["created_by"] == "ana" and answer["model_version"]["aliases"] == ["champion"]
        source = answer["source_run"]
        assert answer["source_run_id"] == run_id(0) and source["run"]["user_id"] == "ana"
        assert [(i["name"], i["digest"]) for i in source["inputs"]] == [("churn", "d0")]
        assert source["code_version"]["git_commit"] == "3f2a9c1"
        # today the alias points elsewhere, and version 3 has a parent chain
        now = client.get("/api/v1/models/churn-model-0/versions/1/lineage").json()
        assert now["model_version"]["aliases"] == []
        third = client.get("/api/v1/models/churn-model-0/versions/3/lineage").json()
        assert third["model_version"]["created_by"] == "bob"
        assert [r["run_id"] for r in third["source_run"]["parent_chain"]] == [run_id(0)]
        assert client.get("/api/v1/models/churn-model-0/versions/3/lineage",
                          params={"as_of": moment}).status_code == 404
        assert client.get("/api/v1/models/nope/versions/1/lineage").status_code == 404
        assert client.get("/api/v1/models/churn-model-0/versions/x/lineage").status_code == 400
