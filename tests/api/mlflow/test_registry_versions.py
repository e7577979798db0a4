"""Model versions through the unmodified mlflow client: numbering, stages, aliases, tags, search, sources."""

from __future__ import annotations

import threading
import time

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from tests.api.mlflow.tracking_support import rest, sql
from tests.api.serving import RunningServer, serving

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # stages are deprecated in MLflow, still served


def test_versions_number_from_one_and_never_reuse_a_number(embedded_client: MlflowClient) -> None:
    client = embedded_client
    client.create_registered_model("m")
    first = client.create_model_version("m", "runs:/r1/model", "r1", tags={"k": "v", "n": 5}, description="v one")
    assert (first.version, first.current_stage, first.status, first.source, first.run_id) == (
        "1", "None", "READY", "runs:/r1/model", "r1")
    assert (first.tags, first.description, first.aliases) == ({"k": "v", "n": "5"}, "v one", [])
    assert client.get_model_version("m", "1") == first
    second = client.create_model_version("m", "runs:/r2/model", "r2")
    assert second.version == "2" and second.description == ""
    assert client.get_registered_model("m").last_updated_timestamp == second.creation_timestamp

    client.delete_model_version("m", "2")
    with pytest.raises(MlflowException, match=r"Model Version \(name=m, version=2\) not found") as gone:
        client.get_model_version("m", "2")
    assert gone.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert client.create_model_version("m", "runs:/r3/model", "r3").version == "3"
    assert {v.version for v in client.search_model_versions("name = 'm'")} == {"1", "3"}

    client.delete_registered_model("m")  # takes its versions along; a new model of that name starts over
    with pytest.raises(MlflowException, match="not found"):
        client.get_model_version("m", "1")
    client.create_registered_model("m")
    assert client.create_model_version("m", "runs:/r4/model", "r4").version == "1"
    assert client.get_model_version("m", "1").tags == {}


def test_concurrent_registrations_get_distinct_numbers(embedded_client: MlflowClient) -> None:
    embedded_client.create_registered_model("busy")
    versions: list[str] = []
    errors: list[BaseException] = []

    def register(worker: int) -> None:
        client = MlflowClient(embedded_client.tracking_uri)
        try:
            for n in range(4):
                run_id = f"run{worker}x{n}"
                versions.append(client.create_model_version("busy", f"runs:/{run_id}/model", run_id).version)
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=register, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(int(v) for v in versions) == list(range(1, 25))
    found = embedded_client.search_model_versions("name = 'busy'")
    assert sorted(int(v.version) for v in found) == list(range(1, 25))


def test_update_stage_transitions_and_latest_versions(embedded_client: MlflowClient) -> None:
    client = embedded_client
    client.create_registered_model("m")
    stages = ["Archived", "Production", "Archived", "Production", "Staging", "Staging", "None"]
    for number, stage in enumerate(stages, start=1):
        client.create_model_version("m", f"runs:/r{number}/model", f"r{number}")
        if stage != "None":
            moved = client.transition_model_version_stage("m", str(number), stage.lower())
            assert moved.current_stage == stage
    latest = lambda stages: {v.current_stage: v.version for v in client.get_latest_versions("m", stages)}  # noqa: E731
    assert latest(None) == latest([]) == {"Archived": "3", "Production": "4", "Staging": "6", "None": "7"}
    assert latest(["Staging", "none"]) == {"Staging": "6", "None": "7"}
    assert {v.version for v in client.get_registered_model("m").latest_versions} == {"3", "4", "6", "7"}

    before = client.get_registered_model("m").last_updated_timestamp
    time.sleep(0.002)
    client.transition_model_version_stage("m", "5", "Production", archive_existing_versions=True)
    assert [client.get_model_version("m", str(n)).current_stage for n in range(1, 8)] == [
        "Archived", "Archived", "Archived", "Archived", "Production", "Staging", "None"]
    assert client.get_registered_model("m").last_updated_timestamp > before  # a transition touches the model

    updated = client.update_model_version("m", "5", description="the good one")
    assert updated.description == "the good one" and updated.last_updated_timestamp >= updated.creation_timestamp
    with pytest.raises(MlflowException, match="Invalid Model Version stage: Live") as bad_stage:
        client.transition_model_version_stage("m", "5", "Live")
    assert bad_stage.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException, match="cannot archive existing model versions"):
        client.transition_model_version_stage("m", "5", "Archived", archive_existing_versions=True)


