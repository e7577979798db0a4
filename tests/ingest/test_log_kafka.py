"""The Kafka event log against a real broker: the shared contract, per-key ordering across
partitions, failures that must surface (never be dropped), URI parsing and the topics CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from ledgerflow.errors import ConfigurationError
from ledgerflow.ingest.log import DeliveryError, Entry, EventLog, LogUnavailableError, RecordTooLargeError
from ledgerflow.ingest.log.kafka import KafkaLog, describe_topic, parse_bootstrap, parse_kafka_uri
from ledgerflow.settings import Settings

from .log_contract import EventLogContract

# Tests that need a broker get the ``kafka`` marker from tests/conftest.py (they use its Kafka
# fixtures); URI parsing and the unreachable-broker tests run everywhere.


class TestKafkaLogContract(EventLogContract):
    @pytest.fixture
    def log_factory(self, kafka_topic: Callable[..., str],
                    kafka_log_factory: Callable[..., KafkaLog]) -> Iterator[Callable[[], EventLog]]:
        topic = kafka_topic(partitions=3)
        yield lambda: kafka_log_factory(topic)


def _drain(log: EventLog) -> list:
    return list(log.read_all(idle_timeout=10.0))


def test_each_key_keeps_its_order_across_partitions(kafka_topic, kafka_log_factory) -> None:
    topic = kafka_topic(partitions=3)
    log = kafka_log_factory(topic)
    keys = [f"run/{i}" for i in range(12)]
    sent: dict[str, list[bytes]] = {key: [] for key in keys}
    for batch in range(5):
        entries = []
        for i in range(60):  # interleaved: consecutive entries belong to different keys
            key = keys[(i * 7 + batch) % len(keys)]
            value = f"{key}#{len(sent[key]) + sum(1 for e in entries if e.key == key)}".encode()
            entries.append(Entry(key, value))
        positions = log.append_batch(entries)
        assert len(positions) == len(entries)
        for entry in entries:
            sent[entry.key].append(entry.value)
    records = _drain(log)
    assert len({r.partition for r in records}) > 1, "keys should spread over several partitions"
    partition_of: dict[str, int] = {}
    got: dict[str, list[bytes]] = {key: [] for key in keys}
    for record in records:
        key = record.value.split(b"#")[0].decode()
        assert partition_of.setdefault(key, record.partition) == record.partition, f"{key} moved partition"
        got[key].append(record.value)
    assert got == sent


def test_positions_returned_by_append_match_what_readers_see(kafka_topic, kafka_log_factory) -> None:
    log = kafka_log_factory(kafka_topic(partitions=3))
    entries = [Entry(f"run/{i % 5}", f"v{i}".encode()) for i in range(40)]
    positions = log.append_batch(entries)
    by_position = {(r.partition, r.offset): r.value for r in _drain(log)}
    assert [by_position[p] for p in positions] == [e.value for e in entries]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_broker_fails_fast_with_a_ledgerflow_error() -> None:
    log = KafkaLog(f"127.0.0.1:{_free_port()}", "nowhere", connect_timeout=2.0, delivery_timeout=3.0)
    started = time.monotonic()
    with pytest.raises((LogUnavailableError, DeliveryError)) as caught:
        log.append_batch([Entry("run/a", b"lost?")])
    assert time.monotonic() - started < 15
    assert "unreachable" in str(caught.value)
    assert caught.value.transient
    with pytest.raises(LogUnavailableError):
        log.end_position()
    log.close()


def test_oversized_record_is_refused_and_the_log_keeps_working(kafka_topic, kafka_log_factory) -> None:
    log = kafka_log_factory(kafka_topic(partitions=3), max_record_bytes=256 * 1024)
    log.append_batch([Entry("run/a", b"before")])
    with pytest.raises((RecordTooLargeError, DeliveryError)) as caught:
        log.append_batch([Entry("run/a", b"ok"), Entry("run/a", os.urandom(300 * 1024))])
    assert "262144 byte record limit" in str(caught.value)
    log.append_batch([Entry("run/a", b"after")])
    assert [r.value for r in _drain(log)] == [b"before", b"after"]


def test_broker_side_size_limit_surfaces_as_a_failed_delivery(kafka_bootstrap, kafka_topic, kafka_log_factory) -> None:
    """An operator lowers the topic's max.message.bytes under a running producer: the broker's
    refusal must surface as a failed delivery (and a too-large record), and the log must recover."""
    from kafka.admin import ConfigResource, ConfigResourceType

    from ledgerflow.ingest.log.kafka import _admin, _topic_config

    topic = kafka_topic(partitions=1)
    log = kafka_log_factory(topic, compression="none")
    log.append_batch([Entry("run/a", b"before")])  # learns the topic's limit (8 MiB)
    admin = _admin(parse_bootstrap(kafka_bootstrap), 30)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": "65536"})])
        for _ in range(50):
            if _topic_config(admin, topic).get("max.message.bytes") == "65536":
                break
            time.sleep(0.1)
    finally:
        admin.close()
    with pytest.raises(DeliveryError) as caught:
        log.append_batch([Entry("run/a", os.urandom(200 * 1024))])
    assert isinstance(caught.value, RecordTooLargeError)
    assert "MessageSizeTooLarge" in str(caught.value) or "large" in str(caught.value).lower()
    log.append_batch([Entry("run/a", b"after")])
    assert [r.value for r in _drain(log)] == [b"before", b"after"]


def test_reader_starts_missing_partitions_at_the_beginning(kafka_topic, kafka_log_factory) -> None:
    log = kafka_log_factory(kafka_topic(partitions=3))
    positions = log.append_batch([Entry(f"run/{i}", f"v{i}".encode()) for i in range(30)])
    first_partition = positions[0][0]
    with log.reader({first_partition: log.end_position()[first_partition]}) as reader:
        got = []
        for _ in range(40):
            got += reader.poll(100, timeout=0.5)
            if len(got) >= sum(1 for p, _ in positions if p != first_partition):
                break
    assert sorted(r.value for r in got) == sorted(
        f"v{i}".encode() for i, (p, _) in enumerate(positions) if p != first_partition)


# -- URIs --------------------------------------------------------------------------------------


def test_from_uri_reads_servers_and_topic() -> None:
    settings = Settings.from_env()
    log = KafkaLog.from_uri("kafka://127.0.0.1:19092,broker-2:9093/my.topic", settings)
    assert log.servers == ["127.0.0.1:19092", "broker-2:9093"]
    assert log.topic == "my.topic"
    assert log.uri == "kafka://127.0.0.1:19092,broker-2:9093/my.topic"
    log.close()  # never connected: opening does no network I/O


def test_from_uri_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERFLOW_KAFKA_TOPIC", "from.env")
    monkeypatch.setenv("LEDGERFLOW_KAFKA_PARTITIONS", "9")
    monkeypatch.setenv("LEDGERFLOW_KAFKA_COMPRESSION", "none")
    log = KafkaLog.from_uri("kafka://localhost", Settings.from_env())
    assert (log.servers, log.topic, log.partitions, log.compression) == (["localhost:9092"], "from.env", 9, None)
    assert parse_kafka_uri("kafka://[::1]:9092/t") == (["[::1]:9092"], "t")


@pytest.mark.parametrize("uri", [
    "kafka://", "kafka:///topic", "kafka://host:notaport", "kafka://host:0", "kafka://host:70000",
    "kafka://a:1,,b:2", "kafka://host:9092/bad topic", "kafka://host:9092/a/b", "kafka://host:9092/t?x=1",
    "kafka://user@host:9092", "kafka:host:9092", "http://host:9092",
    "kafka://host:9092/" + "x" * 250,
])
def test_bad_uris_are_configuration_errors(uri: str) -> None:
    with pytest.raises(ConfigurationError):
        KafkaLog.from_uri(uri, Settings.from_env())


def test_open_log_dispatches_kafka_uris() -> None:
    from ledgerflow.ingest.log import open_log

    log = open_log("kafka://127.0.0.1:1/x", Settings.from_env())
    assert isinstance(log, KafkaLog) and log.topic == "x"
    log.close()


# -- CLI ---------------------------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed console script when there is one, else ``python -m ledgerflow.cli``."""
    script = os.path.join(os.path.dirname(sys.executable), "ledgerflow")
    command = [script] if os.access(script, os.X_OK) else [sys.executable, "-m", "ledgerflow.cli"]
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(command + list(args), capture_output=True, text=True, timeout=120, env=full_env)


