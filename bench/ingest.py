"""Ingest-side figures: the codec, appends to the embedded log and to Kafka, and the SDK hot path."""

from __future__ import annotations

import io
import math
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from bench.harness import Figure, figure
from ledgerflow.ingest.log import Entry, EventLog
from ledgerflow.ingest.log.file import FileLog
from ledgerflow.schemas import Event, decode, encode, make_envelope, pack_series

POINTS_PER_EVENT = 1000
REPO = Path(__file__).resolve().parent.parent

# For comparison only: the obvious layout we did NOT choose, one Avro record per point.
_ROW_LAYOUT = parse_schema({
    "type": "record", "name": "MetricsAsRows", "fields": [
        {"name": "run_id", "type": "string"},
        {"name": "points", "type": {"type": "array", "items": {"type": "record", "name": "Point", "fields": [
            {"name": "key", "type": "string"}, {"name": "value", "type": "double"},
            {"name": "step", "type": "long"}, {"name": "timestamp", "type": "long"}]}}}]})


def metrics_event(run_id: str, sequence: int, points: int = POINTS_PER_EVENT) -> Event:
    start = 1_763_000_000_000
    series = pack_series("loss", range(sequence * points, (sequence + 1) * points), range(start, start + points),
                         [math.sin(i) for i in range(points)])
    envelope = make_envelope(actor="bench", producer_id="bench", sequence=sequence, entity_key=f"run/{run_id}")
    return Event("MetricsLogged", {"envelope": envelope, "run_id": run_id, "series": [series]})


def codec_figures(repetitions: int, events: int) -> list[Figure]:
    event = metrics_event("r" * 32, 0)
    data = encode(event)
    rows = {"run_id": "r" * 32, "points": [{"key": "loss", "value": math.sin(i), "step": i, "timestamp": 1_763_000_000_000 + i}
                                           for i in range(POINTS_PER_EVENT)]}
    row_buffer = io.BytesIO()
    schemaless_writer(row_buffer, _ROW_LAYOUT, rows)
    row_bytes = row_buffer.getvalue()

    def rate(fn) -> float:
        start = time.perf_counter()
        for _ in range(events):
            fn()
        return events * POINTS_PER_EVENT / (time.perf_counter() - start)

    def rows_encode() -> None:
        schemaless_writer(io.BytesIO(), _ROW_LAYOUT, rows)

    def rows_decode() -> None:
        schemaless_reader(io.BytesIO(row_bytes), _ROW_LAYOUT, None)

    return [
        figure("codec: encode MetricsLogged (1,000 points, packed columns)", "points/s", "higher",
               lambda: rate(lambda: encode(event)), repetitions, notes=f"{len(data)} bytes per 1,000-point event"),
        figure("codec: decode MetricsLogged (1,000 points, packed columns)", "points/s", "higher",
               lambda: rate(lambda: decode(data)), repetitions),
        figure("codec reference: encode 1,000 points as Avro array of records", "points/s", "higher",
               lambda: rate(rows_encode), repetitions, notes=f"{len(row_bytes)} bytes per 1,000 points; not used"),
        figure("codec reference: decode 1,000 points as Avro array of records", "points/s", "higher",
               lambda: rate(rows_decode), repetitions),
    ]


def _append_rate(log: EventLog, events: int, events_per_append: int) -> float:
    """Points/s to encode ``events`` 1,000-point events and append them durably, N per append_batch."""
    run_id = uuid.uuid4().hex
    start = time.perf_counter()
    for first in range(0, events, events_per_append):
        batch = [Entry(f"run/{run_id}", encode(metrics_event(run_id, i)))
                 for i in range(first, min(events, first + events_per_append))]
        log.append_batch(batch)
    return events * POINTS_PER_EVENT / (time.perf_counter() - start)


def file_append_figures(repetitions: int, events: int) -> list[Figure]:
    figures = []
    for per_append, fsync in ((100, "always"), (1, "always"), (100, "never")):
        def once(per_append: int = per_append, fsync: str = fsync) -> float:
            directory = Path(tempfile.mkdtemp(prefix="lf-bench-"))
            log = FileLog(directory / "events", fsync=fsync)
            try:
                return _append_rate(log, events, per_append)
            finally:
                log.close()
                shutil.rmtree(directory)

        figures.append(figure(
            f"append to embedded log: 1,000-point events, {per_append} per append_batch, fsync={fsync}",
            "points/s", "higher", once, repetitions, goal=1_000_000 if (per_append, fsync) == (100, "always") else None,
            notes="includes Avro encoding of every event" if per_append == 100 and fsync == "always" else ""))
    return figures


def kafka_bootstrap() -> str:
    """$KAFKA_BOOTSTRAP_SERVERS, else the project's local broker (started if needed)."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    result = subprocess.run([str(REPO / "scripts" / "kafka-local"), "start"], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"scripts/kafka-local start failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1].split()[-1]


def kafka_append_figures(repetitions: int, events: int) -> list[Figure]:
    from ledgerflow.ingest.log.kafka import KafkaLog
    from ledgerflow.settings import Settings

    bootstrap = kafka_bootstrap()

    def once() -> float:
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        log = KafkaLog.from_uri(f"kafka://{bootstrap}/{topic}", Settings.from_env())
        try:
            return _append_rate(log, events, 100)
        finally:
            log.close()

    return [figure("append to Kafka: 1,000-point events, 100 per append_batch, acks=all, idempotent, lz4",
                   "points/s", "higher", once, repetitions, goal=500_000, notes=f"broker {bootstrap}, 6 partitions")]
