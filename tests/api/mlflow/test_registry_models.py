"""Registered models through the unmodified mlflow client: create, get, rename, update, delete, tags, search."""

from __future__ import annotations

import time

import httpx
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.utils.time import get_current_time_millis

from tests.api.mlflow.tracking_support import rest, sql
from tests.api.serving import RunningServer


def registry_events(server: RunningServer, name: str) -> list[str]:
    rows = sql(server, f"SELECT event_type FROM events WHERE entity_key = 'registry' AND model_name = '{name}' "
                       "ORDER BY log_partition, log_offset")
    return [r["event_type"] for r in rows]


def test_create_get_update_rename_delete_and_create_again(embedded_client: MlflowClient,
                                                          mlflow_embedded_server: RunningServer) -> None:
    client = embedded_client
    before = get_current_time_millis()
    created = client.create_registered_model("churn", tags={"team": "growth", "tier": 1}, description="first cut")
    after = get_current_time_millis()
    assert (created.name, created.description, created.tags) == ("churn", "first cut", {"team": "growth", "tier": "1"})
    assert before <= created.creation_timestamp == created.last_updated_timestamp <= after
    assert created.latest_versions == [] and created.aliases == {}

    fetched = client.get_registered_model("churn")
    assert (fetched.name, fetched.description, fetched.tags, fetched.creation_timestamp) == (
        "churn", "first cut", {"team": "growth", "tier": "1"}, created.creation_timestamp)

    time.sleep(0.002)
    updated = client.update_registered_model("churn", description="second cut")
    assert updated.description == "second cut" and updated.last_updated_timestamp > created.last_updated_timestamp
    assert updated.creation_timestamp == created.creation_timestamp

    client.rename_registered_model("churn", "churn-v2")
    renamed = client.get_registered_model("churn-v2")
    assert renamed.name == "churn-v2" and renamed.tags == {"team": "growth", "tier": "1"}
    assert renamed.description == "second cut" and renamed.creation_timestamp == created.creation_timestamp
    with pytest.raises(MlflowException, match="Registered Model with name=churn not found") as gone:
        client.get_registered_model("churn")
    assert gone.value.error_code == "RESOURCE_DOES_NOT_EXIST" and gone.value.get_http_status_code() == 404

    client.delete_registered_model("churn-v2")
    with pytest.raises(MlflowException, match=r"Registered Model .+ not found"):
        client.get_registered_model("churn-v2")
    with pytest.raises(MlflowException, match=r"Registered Model .+ not found"):
        client.rename_registered_model("churn-v2", "other")
    assert client.search_registered_models() == []

    again = client.create_registered_model("churn-v2")  # a deleted name is free again, and starts clean
    assert again.tags == {} and again.description == "" and again.creation_timestamp > created.creation_timestamp
    assert registry_events(mlflow_embedded_server, "churn") == ["RegisteredModelCreated", "RegisteredModelUpdated",
                                                                "RegisteredModelRenamed"]
    assert registry_events(mlflow_embedded_server, "churn-v2") == ["RegisteredModelDeleted", "RegisteredModelCreated"]


def test_a_taken_name_is_refused_and_nothing_is_appended(embedded_client: MlflowClient,
                                                         mlflow_embedded_server: RunningServer) -> None:
    embedded_client.create_registered_model("a")
    embedded_client.create_registered_model("b")
    for attempt in (lambda: embedded_client.create_registered_model("a"),
                    lambda: embedded_client.rename_registered_model("b", "a")):
        with pytest.raises(MlflowException, match=r"Registered Model \(name=a\) already exists") as taken:
            attempt()
        assert taken.value.error_code == "RESOURCE_ALREADY_EXISTS" and taken.value.get_http_status_code() == 400
    assert [m.name for m in embedded_client.search_registered_models()] == ["a", "b"]
    assert sql(mlflow_embedded_server, "SELECT count(*) AS n FROM events")[0]["n"] == 2
    assert sql(mlflow_embedded_server, "SELECT count(*) AS n FROM dead_letters")[0]["n"] == 0


