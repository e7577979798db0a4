"""The Kafka event log: one topic, records keyed by entity so each run's events stay in order.

Every entry is produced with its :attr:`Entry.key` as the Kafka key, so all events of one entity
(a run, a model) land in one partition in append order; different entities spread over the
partitions. The producer is idempotent with ``acks=all``: a retried send is never duplicated
or reordered, and :meth:`KafkaLog.append_batch` returns only once every record is acknowledged
by all in-sync replicas, or raises. Readers assign every partition and seek, with no consumer
group: the projector owns its positions and stores them with its rows.

Nothing talks to the broker until it is needed (first append, read or admin call), so opening
a log never blocks. Every network wait is bounded by ``connect_timeout`` (reaching the cluster,
metadata) or ``delivery_timeout`` (an append's acknowledgements); see docs/kafka.md.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as kerrors
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from ledgerflow.errors import ConfigurationError
from ledgerflow.ingest.log.base import Entry, EventLog, LogReader, LogRecord, Position
from ledgerflow.ingest.log.errors import DeliveryError, LogError, LogUnavailableError, RecordTooLargeError
from ledgerflow.settings import Settings

_log = logging.getLogger(__name__)
_warned_slow_crc = False

DEFAULT_TOPIC = "ledgerflow.events"
DEFAULT_PORT = 9092
#: largest record accepted (and max.message.bytes of topics ledgerflow creates): a whole
#: metric series chunk fits with room to spare, and the broker still copes comfortably.
DEFAULT_MAX_RECORD_BYTES = 8 * 1024 * 1024
#: record batch header (61 bytes) plus a record's own framing, before its key; kept generous
#: so the client-side size check never lets through what the broker would refuse
_RECORD_OVERHEAD = 128
#: producer batch target: ~40 events of 20-30 KB per batch, one request per partition
_BATCH_BYTES = 1024 * 1024
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
#: kafka-python errors that mean "the cluster cannot be reached (now)", not "it said no"
#: (looked up by name: kafka-python 2.x and 3.x do not define the same set)
_UNREACHABLE: tuple[type[Exception], ...] = tuple(
    getattr(kerrors, name) for name in (
        "KafkaTimeoutError", "NoBrokersAvailable", "KafkaConnectionError", "NodeNotReadyError",
        "RequestTimedOutError", "MetadataEmptyBrokerList", "BrokerNotAvailableError")
    if hasattr(kerrors, name))
_TOO_LARGE = (kerrors.MessageSizeTooLargeError, kerrors.RecordListTooLargeError)
#: the topic configs the CLI shows
DESCRIBED_CONFIGS = ("compression.type", "max.message.bytes", "retention.ms", "retention.bytes",
                     "cleanup.policy", "min.insync.replicas")


class BrokerRecordTooLargeError(DeliveryError, RecordTooLargeError):
    """The broker refused a record as too large after part of the batch may have been stored.

    It is both a failed delivery (treat the batch as not acknowledged) and a too-large record
    (retrying unchanged will never succeed).
    """

    transient = False


# -- configuration --------------------------------------------------------------------------


def parse_bootstrap(servers: str) -> list[str]:
    """``HOST[:PORT][,HOST[:PORT]]`` as a list of ``HOST:PORT``; raises ConfigurationError."""
    result = []
    for raw in servers.split(","):
        item = raw.strip()
        if not item:
            raise ConfigurationError(f"empty broker address in {servers!r}")
        if item.startswith("["):  # [IPv6]:PORT
            host, _, rest = item[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else (rest or None)
            host = f"[{host}]"
        else:
            host, sep, port = item.rpartition(":")
            if not sep:
                host, port = item, None
        if not host or host == "[]" or any(c in host for c in "/?#@ "):
            raise ConfigurationError(f"bad broker host in {item!r}; use HOST:PORT")
        if port is None or port == "":
            port = str(DEFAULT_PORT)
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigurationError(f"bad broker port in {item!r}; use HOST:PORT")
        result.append(f"{host}:{int(port)}")
    return result


def check_topic_name(topic: str) -> str:
    """Kafka's rule for topic names, checked here so a typo fails with a clear message."""
    if not _TOPIC_NAME.match(topic) or topic in (".", ".."):
        raise ConfigurationError(f"invalid Kafka topic name {topic!r}: use 1-249 of [A-Za-z0-9._-]")
    return topic