def test_aliases_move_between_versions_and_leave_with_their_version(embedded_client: MlflowClient,
                                                                    mlflow_embedded_server: RunningServer) -> None:
    client = embedded_client
    client.create_registered_model("m")
    for n in (1, 2, 3):
        client.create_model_version("m", f"runs:/r{n}/model", f"r{n}")
    client.set_registered_model_alias("m", "champion", "1")
    client.set_registered_model_alias("m", "challenger", "2")
    assert client.get_model_version_by_alias("m", "champion").version == "1"
    client.set_registered_model_alias("m", "champion", "2")  # moves: v1 loses it
    assert client.get_model_version("m", "1").aliases == []
    assert sorted(client.get_model_version("m", "2").aliases) == ["challenger", "champion"]
    assert client.get_registered_model("m").aliases == {"champion": "2", "challenger": "2"}
    assert client.get_model_version_by_alias("m", "champion") == client.get_model_version("m", "2")
    assert client.get_model_version_by_alias("m", "latest").version == "3"  # 'latest' is the highest version

    client.delete_registered_model_alias("m", "challenger")
    client.delete_registered_model_alias("m", "never-set")  # MLflow ignores a missing alias
    client.delete_model_version("m", "2")  # the version's aliases go with it
    assert client.get_registered_model("m").aliases == {}
    with pytest.raises(MlflowException, match="Registered model alias champion not found") as missing:
        client.get_model_version_by_alias("m", "champion")
    assert missing.value.error_code == "INVALID_PARAMETER_VALUE"  # as MLflow answers a missing alias

    for reserved in ("latest", "LATEST", "v3", "V12"):
        with pytest.raises(MlflowException, match="reserved"):
            client.set_registered_model_alias("m", reserved, "1")
    for bad in ("has space", "dot.ted"):
        with pytest.raises(MlflowException, match="Invalid alias name"):
            client.set_registered_model_alias("m", bad, "1")
    with pytest.raises(MlflowException, match=r"Model Version \(name=m, version=2\) not found"):
        client.set_registered_model_alias("m", "champion", "2")
    history = sql(mlflow_embedded_server, "SELECT alias, version, action FROM model_alias_history "
                                          "ORDER BY occurred_at, alias")
    assert [(h["alias"], h["version"], h["action"]) for h in history] == [
        ("champion", 1, "set"), ("challenger", 2, "set"), ("champion", 2, "set"), ("challenger", None, "deleted"),
        ("champion", None, "deleted")]


def test_version_tags_and_bad_version_numbers(embedded_client: MlflowClient) -> None:
    client = embedded_client
    client.create_registered_model("m")
    client.create_model_version("m", "s3://bucket/models/m", None)
    client.set_model_version_tag("m", "1", "validated", "yes")
    client.set_model_version_tag("m", "1", "empty", "")
    client.delete_model_version_tag("m", "1", "validated")
    client.delete_model_version_tag("m", "1", "never-set")
    assert client.get_model_version("m", "1").tags == {"empty": ""}
    with pytest.raises(MlflowException, match="Parameter 'version' must be an integer, got 'one'.") as bad:
        client.get_model_version("m", "one")
    assert bad.value.error_code == "INVALID_PARAMETER_VALUE"
    for missing in ("0", "-1", "99999999999999999999999"):
        with pytest.raises(MlflowException, match="not found"):
            client.get_model_version("m", missing)