@pytest.mark.parametrize(("name", "message"), [
    ("", "Missing value for required parameter 'name'"),
    ("a/b", "Names cannot contain '/' or ':'"),
    ("a:b", "Names cannot contain '/' or ':'"),
    ("..", "would resolve to"),
])
def test_bad_model_names_are_refused(embedded_client: MlflowClient, name: str, message: str) -> None:
    with pytest.raises(MlflowException, match=message) as refused:
        embedded_client.create_registered_model(name)
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"


def test_unknown_models_answer_404_for_every_operation(embedded_client: MlflowClient) -> None:
    operations = [
        lambda: embedded_client.get_registered_model("ghost"),
        lambda: embedded_client.update_registered_model("ghost", "x"),
        lambda: embedded_client.delete_registered_model("ghost"),
        lambda: embedded_client.set_registered_model_tag("ghost", "k", "v"),
        lambda: embedded_client.delete_registered_model_tag("ghost", "k"),
        lambda: embedded_client.create_model_version("ghost", "s3://bucket/model"),
        lambda: embedded_client.get_model_version_by_alias("ghost", "champion"),
        lambda: embedded_client.delete_registered_model_alias("ghost", "champion"),
    ]
    for operation in operations:
        with pytest.raises(MlflowException, match="Registered Model with name=ghost not found") as missing:
            operation()
        assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_tags_set_overwrite_and_delete(embedded_client: MlflowClient) -> None:
    client = embedded_client
    client.create_registered_model("m")
    client.set_registered_model_tag("m", "owner", "ana")
    client.set_registered_model_tag("m", "owner", "bo")
    client.set_registered_model_tag("m", "empty", "")
    client.set_registered_model_tag("m", "numeric value", 12345)
    assert client.get_registered_model("m").tags == {"owner": "bo", "empty": "", "numeric value": "12345"}
    client.delete_registered_model_tag("m", "owner")
    client.delete_registered_model_tag("m", "never-set")  # MLflow ignores a missing tag
    assert client.get_registered_model("m").tags == {"empty": "", "numeric value": "12345"}
    with pytest.raises(MlflowException, match="exceeds the maximum length of 250"):
        client.set_registered_model_tag("m", "k" * 251, "v")
    with pytest.raises(MlflowException, match="Invalid value") as bad:
        client.set_registered_model_tag("m", "semi;colon", "v")
    assert bad.value.error_code == "INVALID_PARAMETER_VALUE"


FILTERS = [
    (None, lambda name: True),
    ("name LIKE '%7'", lambda name: name.endswith("7")),
    ("name ILIKE '%rm%01%'", lambda name: "01" in name),
    ("name LIKE '%rm%01%'", lambda name: False),  # LIKE is case-sensitive
    ("name = 'Model-RM-013'", lambda name: name == "Model-RM-013"),
    ("name IN ('Model-RM-002', 'Model-RM-011', 'nope')", lambda name: name in ("Model-RM-002", "Model-RM-011")),
    ("tags.parity = 'even'", lambda name: int(name[-3:]) % 2 == 0),
    ("tags.parity = 'even' AND name LIKE 'Model-RM-01%'", lambda name: int(name[-3:]) % 2 == 0 and "RM-01" in name),
    ("tags.`parity` != 'even'", lambda name: int(name[-3:]) % 2 == 1),
    ("attribute.name != 'Model-RM-000'", lambda name: name != "Model-RM-000"),
]


