"""Single-object encoding: round trip of every event type and version, and clear errors on bad bytes."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime

import pytest

from ledgerflow.schemas import (
    MARKER,
    Event,
    EventDecodeError,
    EventEncodeError,
    UnknownFingerprintError,
    decode,
    default_catalog,
    encode,
    make_envelope,
    pack_series,
    unpack_series,
    writer_schema_of,
)
from ledgerflow.schemas.examples import example_record

CATALOG = default_catalog()
LATEST = [versions[-1] for versions in CATALOG.versions.values()]


@pytest.mark.parametrize("schema", LATEST, ids=lambda s: s.label)
@pytest.mark.parametrize("variant", ["minimal", "full"])
def test_every_event_type_round_trips(schema, variant: str) -> None:
    event = Event(schema.name, example_record(schema, variant))
    data = encode(event)
    assert data[:2] == MARKER == b"\xc3\x01"
    assert data[2:10] == schema.fingerprint
    back = decode(data)
    assert back == event
    assert back.schema_version == schema.version


def test_old_version_bytes_decode_resolved_to_the_newest_schema() -> None:
    v1, v2 = CATALOG.versions["DatasetInputLogged"]
    import io

    from fastavro import schemaless_writer

    record = example_record(v1, "full")
    body = io.BytesIO()
    schemaless_writer(body, v1.parsed, record)
    event = decode(MARKER + v1.fingerprint + body.getvalue())
    assert event.schema_version == 1
    assert event.body["dataset"]["profile"] is None  # the v2 field, at its default
    assert event.body["dataset"]["name"] == record["dataset"]["name"]


def test_envelope_helper_fills_id_and_time() -> None:
    envelope = make_envelope(actor="ana", producer_id="p1", sequence=3, entity_key="run/r1")
    assert isinstance(envelope["event_id"], uuid.UUID)
    assert envelope["occurred_at"].tzinfo is UTC
    event = Event("RunRenamed", {"envelope": envelope, "run_id": "r1", "new_name": "better"})
    assert decode(encode(event)).envelope == envelope


def _envelope() -> dict:
    return make_envelope(actor="a", producer_id="p", sequence=0, entity_key="run/r",
                         event_id=uuid.UUID(int=1), occurred_at=datetime(2026, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (Event("RunRenamed", {"envelope": _envelope(), "run_id": "r"}), "RunRenamed"),
        (Event("RunRenamed", {"envelope": _envelope(), "run_id": "r", "new_name": 5}), "RunRenamed"),
        (Event("RunRenamed", {"envelope": _envelope(), "run_id": "r", "new_name": "x", "extra": 1}), "RunRenamed"),
        (Event("RunStatusChanged", {"envelope": _envelope(), "run_id": "r", "status": "DONE"}), "RunStatusChanged"),
    ],
    ids=["missing field", "wrong type", "unknown field", "bad enum symbol"],
)
def test_encoding_a_malformed_event_names_the_problem(event: Event, message: str) -> None:
    with pytest.raises(EventEncodeError, match=message):
        encode(event)


def test_encoding_an_unknown_event_type_lists_the_known_ones() -> None:
    from ledgerflow.schemas import SchemaError

    with pytest.raises(SchemaError, match="unknown event type 'RunExploded'.*RunStarted"):
        encode(Event("RunExploded", {"envelope": _envelope()}))


GOOD = encode(Event("RunRenamed", {"envelope": _envelope(), "run_id": "r", "new_name": "x"}))


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"", EventDecodeError, "expected c301"),
        (b"{\"json\": true}", EventDecodeError, "not an Avro single-object"),
        (MARKER + b"\x00" * 8 + b"body", UnknownFingerprintError, "unknown writer schema fingerprint 0000000000000000"),
        (GOOD[:-3], EventDecodeError, "RunRenamed v1: corrupt event body"),
        (GOOD + b"\x00\x01", EventDecodeError, "2 unexpected bytes"),
    ],
    ids=["empty", "json", "unknown fingerprint", "truncated", "trailing bytes"],
)
def test_decoding_bad_bytes_raises_a_specific_error(data: bytes, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        decode(data)


def test_writer_schema_is_found_without_decoding_the_body() -> None:
    assert writer_schema_of(GOOD[:10] + b"garbage").name == "RunRenamed"


def test_metric_columns_keep_nan_and_infinities_and_exact_integers() -> None:
    values = [0.5, math.nan, math.inf, -math.inf, -0.0, 1e-300]
    steps = [0, 1, 2**62, -5, 4, 5]
    timestamps = [1_700_000_000_000 + i for i in range(6)]
    series = pack_series("loss", steps, timestamps, values)
    event = Event("MetricsLogged", {"envelope": _envelope(), "run_id": "r", "series": [series]})
    back_steps, back_ts, back_values = unpack_series(decode(encode(event)).body["series"][0])
    assert list(back_steps) == steps and list(back_ts) == timestamps
    assert math.isnan(back_values[1]) and back_values[2] == math.inf and back_values[3] == -math.inf
    assert math.copysign(1, back_values[4]) == -1 and back_values[5] == 1e-300


def test_metric_columns_accept_numpy_arrays() -> None:
    numpy = pytest.importorskip("numpy")
    series = pack_series("acc", numpy.arange(5), numpy.arange(5) * 10, numpy.linspace(0, 1, 5))
    steps, timestamps, values = unpack_series(series)
    assert list(steps) == [0, 1, 2, 3, 4] and list(timestamps) == [0, 10, 20, 30, 40] and values[-1] == 1.0


def test_unequal_metric_columns_are_refused_both_ways() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        pack_series("k", [1, 2], [1], [0.1, 0.2])
    bad = {"key": "k", "steps": b"\x00" * 16, "timestamps": b"\x00" * 8, "values": b"\x00" * 8}
    with pytest.raises(EventDecodeError, match="columns differ in length"):
        unpack_series(bad)
    with pytest.raises(EventDecodeError, match="not a multiple of 8"):
        unpack_series(dict(bad, steps=b"\x00" * 7))