def test_cli_creates_and_describes_a_topic(kafka_bootstrap: str, kafka_topic) -> None:
    from ledgerflow.cli import main

    topic = f"lf-cli-{os.getpid()}-{int(time.time() * 1000)}"
    assert main(["kafka", "topics", "create", "--bootstrap", kafka_bootstrap, "--topic", topic,
                 "--partitions", "4"]) == 0
    info = describe_topic(parse_bootstrap(kafka_bootstrap), topic, timeout=30)
    assert len(info.partitions) == 4
    # creating again is fine (it exists) and keeps the partition count
    assert main(["kafka", "topics", "create", "--bootstrap", kafka_bootstrap, "--topic", topic,
                 "--partitions", "2"]) == 0
    done = _cli("kafka", "topics", "describe", "--json", env={
        "LEDGERFLOW_TRACKING_URI": f"kafka://{kafka_bootstrap}/{topic}"})
    assert done.returncode == 0, done.stderr
    described = json.loads(done.stdout)
    assert described["name"] == topic
    assert [p["partition"] for p in described["partitions"]] == [0, 1, 2, 3]
    assert "compression.type" in described["config"]
    text = _cli("kafka", "topics", "describe", "--bootstrap", kafka_bootstrap, "--topic", topic)
    assert text.returncode == 0 and topic in text.stdout and "partition" in text.stdout
    from ledgerflow.ingest.log.kafka import delete_topics

    delete_topics(parse_bootstrap(kafka_bootstrap), [topic])


def test_cli_reports_an_unreachable_broker() -> None:
    started = time.monotonic()
    done = _cli("kafka", "topics", "describe", "--bootstrap", f"127.0.0.1:{_free_port()}", "--timeout", "2")
    assert done.returncode == 1
    assert "unreachable" in done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - started < 60


def test_cli_describe_of_a_missing_topic_fails_cleanly(kafka_bootstrap: str) -> None:
    done = _cli("kafka", "topics", "describe", "--bootstrap", kafka_bootstrap, "--topic", "lf-no-such-topic-x")
    assert done.returncode == 1
    assert "does not exist" in done.stderr
