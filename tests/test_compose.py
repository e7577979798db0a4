"""docker-compose.yml and the Dockerfile configure ledgerflow only through variables it really reads.

A misspelt LEDGERFLOW_* variable in a compose file is silently ignored by the container, which
then runs on defaults (the embedded log instead of Kafka): these tests catch that.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from ledgerflow.cli import build_parser
from ledgerflow.settings import ENVIRONMENT_VARIABLES, Settings

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment, from either the mapping or the list form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def ledgerflow_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services running the ledgerflow image (built from this repository's Dockerfile)."""
    return {name: service for name, service in compose["services"].items() if "build" in service}


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def test_services_exist(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"kafka", "topics", "events"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert set(ledgerflow_services(compose)) >= {"topics", "events"}


def test_kafka_is_a_single_kraft_node_with_a_named_volume(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    env = environment_of(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@")
    volume = kafka["volumes"][0].split(":")[0]
    assert volume in (compose.get("volumes") or {}), f"{volume} is not a named volume"
    advertised = env["KAFKA_ADVERTISED_LISTENERS"]
    assert "PLAINTEXT://kafka:9092" in advertised, "containers reach the broker as kafka:9092"


def test_ledgerflow_services_set_only_variables_ledgerflow_reads(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for variable in environment_of(service):
            if variable.startswith("LEDGERFLOW_"):
                assert variable in ENVIRONMENT_VARIABLES, f"{name}: {variable} is not read by ledgerflow"
    for name, service in ledgerflow_services(compose).items():
        unknown = [v for v in environment_of(service) if v not in ENVIRONMENT_VARIABLES]
        assert not unknown, f"{name} sets variables ledgerflow does not read: {unknown}"


@pytest.mark.parametrize("service_name", ["topics", "events"])
def test_every_variable_a_service_sets_reaches_settings(
    compose: dict[str, Any], service_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = environment_of(compose["services"][service_name])
    assert env, f"{service_name} sets no environment"
    for variable in ENVIRONMENT_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    settings = Settings.from_env()
    for variable, value in env.items():
        field = variable.removeprefix("LEDGERFLOW_").lower()
        assert hasattr(settings, field), f"{variable}: Settings has no field {field!r}"
        actual = getattr(settings, field)
        expected = type(actual)(value.lower() if isinstance(actual, str) and field.endswith(
            ("compression", "fsync", "full")) else value)
        assert actual == expected, f"{variable}={value!r} did not reach Settings.{field} (got {actual!r})"


def test_service_commands_are_valid_ledgerflow_commands(compose: dict[str, Any]) -> None:
    parser = build_parser()
    for name, service in ledgerflow_services(compose).items():
        command = command_of(service)
        assert command, f"{name} has no command"
        args = parser.parse_args(command)
        assert getattr(args, "handler", None), f"{name}: {command} names no ledgerflow command"


def test_volumes_and_dependencies_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} uses undeclared volume {source}"
        depends = service.get("depends_on") or {}
        for dependency in depends:
            assert dependency in compose["services"], f"{name} depends on unknown service {dependency}"
    events = compose["services"]["events"]
    assert events["depends_on"]["topics"]["condition"] == "service_completed_successfully"


def test_dockerfile_builds_the_package_on_python_311_slim() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    assert re.search(r"pip install \.", dockerfile)
    assert re.search(r'^ENTRYPOINT \["ledgerflow"\]', dockerfile, re.M)
    for variable in re.findall(r"\b(LEDGERFLOW_[A-Z_]+)=", dockerfile):
        assert variable in ENVIRONMENT_VARIABLES, f"the Dockerfile sets {variable}, which ledgerflow does not read"