def parse_kafka_uri(uri: str) -> tuple[list[str], str | None]:
    """``kafka://HOST:PORT[,HOST:PORT][/TOPIC]`` -> (bootstrap servers, topic or None)."""
    parts = urlsplit(uri)
    if parts.scheme != "kafka" or not uri.startswith("kafka://"):
        raise ConfigurationError(f"{uri!r} is not a kafka://HOST:PORT[,HOST:PORT][/TOPIC] URI")
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise ConfigurationError(f"{uri!r}: kafka URIs take no user, query or fragment")
    if not parts.netloc:
        raise ConfigurationError(f"{uri!r} names no broker; use kafka://HOST:PORT[/TOPIC]")
    servers = parse_bootstrap(parts.netloc)
    path = parts.path.strip("/")
    return servers, (check_topic_name(path) if path else None)


def _compression(value: str | None) -> str | None:
    value = (value or "none").lower()
    if value not in ("none", "lz4", "gzip", "zstd", "snappy"):
        raise ConfigurationError(f"unsupported Kafka compression {value!r}")
    return None if value == "none" else value


def _unavailable(what: str, servers: Sequence[str], e: BaseException) -> LogUnavailableError:
    return LogUnavailableError(f"Kafka at {','.join(servers)} unreachable while {what}: {type(e).__name__}: {e}")


def _warn_if_slow_crc() -> None:
    """Say once when kafka-python checksums record batches in pure Python: 7-15x slower appends
    and reads of 24 KB events (docs/kafka.md); ``pip install crc32c`` fixes it."""
    global _warned_slow_crc
    if _warned_slow_crc:
        return
    _warned_slow_crc = True
    try:
        from kafka.record import util

        slow = getattr(util, "crc32c_c", True) is None
    except ImportError:
        slow = False
    if slow:
        _log.warning("kafka-python is using its pure-Python CRC32C; install the 'crc32c' package "
                     "for ~10x faster Kafka appends and reads")


# -- admin -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartitionInfo:
    partition: int
    leader: int
    replicas: list[int]
    in_sync: list[int]
    end_offset: int


@dataclass(frozen=True)
class TopicInfo:
    """What ``ledgerflow kafka topics describe`` shows."""

    name: str
    partitions: list[PartitionInfo]
    config: dict[str, str] = field(default_factory=dict)


def _admin(servers: Sequence[str], timeout: float) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(bootstrap_servers=list(servers), client_id="ledgerflow-admin",
                                bootstrap_timeout_ms=int(timeout * 1000),
                                request_timeout_ms=int(max(timeout, 1.0) * 1000),
                                reconnect_backoff_max_ms=1000)
    except _UNREACHABLE as e:
        raise _unavailable("connecting", servers, e) from e
    except kerrors.KafkaError as e:
        raise LogError(f"cannot open a Kafka admin client on {','.join(servers)}: {e}") from e


def _topic_config(admin: KafkaAdminClient, topic: str) -> dict[str, str]:
    result = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
    entries = result.get("topic", {}).get(topic, {})
    return {name: str(entry.get("value")) for name, entry in entries.items()}


