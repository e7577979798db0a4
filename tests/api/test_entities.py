"""Single-entity reads, live and as of three instants of the standard workload, on a real server."""

from __future__ import annotations

from datetime import timedelta

from ledgerflow.ingest.log import open_log
from ledgerflow.schemas import pack_series
from tests.projector.workload import DAY1, DAY2, DAY3, Workload, run_id, standard_workload

HOUR = timedelta(hours=1)


def iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def load(server, workload: Workload) -> None:
    log = open_log(server.log_uri)
    try:
        log.append_batch(workload.entries())
    finally:
        log.close()


def test_live_reads_and_not_found(server) -> None:
    load(server, standard_workload(0, runs=3, points_per_run=30))
    with server.client() as client:
        run = client.get(f"/api/v1/runs/{run_id(0)}").json()["run"]
        assert run["info"]["run_name"] == "run-0" and run["info"]["status"] == "FINISHED"
        assert run["data"]["params"] == {"lr": "0.1", "model": "gbm"}
        assert run["data"]["tags"] == {}  # 'stage' was deleted on day 3
        assert run["data"]["metrics"]["loss"] == {"value": 1 / 30, "step": 29, "timestamp": 1_761_900_000_029}
        assert run["inputs"] == [{"name": "churn", "digest": "d0", "source_type": "local", "source": '{"uri": "/data"}',
                                  "context": "training"}]
        assert client.get(f"/api/v1/runs/{run_id(1)}").json()["run"]["info"]["lifecycle_stage"] == "deleted"
        experiment = client.get("/api/v1/experiments/exp-0").json()["experiment"]
        assert experiment["name"] == "churn-0-v2" and experiment["tags"] == {"team": "ml", "owner": "ana"}
        model = client.get("/api/v1/models/churn-model-0").json()["registered_model"]
        assert model["aliases"] == [{"alias": "champion", "version": 2}]
        assert [(v["version"], v["current_stage"]) for v in model["latest_versions"]] == [(1, "NONE"), (2, "PRODUCTION")]
        version = client.get("/api/v1/models/churn-model-0/versions/2").json()["model_version"]
        assert version["run_id"] == run_id(1) and version["aliases"] == ["champion"] and version["status"] == "READY"
        for path, named in ((f"/api/v1/runs/{'f' * 32}", "f" * 32), ("/api/v1/experiments/nope", "nope"),
                            ("/api/v1/models/nope", "nope"), ("/api/v1/models/churn-model-0/versions/9", "v9")):
            response = client.get(path)
            assert response.status_code == 404, path
            assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST" and named in response.json()["message"]
        response = client.get("/api/v1/models/churn-model-0/versions/two")
        assert response.status_code == 400 and "two" in response.json()["message"]


def test_bad_as_of_is_400_naming_it(server) -> None:
    with server.client() as client:
        for path in (f"/api/v1/runs/{run_id(0)}", "/api/v1/experiments/exp-0", "/api/v1/models/m",
                     "/api/v1/models/m/versions/1", f"/api/v1/runs/{run_id(0)}/lineage",
                     "/api/v1/models/m/versions/1/lineage", f"/api/v1/audit/run/{run_id(0)}"):
            for bad in ("yesterday", "2026-13-01", "2026-11-01T25:00"):
                response = client.get(path, params={"as_of": bad})
                assert response.status_code == 400, (path, bad)
                assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE" and bad in response.json()["message"]