def test_search_model_versions_filters_orders_and_pages(embedded_client: MlflowClient) -> None:
    client = embedded_client
    for name in ("alpha", "beta"):
        client.create_registered_model(name)
    created = []
    for n in range(1, 6):
        for name in ("alpha", "beta"):
            time.sleep(0.002)
            created.append(client.create_model_version(name, f"runs:/run{n}/model", f"run{n}",
                                                       tags={"fold": str(n % 2)}))
    keys = lambda found: [(v.name, int(v.version)) for v in found]  # noqa: E731
    newest_first = [(v.name, int(v.version)) for v in reversed(created)]
    assert keys(client.search_model_versions()) == newest_first
    assert keys(client.search_model_versions("name = 'alpha' AND version_number >= 4")) == [("alpha", 5), ("alpha", 4)]
    assert keys(client.search_model_versions("run_id IN ('run1', 'run2')", order_by=["name", "version_number"])) == [
        ("alpha", 1), ("alpha", 2), ("beta", 1), ("beta", 2)]
    assert keys(client.search_model_versions("source_path = 'runs:/run3/model'")) == [("beta", 3), ("alpha", 3)]
    assert keys(client.search_model_versions("tags.fold = '0' AND name LIKE 'b%'")) == [("beta", 4), ("beta", 2)]
    assert keys(client.search_model_versions(order_by=["version_number DESC"]))[:2] == [("alpha", 5), ("beta", 5)]
    pages, token = [], None
    while True:
        page = client.search_model_versions(max_results=3, page_token=token)
        pages.append(keys(page))
        token = page.token
        if not token:
            break
    assert [len(p) for p in pages] == [3, 3, 3, 1] and sum(pages, []) == newest_first
    for bad in ("version_number = 1.5", "source_path IN ('a')", "stage = 'None'", "version_number LIKE '1'"):
        with pytest.raises(MlflowException) as refused:
            client.search_model_versions(bad)
        assert refused.value.error_code == "INVALID_PARAMETER_VALUE", bad
    with pytest.raises(MlflowException, match="duplicate"):
        client.search_model_versions(order_by=["name ASC", "name DESC"])


def test_sources_are_checked_against_their_run(embedded_client: MlflowClient,
                                               mlflow_embedded_server: RunningServer) -> None:
    client = embedded_client
    client.create_registered_model("m")
    experiment_id = client.create_experiment("sources")
    run = client.create_run(experiment_id)
    inside = f"{run.info.artifact_uri}/model"
    accepted = client.create_model_version("m", inside, run.info.run_id)
    assert accepted.source == inside and client.get_model_version_download_uri("m", accepted.version) == inside
    refused = [
        ("runs:/other/model", run.info.run_id),  # the runs:/ URI names another run
        (f"mlflow-artifacts:/{experiment_id}/someone-else/artifacts/model", run.info.run_id),
        (inside, None),  # an artifact-store source needs its run
        ("/tmp/model", run.info.run_id),  # a local path outside the run's artifacts
        ("s3://bucket/a/../../secrets", None),
        ("s3://bucket/a/%2E%2E/b", None),
        ("models:/m-0123456789abcdef0123456789abcdef", None),  # a logged model source needs its model_id
    ]
    for source, run_id in refused:
        with pytest.raises(MlflowException, match="Invalid model version source") as bad:
            client.create_model_version("m", source, run_id)
        assert bad.value.error_code == "INVALID_PARAMETER_VALUE", source
    assert [v.version for v in client.search_model_versions("name = 'm'")] == ["1"]
    assert sql(mlflow_embedded_server, "SELECT count(*) AS n FROM dead_letters")[0]["n"] == 0