def ensure_topic(servers: Sequence[str], topic: str, *, partitions: int, replication_factor: int = 1,
                 max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES, timeout: float = 10.0) -> bool:
    """Create ``topic`` unless it exists; True when this call created it.

    An existing topic is left as it is (its partition count included): changing the partition
    count of a live topic would move keys to other partitions and break per-run ordering.
    """
    check_topic_name(topic)
    if partitions < 1 or replication_factor < 1:
        raise ConfigurationError("partitions and replication factor must be >= 1")
    admin = _admin(servers, timeout)
    try:
        spec = {"num_partitions": partitions, "replication_factor": replication_factor,
                "configs": {"max.message.bytes": str(max_record_bytes)}}
        admin.create_topics({topic: spec}, timeout_ms=int(timeout * 1000), wait_for_metadata=True)
        return True
    except kerrors.TopicAlreadyExistsError:
        return False
    except kerrors.InvalidReplicationFactorError as e:
        raise ConfigurationError(f"cannot create {topic!r} with replication factor {replication_factor}: {e}") from e
    except _UNREACHABLE as e:
        raise _unavailable(f"creating topic {topic!r}", servers, e) from e
    except kerrors.KafkaError as e:
        raise LogError(f"cannot create Kafka topic {topic!r}: {e}") from e
    finally:
        admin.close()


def describe_topic(servers: Sequence[str], topic: str, *, timeout: float = 10.0) -> TopicInfo:
    """Partitions (leader, replicas, end offset) and the main configs of ``topic``."""
    admin = _admin(servers, timeout)
    try:
        [meta] = admin.describe_topics([topic])
        error = kerrors.for_code(meta.get("error_code", 0))
        if error is kerrors.UnknownTopicOrPartitionError:
            raise LogError(f"Kafka topic {topic!r} does not exist on {','.join(servers)}")
        if error is not kerrors.NoError:
            raise LogError(f"cannot describe Kafka topic {topic!r}: {error.__name__}")
        config = _topic_config(admin, topic)
    except _UNREACHABLE as e:
        raise _unavailable(f"describing topic {topic!r}", servers, e) from e
    except kerrors.KafkaError as e:
        raise LogError(f"cannot describe Kafka topic {topic!r}: {e}") from e
    finally:
        admin.close()
    parts = sorted(meta["partitions"], key=lambda p: p["partition_index"])
    ends = _end_offsets(servers, topic, [p["partition_index"] for p in parts], timeout)
    return TopicInfo(
        name=topic,
        partitions=[PartitionInfo(p["partition_index"], p["leader_id"], list(p["replica_nodes"]),
                                  list(p["isr_nodes"]), ends.get(p["partition_index"], 0)) for p in parts],
        config={k: config[k] for k in DESCRIBED_CONFIGS if k in config},
    )


def delete_topics(servers: Sequence[str], topics: Sequence[str], *, timeout: float = 10.0) -> None:
    """Delete ``topics`` (missing ones are ignored); for tests and tidy-ups."""
    admin = _admin(servers, timeout)
    try:
        admin.delete_topics(list(topics), timeout_ms=int(timeout * 1000), raise_errors=False)
    except _UNREACHABLE as e:
        raise _unavailable("deleting topics", servers, e) from e
    finally:
        admin.close()


def _consumer(servers: Sequence[str], timeout: float, max_fetch_bytes: int = _BATCH_BYTES) -> KafkaConsumer:
    """A group-less consumer: positions belong to the projector, not to Kafka."""
    try:
        return KafkaConsumer(bootstrap_servers=list(servers), client_id="ledgerflow-reader", group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             allow_auto_create_topics=False, fetch_max_wait_ms=200,
                             max_partition_fetch_bytes=max(4 * _BATCH_BYTES, max_fetch_bytes),
                             bootstrap_timeout_ms=int(timeout * 1000),
                             request_timeout_ms=int(max(timeout, 1.0) * 1000) + 1000,
                             reconnect_backoff_max_ms=1000)
    except _UNREACHABLE as e:
        raise _unavailable("connecting", servers, e) from e


def _end_offsets(servers: Sequence[str], topic: str, partitions: list[int], timeout: float) -> dict[int, int]:
    consumer = _consumer(servers, timeout)
    try:
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions], timeout_ms=int(timeout * 1000))
    except _UNREACHABLE as e:
        raise _unavailable(f"reading end offsets of {topic!r}", servers, e) from e
    finally:
        consumer.close()
    return {tp.partition: offset for tp, offset in ends.items()}