def test_as_of_three_instants(server) -> None:
    load(server, standard_workload(0, runs=3, points_per_run=30))
    day1, day2, day3 = iso(DAY1 + HOUR), iso(DAY2 + HOUR), iso(DAY3 + HOUR)
    with server.client() as client:
        def get(path: str, as_of: str) -> dict:
            response = client.get(path, params={"as_of": as_of})
            assert response.status_code == 200, (path, as_of, response.text)
            assert response.json()["as_of"] == as_of
            return response.json()

        runs = {t: get(f"/api/v1/runs/{run_id(1)}", t)["run"] for t in (day1, day2, day3)}
        assert [r["info"]["status"] for r in runs.values()] == ["RUNNING", "FINISHED", "FINISHED"]
        assert [r["info"]["lifecycle_stage"] for r in runs.values()] == ["active", "active", "deleted"]
        assert runs[day1]["data"]["metrics"] == {} and runs[day2]["data"]["metrics"]["loss"]["step"] == 29
        assert runs[day1]["data"]["params"] == {"lr": str(0.1 / 2), "model": "rf"}
        assert get(f"/api/v1/runs/{run_id(0)}", day2)["run"]["data"]["tags"] == {"stage": "dev"}
        assert get(f"/api/v1/runs/{run_id(0)}", day3)["run"]["data"]["tags"] == {}
        names = [get("/api/v1/experiments/exp-0", t)["experiment"]["name"] for t in (day1, day2, day3)]
        assert names == ["churn-0", "churn-0", "churn-0-v2"]
        assert client.get("/api/v1/models/churn-model-0", params={"as_of": day1}).status_code == 404
        aliases = [get("/api/v1/models/churn-model-0", t)["registered_model"]["aliases"] for t in (day2, day3)]
        assert aliases == [[{"alias": "champion", "version": 1}], [{"alias": "champion", "version": 2}]]
        stages = [get("/api/v1/models/churn-model-0/versions/2", t)["model_version"]["current_stage"] for t in (day2, day3)]
        assert stages == ["NONE", "PRODUCTION"]
        assert get("/api/v1/models/churn-model-0/versions/1", day2)["model_version"]["aliases"] == ["champion"]
        assert get("/api/v1/models/churn-model-0/versions/1", day3)["model_version"]["aliases"] == []
        before = client.get(f"/api/v1/runs/{run_id(0)}", params={"as_of": "2026-10-29"})
        assert before.status_code == 404 and "as of 2026-10-29T00:00:00Z" in before.json()["message"]
        # no zone means UTC; an offset is converted
        plain = client.get("/api/v1/experiments/exp-0", params={"as_of": "2026-11-01T10:00:00"}).json()
        assert plain["as_of"] == "2026-11-01T10:00:00Z"
        shifted = client.get("/api/v1/experiments/exp-0", params={"as_of": "2026-11-01T12:00:00+02:00"}).json()
        assert shifted["as_of"] == "2026-11-01T10:00:00Z"


def test_as_of_the_future_equals_live_and_metrics_are_cut_by_event(server) -> None:
    workload = standard_workload(3, runs=3, points_per_run=2500)  # three MetricsLogged events per run
    skewed = "e" * 32  # its third batch comes later in the log but was stamped earlier than the second
    workload.event("RunStarted", DAY1, f"run/{skewed}", run_id=skewed, experiment_id="exp-3", run_name="skewed",
                   parent_run_id=None, start_time=1, status="RUNNING", user_id="ana", artifact_uri=None, tags=[])
    for start, at in ((0, DAY2), (10, DAY3), (20, DAY2 + HOUR)):
        steps = list(range(start, start + 10))
        workload.event("MetricsLogged", at, f"run/{skewed}", run_id=skewed,
                       series=[pack_series("m", steps, steps, [float(s) for s in steps])])
    load(server, workload)
    future = "2100-01-01T00:00:00Z"
    rid = run_id(2, 3)
    with server.client() as client:
        for path, field in ((f"/api/v1/runs/{rid}", "run"), ("/api/v1/experiments/exp-3", "experiment"),
                            ("/api/v1/models/churn-model-3", "registered_model"),
                            ("/api/v1/models/churn-model-3/versions/1", "model_version")):
            assert client.get(path, params={"as_of": future}).json()[field] == client.get(path).json()[field], path
        chunks = [e for e in workload.events if e.type == "MetricsLogged" and e.body["run_id"] == rid]
        first = iso(chunks[0].occurred_at)  # inclusive: exactly the first chunk's points
        metrics = client.get(f"/api/v1/runs/{rid}", params={"as_of": first}).json()["run"]["data"]["metrics"]
        assert metrics["loss"] == {"value": 1 / 1000 + 2, "step": 999, "timestamp": 1_761_900_000_999}
        assert metrics["acc"]["step"] == 999
        cut = client.get(f"/api/v1/runs/{skewed}", params={"as_of": iso(DAY2 + 2 * HOUR)}).json()["run"]
        assert cut["data"]["metrics"] == {"m": {"value": 29.0, "step": 29, "timestamp": 29}}
        early = client.get(f"/api/v1/runs/{skewed}", params={"as_of": iso(DAY2 + HOUR / 2)}).json()["run"]
        assert early["data"]["metrics"] == {"m": {"value": 9.0, "step": 9, "timestamp": 9}}
        second = iso(chunks[1].occurred_at)
        assert client.get(f"/api/v1/runs/{rid}", params={"as_of": second}).json()["run"]["data"]["metrics"]["loss"][
            "step"] == 1999
