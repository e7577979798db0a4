"""Fixtures shared by the whole suite: a temp data home, a temp embedded log, a real Kafka broker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledgerflow.ingest.log.file import FileLog

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ledgerflow data home, also set as $LEDGERFLOW_HOME for code that reads it."""
    home = tmp_path / "ledgerflow-data"
    monkeypatch.setenv("LEDGERFLOW_HOME", str(home))
    monkeypatch.delenv("LEDGERFLOW_TRACKING_URI", raising=False)
    return home


@pytest.fixture
def file_log(tmp_path: Path) -> Iterator[FileLog]:
    """A fresh embedded log in a temp directory."""
    log = FileLog(tmp_path / "events")
    yield log
    log.close()


# ---- Kafka ------------------------------------------------------------------------------
# Which broker the Kafka tests use, in order: $KAFKA_BOOTSTRAP_SERVERS; a testcontainers Kafka
# when a Docker engine answers; else the local broker of scripts/kafka-local (stopped at the end
# of the session only if this session started it and no other session still uses it). With no
# broker at all the tests skip, except when CI is true: then they fail, so CI never goes green
# on skipped Kafka tests.

import fcntl  # noqa: E402
import subprocess  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
KAFKA_LOCAL = REPO_ROOT / "scripts" / "kafka-local"
KAFKA_FIXTURES = {"kafka_bootstrap", "kafka_topic", "kafka_log_factory"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that needs a broker with ``kafka``, so ``-m "not kafka"`` deselects them."""
    for item in items:
        if KAFKA_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kafka)


def _no_broker(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true requires a Kafka broker, but none is available: {reason}", pytrace=False)
    pytest.skip(f"no Kafka broker: {reason}")


def _docker_answers() -> bool:
    """Whether a Docker engine responds within 2 s; never raises."""
    try:
        import docker

        client = docker.from_env(timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _kafka_run_dir() -> Path:
    return Path(os.environ.get("LEDGERFLOW_KAFKA_RUN_DIR") or Path.home() / ".cache/ledgerflow/kafka-run")


class _LocalBrokerUsers:
    """Who uses the scripts/kafka-local broker, so concurrent sessions do not stop it under each other."""

    def __init__(self) -> None:
        self.dir = _kafka_run_dir() / "test-sessions"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.me = self.dir / str(os.getpid())
        self.marker = self.dir / "started-by-tests"

    def _locked(self):
        handle = open(self.dir / ".lock", "w")
        fcntl.flock(handle, fcntl.LOCK_EX)
        return handle

    def join(self, started: bool) -> None:
        with self._locked():
            self.me.touch()
            if started:
                self.marker.touch()

    def leave(self) -> bool:
        """Unregister; True when the broker should now be stopped (tests started it, nobody left)."""
        with self._locked():
            self.me.unlink(missing_ok=True)
            others = []
            for entry in self.dir.iterdir():
                if entry.name.isdigit():
                    try:
                        os.kill(int(entry.name), 0)
                        others.append(entry)
                    except ProcessLookupError:
                        entry.unlink(missing_ok=True)  # a session that died without cleaning up
                    except PermissionError:
                        others.append(entry)
            if self.marker.exists() and not others:
                self.marker.unlink()
                return True
            return False


def _run_kafka_local(command: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(KAFKA_LOCAL), command], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``HOST:PORT`` of a real Kafka broker for this test session."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if configured:
        yield configured
        return
    if _docker_answers():
        try:
            from testcontainers.community.kafka import KafkaContainer
        except ImportError:  # older testcontainers
            from testcontainers.kafka import KafkaContainer
        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    if not os.access(KAFKA_LOCAL, os.X_OK):
        _no_broker(f"{KAFKA_LOCAL} is missing or not executable")
    try:
        status = _run_kafka_local("status", timeout=30)
        already = status.returncode == 0
        users = _LocalBrokerUsers()
        if already:
            address = status.stdout.strip().splitlines()[-1]
        else:
            started = _run_kafka_local("start", timeout=600)
            if started.returncode != 0:
                _no_broker(f"scripts/kafka-local start failed:\n{started.stderr[-3000:]}")
            address = started.stdout.strip().splitlines()[-1]
    except (OSError, subprocess.TimeoutExpired) as e:
        _no_broker(f"scripts/kafka-local could not run: {e}")
    users.join(started=not already)
    try:
        yield address
    finally:
        if users.leave():
            _run_kafka_local("stop", timeout=120)


@pytest.fixture
def kafka_topic(kafka_bootstrap: str) -> Iterator[Callable[..., str]]:
    """A factory of fresh topics: ``kafka_topic(partitions=3)`` returns a new, unique topic name."""
    from ledgerflow.ingest.log.kafka import delete_topics, ensure_topic, parse_bootstrap

    servers = parse_bootstrap(kafka_bootstrap)
    created: list[str] = []

    def make(partitions: int = 3, prefix: str = "test") -> str:
        name = f"lf-{prefix}-{uuid.uuid4().hex[:12]}"
        ensure_topic(servers, name, partitions=partitions, timeout=30)
        created.append(name)
        return name

    yield make
    if created:
        try:
            delete_topics(servers, created, timeout=30)
        except Exception:
            pass  # tidy-up only: a leftover test topic harms nothing


@pytest.fixture
def kafka_log_factory(kafka_bootstrap: str) -> Iterator[Callable[..., object]]:
    """``kafka_log_factory(topic, **options)`` opens a KafkaLog on the session broker; all are closed after the test."""
    from ledgerflow.ingest.log.kafka import KafkaLog

    logs: list[KafkaLog] = []

    def make(topic: str, **options: object) -> KafkaLog:
        options.setdefault("connect_timeout", 30.0)
        logs.append(KafkaLog(kafka_bootstrap, topic, **options))  # type: ignore[arg-type]
        return logs[-1]

    yield make
    for log in logs:
        log.close()