# -- the log -----------------------------------------------------------------------------------


class KafkaLog(EventLog):
    """The event log in Kafka topic ``topic``; see the module docstring for the guarantees.

    ``create_topic``: create the topic (``partitions``, ``replication_factor``) on first use when
    it is missing. ``max_record_bytes``: the largest record accepted; the effective limit is the
    smaller of this and the topic's own ``max.message.bytes``.
    """

    def __init__(self, bootstrap_servers: str | Sequence[str], topic: str = DEFAULT_TOPIC, *,
                 partitions: int = 6, replication_factor: int = 1, compression: str | None = "lz4",
                 create_topic: bool = True, connect_timeout: float = 10.0, delivery_timeout: float = 30.0,
                 max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES, linger_ms: int = 5) -> None:
        self.servers = parse_bootstrap(bootstrap_servers) if isinstance(bootstrap_servers, str) else list(bootstrap_servers)
        if not self.servers:
            raise ConfigurationError("no Kafka bootstrap servers given")
        self.topic = check_topic_name(topic)
        self.uri = f"kafka://{','.join(self.servers)}/{self.topic}"
        if partitions < 1 or replication_factor < 1:
            raise ConfigurationError("Kafka partitions and replication factor must be >= 1")
        if connect_timeout <= 0 or delivery_timeout <= 0:
            raise ConfigurationError("Kafka timeouts must be > 0 seconds")
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.compression = _compression(compression)
        self.create_topic = create_topic
        self.connect_timeout = connect_timeout
        self.delivery_timeout = delivery_timeout
        self.max_record_bytes = max_record_bytes
        self.linger_ms = linger_ms
        self._lock = threading.Lock()  # guards lazy set-up and the metadata consumer
        self._ready = False
        self._producer: KafkaProducer | None = None
        self._meta: KafkaConsumer | None = None
        self._closed = False

    @classmethod
    def from_uri(cls, uri: str, settings: Settings | None = None, **options: Any) -> KafkaLog:
        """Open ``kafka://HOST:PORT[,HOST:PORT][/TOPIC]``; the topic defaults to the settings' one."""
        settings = settings or Settings.from_env()
        servers, topic = parse_kafka_uri(uri)
        options.setdefault("partitions", settings.kafka_partitions)
        options.setdefault("compression", settings.kafka_compression)
        return cls(servers, topic or settings.kafka_topic, **options)

    # -- set-up ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise LogError(f"{self.uri} is closed")

    def _prepare(self) -> None:
        """Create or check the topic once and learn its record size limit. Lock held."""
        if self._ready:
            return
        if self.create_topic:
            ensure_topic(self.servers, self.topic, partitions=self.partitions,
                         replication_factor=self.replication_factor, max_record_bytes=self.max_record_bytes,
                         timeout=self.connect_timeout)
        admin = _admin(self.servers, self.connect_timeout)
        try:
            [meta] = admin.describe_topics([self.topic])
            if kerrors.for_code(meta.get("error_code", 0)) is kerrors.UnknownTopicOrPartitionError:
                raise LogError(f"Kafka topic {self.topic!r} does not exist on {','.join(self.servers)}")
            limit = _topic_config(admin, self.topic).get("max.message.bytes")
        except _UNREACHABLE as e:
            raise _unavailable(f"opening topic {self.topic!r}", self.servers, e) from e
        except kerrors.KafkaError:  # e.g. no DescribeConfigs permission: keep our own limit
            limit = None
        finally:
            admin.close()
        if limit and limit.isdigit():
            self.max_record_bytes = min(self.max_record_bytes, int(limit))
        self._ready = True

    def _get_producer(self) -> KafkaProducer:
        with self._lock:
            self._check_open()
            self._prepare()
            if self._producer is None:
                _warn_if_slow_crc()
                try:
                    self._producer = KafkaProducer(
                        bootstrap_servers=self.servers, client_id="ledgerflow-producer",
                        acks="all", enable_idempotence=True, compression_type=self.compression,
                        linger_ms=self.linger_ms,
                        batch_size=min(_BATCH_BYTES, self.max_record_bytes - _RECORD_OVERHEAD),
                        max_request_size=self.max_record_bytes,
                        allow_auto_create_topics=False,
                        max_block_ms=int(self.connect_timeout * 1000),
                        bootstrap_timeout_ms=int(self.connect_timeout * 1000),
                        request_timeout_ms=max(1000, int(self.delivery_timeout * 500)),
                        delivery_timeout_ms=int(self.delivery_timeout * 1000),
                        reconnect_backoff_max_ms=1000)
                except _UNREACHABLE as e:
                    raise _unavailable("connecting the producer", self.servers, e) from e
                except (RuntimeError, ValueError) as e:  # e.g. the codec's library is missing
                    raise ConfigurationError(f"cannot configure the Kafka producer: {e}") from e
            return self._producer

    def _partition_ids(self) -> list[int]:
        """The topic's partitions, from the (lazily opened) metadata consumer. Lock held."""
        self._prepare()
        if self._meta is None:
            self._meta = _consumer(self.servers, self.connect_timeout)
        try:
            partitions = self._meta.partitions_for_topic(self.topic)
        except _UNREACHABLE as e:
            raise _unavailable(f"reading the partitions of {self.topic!r}", self.servers, e) from e
        if not partitions:
            raise LogUnavailableError(f"Kafka reports no partitions for topic {self.topic!r}")
        return sorted(partitions)

    # -- the port -------------------------------------------------------------------------

    def append_batch(self, entries: Sequence[Entry]) -> list[tuple[int, int]]:
        self._check_open()
        if not entries:
            return []
        producer = self._get_producer()
        keys = [entry.key.encode() for entry in entries]
        for key, entry in zip(keys, entries, strict=True):
            size = len(entry.value) + len(key) + _RECORD_OVERHEAD
            if size > self.max_record_bytes:
                raise RecordTooLargeError(
                    f"event of {len(entry.value)} bytes (key {entry.key!r}) exceeds the {self.max_record_bytes} byte "
                    f"record limit of {self.uri}; nothing of the batch was sent")
        futures = []
        try:
            for key, entry in zip(keys, entries, strict=True):
                futures.append(producer.send(self.topic, key=key, value=entry.value))
            producer.flush(timeout=self.delivery_timeout + self.linger_ms / 1000 + 5)
        except _UNREACHABLE as e:
            self._discard_producer(producer)
            if not futures:
                raise _unavailable(f"appending to {self.topic!r}", self.servers, e) from e
            raise DeliveryError(f"append to {self.uri} failed after {len(futures)} of {len(entries)} records "
                                f"were handed to the producer; the batch is not acknowledged: "
                                f"{type(e).__name__}: {e}") from e
        except kerrors.KafkaError as e:
            self._discard_producer(producer)
            raise DeliveryError(f"append to {self.uri} failed, the batch is not acknowledged: "
                                f"{type(e).__name__}: {e}") from e
        try:
            return self._results(futures)
        except DeliveryError:
            self._discard_producer(producer)
            raise

    def _discard_producer(self, producer: KafkaProducer) -> None:
        """Drop a producer after a failed delivery; the next append starts a fresh one.

        kafka-python's idempotent producer can be left in a fatal state by a refused batch
        (e.g. MESSAGE_TOO_LARGE), failing every later send. A new producer gets a new producer id,
        which is safe: the failed batch was reported as not acknowledged.
        """
        with self._lock:
            if self._producer is producer:
                self._producer = None
        producer.close(timeout=0)

    def _results(self, futures: list[Any]) -> list[tuple[int, int]]:
        """Every future's (partition, offset), or DeliveryError naming the first cause."""
        positions: list[tuple[int, int]] = []
        failures: list[BaseException] = []
        for future in futures:
            if not future.is_done:
                failures.append(kerrors.KafkaTimeoutError("no acknowledgement after flush"))
            elif future.failed():
                failures.append(future.exception)
            else:
                metadata = future.value
                positions.append((metadata.partition, metadata.offset))
        if not failures:
            return positions
        first = failures[0]
        message = (f"{len(failures)} of {len(futures)} records were not acknowledged by {self.uri}; "
                   f"the batch is not acknowledged: {type(first).__name__}: {first}")
        if any(isinstance(f, _TOO_LARGE) for f in failures):
            raise BrokerRecordTooLargeError(message) from first
        raise DeliveryError(message) from first

    def reader(self, start: Position | None = None) -> KafkaLogReader:
        self._check_open()
        with self._lock:
            partitions = self._partition_ids()
        return KafkaLogReader(self, partitions, dict(start or {}))

    def end_position(self) -> Position:
        self._check_open()
        with self._lock:
            partitions = self._partition_ids()
            assert self._meta is not None
            try:
                ends = self._meta.end_offsets([TopicPartition(self.topic, p) for p in partitions],
                                              timeout_ms=int(self.connect_timeout * 1000))
            except _UNREACHABLE as e:
                raise _unavailable(f"reading end offsets of {self.topic!r}", self.servers, e) from e
        return {tp.partition: offset for tp, offset in ends.items()}

    def describe(self) -> TopicInfo:
        """The topic's partitions, leaders, end offsets and main configs."""
        return describe_topic(self.servers, self.topic, timeout=self.connect_timeout)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            producer, self._producer = self._producer, None
            meta, self._meta = self._meta, None
        if producer is not None:
            # anything still buffered belongs to an append that already raised; do not wait long
            producer.close(timeout=min(5.0, self.delivery_timeout))
        if meta is not None:
            meta.close()


