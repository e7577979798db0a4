"""Every environment variable ledgerflow reads, in one table, and a typed view of them.

Keeping the table here (and nowhere else) lets a test prove that docker-compose.yml
only sets variables ledgerflow actually reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ledgerflow.errors import ConfigurationError

#: name -> what it means. Every variable ledgerflow reads is listed here.
ENVIRONMENT_VARIABLES: dict[str, str] = {
    "LEDGERFLOW_HOME": "Data directory of the embedded default (default ./ledgerflow-data).",
    "LEDGERFLOW_TRACKING_URI": "Where the SDK writes: file:PATH or kafka://HOST:PORT[,HOST:PORT][/TOPIC].",
    "LEDGERFLOW_ACTOR": "Who is recorded as the actor of events (default: the OS user name).",
    "LEDGERFLOW_KAFKA_TOPIC": "Kafka topic holding the event log (default ledgerflow.events).",
    "LEDGERFLOW_KAFKA_PARTITIONS": "Partition count used when ledgerflow creates the topic (default 6).",
    "LEDGERFLOW_KAFKA_COMPRESSION": "Kafka producer compression: lz4 (default), gzip, zstd or none.",
    "LEDGERFLOW_FSYNC": "Embedded log fsync policy: always (default) or never.",
    "LEDGERFLOW_BUFFER_MAX_POINTS": "SDK metric buffer bound, in points (default 1000000).",
    "LEDGERFLOW_BUFFER_FULL": "What log_metric does when the buffer is full: block (default) or raise.",
    "LEDGERFLOW_FLUSH_INTERVAL": "Seconds between background flushes of the SDK buffer (default 1.0).",
    "LEDGERFLOW_DUCKDB_MEMORY_LIMIT": "DuckDB memory limit of the projector and the server's queries (default: a quarter of the machine's memory, at least 256MB). Its indexes over runs, params, metrics and events must fit in it: ~1GB per 100,000 runs.",
    "LEDGERFLOW_SQL_TIMEOUT": "Seconds one POST /api/v1/sql query may run before it is cancelled (default 10).",
    "LEDGERFLOW_SQL_MAX_ROWS": "Rows POST /api/v1/sql returns at most; more are reported as truncated (default 100000).",
    "LEDGERFLOW_ARTIFACT_MAX_UPLOAD_BYTES": "Largest artifact one upload to the server may store, in bytes (default 34359738368 = 32 GiB).",
}

FSYNC_POLICIES = ("always", "never")
BUFFER_FULL_POLICIES = ("block", "raise")
COMPRESSION_TYPES = ("lz4", "gzip", "zstd", "none")


def _env(name: str) -> str | None:
    assert name in ENVIRONMENT_VARIABLES, f"undocumented environment variable {name}"
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def _choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = (_env(name) or default).lower()
    if value not in allowed:
        raise ConfigurationError(f"{name}={value!r} is not one of {', '.join(allowed)}")
    return value


def _number(name: str, default: float, kind: type, minimum: float) -> float:
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a {kind.__name__}") from None
    if value < minimum:
        raise ConfigurationError(f"{name}={raw!r} must be >= {minimum}")
    return value


def default_duckdb_memory_limit() -> str:
    """A quarter of physical memory, at least 256MB.

    Why not a small fixed cap: DuckDB keeps the indexes of the keyed tables in this memory, and they
    grow with the registry. 256MB (the old default) ran out at ~100,000 runs with 13 events each, and
    the projector then failed every batch. The cap does not set the RSS of a metric-heavy projection:
    20M points over 10 runs peaked at 453, 469 and 465 MiB under 256MB, 1GB and 6GB.
    """
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return "1GB"
    return f"{max(256, physical // 4 // 2**20)}MB"


@dataclass(frozen=True)
class Settings:
    """A snapshot of the environment; read it with :meth:`from_env`."""

    home: Path
    tracking_uri: str | None
    actor: str | None
    kafka_topic: str
    kafka_partitions: int
    kafka_compression: str
    fsync: str
    buffer_max_points: int
    buffer_full: str
    flush_interval: float
    duckdb_memory_limit: str
    sql_timeout: float
    sql_max_rows: int
    artifact_max_upload_bytes: int = 32 * 1024**3

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            home=Path(_env("LEDGERFLOW_HOME") or "ledgerflow-data"),
            tracking_uri=_env("LEDGERFLOW_TRACKING_URI"),
            actor=_env("LEDGERFLOW_ACTOR"),
            kafka_topic=_env("LEDGERFLOW_KAFKA_TOPIC") or "ledgerflow.events",
            kafka_partitions=int(_number("LEDGERFLOW_KAFKA_PARTITIONS", 6, int, 1)),
            kafka_compression=_choice("LEDGERFLOW_KAFKA_COMPRESSION", "lz4", COMPRESSION_TYPES),
            fsync=_choice("LEDGERFLOW_FSYNC", "always", FSYNC_POLICIES),
            buffer_max_points=int(_number("LEDGERFLOW_BUFFER_MAX_POINTS", 1_000_000, int, 1)),
            buffer_full=_choice("LEDGERFLOW_BUFFER_FULL", "block", BUFFER_FULL_POLICIES),
            flush_interval=float(_number("LEDGERFLOW_FLUSH_INTERVAL", 1.0, float, 0.001)),
            duckdb_memory_limit=_env("LEDGERFLOW_DUCKDB_MEMORY_LIMIT") or default_duckdb_memory_limit(),
            sql_timeout=float(_number("LEDGERFLOW_SQL_TIMEOUT", 10.0, float, 0.001)),
            sql_max_rows=int(_number("LEDGERFLOW_SQL_MAX_ROWS", 100_000, int, 1)),
            artifact_max_upload_bytes=int(_number("LEDGERFLOW_ARTIFACT_MAX_UPLOAD_BYTES", 32 * 1024**3, int, 1)),
        )