def test_search_filters_and_pages_like_mlflow(embedded_client: MlflowClient) -> None:
    names = [f"Model-RM-{i:03}" for i in range(17)]
    for name in reversed(names):
        embedded_client.create_registered_model(name, tags={"parity": "even" if int(name[-3:]) % 2 == 0 else "odd"})
    for filter_string, matches in FILTERS:
        for max_results in (1, 7, 100):
            found, token, pages = [], None, 0
            while True:
                page = embedded_client.search_registered_models(filter_string, max_results=max_results,
                                                                page_token=token)
                assert len(page) <= max_results
                found += [m.name for m in page]
                token, pages = page.token, pages + 1
                if not token:
                    break
            expected = [n for n in names if matches(n)]  # by name, ascending, whatever the creation order
            assert found == expected, (filter_string, max_results)
            assert pages == max(1, -(-len(expected) // max_results))  # no empty last page


def test_search_orders_by_update_time_and_name(embedded_client: MlflowClient) -> None:
    for name in ("b", "a", "c"):
        embedded_client.create_registered_model(name)
        time.sleep(0.002)
    embedded_client.update_registered_model("b", "touched last")
    names = lambda order: [m.name for m in embedded_client.search_registered_models(order_by=order)]  # noqa: E731
    assert names(None) == ["a", "b", "c"]
    assert names(["name DESC"]) == ["c", "b", "a"]
    assert names(["last_updated_timestamp DESC"]) == ["b", "c", "a"]
    assert names(["timestamp ASC"]) == ["a", "c", "b"]
    with pytest.raises(MlflowException, match="Invalid order by key 'size'") as bad:
        names(["size DESC"])
    assert bad.value.error_code == "INVALID_PARAMETER_VALUE"


def test_search_refuses_bad_filters_tokens_and_sizes(embedded_client: MlflowClient,
                                                     mlflow_embedded_server: RunningServer) -> None:
    embedded_client.create_registered_model("m")
    for bad_filter in ("name = 'm' OR name = 'n'", "run_id = 'x'", "tags.k > 'x'", "name = 5"):
        with pytest.raises(MlflowException) as refused:
            embedded_client.search_registered_models(bad_filter)
        assert refused.value.error_code == "INVALID_PARAMETER_VALUE", bad_filter
    with pytest.raises(MlflowException) as too_many:
        embedded_client.search_registered_models(max_results=1001)
    assert too_many.value.error_code == "INVALID_PARAMETER_VALUE"
    response = rest(mlflow_embedded_server, "GET", "/registered-models/search", params={"page_token": "garbage"})
    assert response.status_code == 400 and response.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_prompts_are_left_out_of_model_search_unless_asked_for(embedded_client: MlflowClient,
                                                               mlflow_embedded_server: RunningServer) -> None:
    embedded_client.create_registered_model("plain")
    # the client refuses prompt tags on models; MLflow's prompt registry sends them over REST like this
    created = rest(mlflow_embedded_server, "POST", "/registered-models/create",
                   body={"name": "greeting", "tags": [{"key": "mlflow.prompt.is_prompt", "value": "true"}]})
    assert created.status_code == 200, created.text
    assert [m.name for m in embedded_client.search_registered_models()] == ["plain"]
    assert [m.name for m in embedded_client.search_registered_models(
        "tags.`mlflow.prompt.is_prompt` = 'true'")] == ["greeting"]
    assert [m.name for m in embedded_client.search_registered_models(
        "tags.`mlflow.prompt.is_prompt` = 'false'")] == ["plain"]


def test_the_registry_rest_paths_answer_under_the_ajax_prefix_too(embedded_client: MlflowClient,
                                                                  mlflow_embedded_server: RunningServer) -> None:
    embedded_client.create_registered_model("m", tags={"k": "v"})
    for prefix in ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow"):
        response = httpx.get(f"{mlflow_embedded_server.url}{prefix}/registered-models/get", params={"name": "m"})
        assert response.status_code == 200
        assert response.json()["registered_model"]["tags"] == [{"key": "k", "value": "v"}]
    missing = rest(mlflow_embedded_server, "POST", "/registered-models/create", body={})
    assert missing.status_code == 400
    assert missing.json()["message"].startswith("Missing value for required parameter 'name'")