class KafkaLogReader(LogReader):
    """Reads every partition of the topic from a position, with assign() and seek().

    Positions are tracked from the records returned (offset + 1), so :attr:`position` names
    exactly what the caller has seen, never what is merely buffered in the consumer.
    """

    def __init__(self, log: KafkaLog, partitions: list[int], start: Position) -> None:
        self._log = log
        self._consumer = _consumer(log.servers, log.connect_timeout, log.max_record_bytes)
        tps = [TopicPartition(log.topic, p) for p in partitions]
        try:
            missing = [tp for tp in tps if tp.partition not in start]
            first = self._consumer.beginning_offsets(missing, timeout_ms=int(log.connect_timeout * 1000)) if missing else {}
            self._positions: Position = {tp.partition: start.get(tp.partition, first.get(tp, 0)) for tp in tps}
            self._consumer.assign(tps)
            for tp in tps:
                self._consumer.seek(tp, self._positions[tp.partition])
        except _UNREACHABLE as e:
            self._consumer.close()
            raise _unavailable(f"opening a reader on {log.topic!r}", log.servers, e) from e

    @property
    def position(self) -> Position:
        return dict(self._positions)

    def poll(self, max_records: int = 10_000, timeout: float = 0.0) -> list[LogRecord]:
        try:
            # KafkaConsumer.poll itself waits until records arrive or the timeout expires
            batches = self._consumer.poll(timeout_ms=int(max(0.0, timeout) * 1000), max_records=max_records)
        except _UNREACHABLE as e:
            raise _unavailable(f"reading {self._log.topic!r}", self._log.servers, e) from e
        except kerrors.KafkaError as e:
            raise LogError(f"reading {self._log.uri} failed: {type(e).__name__}: {e}") from e
        records: list[LogRecord] = []
        for tp, messages in batches.items():
            for message in messages:
                records.append(LogRecord(tp.partition, message.offset, message.offset + 1, message.value or b""))
            if messages:
                self._positions[tp.partition] = messages[-1].offset + 1
        return records

    def close(self) -> None:
        self._consumer.close()