def test_copying_a_version_inherits_its_source_run_and_files(embedded_client: MlflowClient) -> None:
    client = embedded_client
    client.create_registered_model("src")
    original = client.create_model_version("src", "s3://bucket/models/src", "run-a", description="dummy",
                                           tags={"hello": "world"})
    client.set_registered_model_alias("src", "champion", original.version)
    copied = client.copy_model_version("models:/src@champion", "dst")  # creates "dst" on the way
    assert (copied.name, copied.version) == ("dst", "1")
    copied = client.get_model_version("dst", "1")
    assert (copied.source, copied.run_id, copied.description, copied.tags) == (
        "models:/src/1", "run-a", "dummy", {"hello": "world"})
    assert client.get_model_version_download_uri("dst", "1") == "s3://bucket/models/src"
    with pytest.raises(MlflowException, match="not found"):
        client.create_model_version("dst", "models:/nope/1")


def test_registry_writes_are_events_in_the_audit_log(mlflow_client: MlflowClient,
                                                     mlflow_server: RunningServer) -> None:
    """Embedded and Kafka alike: every call is an event under the key 'registry', read back consistently."""
    client = mlflow_client
    client.create_registered_model("audited", tags={"team": "risk"})
    client.create_model_version("audited", "s3://b/m1", None)
    client.create_model_version("audited", "s3://b/m2", None)
    client.set_registered_model_alias("audited", "champion", "1")
    client.set_registered_model_alias("audited", "champion", "2")
    client.set_model_version_tag("audited", "2", "approved", "yes")
    client.rename_registered_model("audited", "audited-v2")
    assert client.get_model_version_by_alias("audited-v2", "champion").tags == {"approved": "yes"}
    rows = sql(mlflow_server, "SELECT event_type, entity_key, actor FROM events ORDER BY occurred_at")
    assert [r["event_type"] for r in rows] == [
        "RegisteredModelCreated", "ModelVersionCreated", "ModelVersionCreated", "ModelVersionAliasSet",
        "ModelVersionAliasSet", "ModelVersionTagSet", "RegisteredModelRenamed"]
    assert {r["entity_key"] for r in rows} == {"registry"}
    assert sql(mlflow_server, "SELECT count(*) AS n FROM dead_letters")[0]["n"] == 0
    response = rest(mlflow_server, "GET", "/registered-models/alias", params={"name": "audited-v2", "alias": "champion"})
    assert response.json()["model_version"]["aliases"] == ["champion"]


def test_two_servers_on_one_log_never_confirm_a_lost_race(tmp_path) -> None:  # noqa: ANN001
    """Each server serializes its own registry writes; across processes the log decides. A server that lost the
    race for a version number tries the next one (3 tries, as MLflow), and answers 409 only when all were lost."""
    shared, home_a, home_b = tmp_path / "log", tmp_path / "a", tmp_path / "b"
    for directory in (shared, home_a, home_b):
        directory.mkdir()
    with serving(f"file:{shared}", home_a) as a, serving(f"file:{shared}", home_b) as b:
        MlflowClient(a.url).create_registered_model("race")
        confirmed: dict[str, str] = {}  # source -> version the server answered
        conflicts: list[str] = []

        def register(url: str, worker: int) -> None:
            client = MlflowClient(url)
            for n in range(5):
                source = f"s3://bucket/{worker}/{n}"
                try:
                    confirmed[source] = client.create_model_version("race", source).version
                except MlflowException as e:
                    assert e.error_code == "RESOURCE_CONFLICT" and e.get_http_status_code() == 409, str(e)
                    conflicts.append(source)

        threads = [threading.Thread(target=register, args=(server.url, w))
                   for w, server in enumerate([a, b, a, b, a, b])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(confirmed) + len(conflicts) == 30
        for server in (a, b):  # both projections agree, and hold exactly the confirmed versions
            projected = {v.source: v.version for v in MlflowClient(server.url).search_model_versions("name = 'race'")}
            assert projected == confirmed
        assert sorted(int(v) for v in confirmed.values()) == list(range(1, len(confirmed) + 1))
