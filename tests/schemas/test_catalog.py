"""The event catalog: complete, frozen once published, and every version compatible with its neighbours."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ledgerflow.schemas import SchemaError, default_catalog, load_catalog
from ledgerflow.schemas.catalog import AVRO_DIR
from ledgerflow.schemas.published import check_published, compatibility_problems, read_published

# The catalog: these event types must exist (more may).
REQUIRED_EVENT_TYPES = {
    "ExperimentCreated", "ExperimentRenamed", "ExperimentDeleted", "ExperimentRestored", "ExperimentTagSet",
    "ExperimentTagDeleted", "RunStarted", "RunStatusChanged", "RunRenamed", "RunDeleted", "RunRestored",
    "ParamsLogged", "RunTagsSet", "RunTagDeleted", "MetricsLogged", "DatasetInputLogged", "ArtifactLogged",
    "RegisteredModelCreated", "RegisteredModelRenamed", "RegisteredModelDeleted", "RegisteredModelTagSet",
    "ModelVersionCreated", "ModelVersionAliasSet", "ModelVersionAliasDeleted", "ModelVersionStageChanged",
    "ModelVersionTagSet", "ModelVersionDeleted",
}
ENVELOPE_FIELDS = ["event_id", "occurred_at", "actor", "producer_id", "sequence", "entity_key"]


def test_catalog_covers_every_required_event_type() -> None:
    assert REQUIRED_EVENT_TYPES <= set(default_catalog().event_types)


@pytest.mark.parametrize("name", sorted(default_catalog().versions))
def test_every_version_carries_the_shared_envelope(name: str) -> None:
    for schema in default_catalog().versions[name]:
        envelope = schema.schema["fields"][0]
        assert envelope["name"] == "envelope"
        assert [f["name"] for f in envelope["type"]["fields"]] == ENVELOPE_FIELDS
        assert envelope["type"]["fields"][1]["type"] == {"type": "long", "logicalType": "timestamp-micros"}


def test_every_published_fingerprint_is_unchanged_and_every_version_published() -> None:
    assert check_published(default_catalog(), read_published()) == []


def test_published_record_covers_at_least_one_evolved_event() -> None:
    # keeps the compatibility check honest: something real is exercised by it
    assert any(len(v) > 1 for v in default_catalog().versions.values())


@pytest.fixture
def avro_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "avro"
    shutil.copytree(AVRO_DIR, copy)
    return copy


def test_an_edited_published_schema_is_caught(avro_copy: Path) -> None:
    path = avro_copy / "events" / "RunRenamed.v1.avsc"
    schema = json.loads(path.read_text())
    schema["fields"].append({"name": "reason", "type": "string", "default": ""})
    path.write_text(json.dumps(schema))
    problems = check_published(load_catalog(avro_copy), read_published())
    assert any("RunRenamed v1: fingerprint changed" in p for p in problems)


def test_a_doc_only_edit_of_a_published_schema_is_caught(avro_copy: Path) -> None:
    path = avro_copy / "events" / "RunRenamed.v1.avsc"
    path.write_text(path.read_text().replace("A run got a new name.", "Renamed."))
    problems = check_published(load_catalog(avro_copy), read_published())
    assert any("RunRenamed v1: the published .avsc was edited" in p for p in problems)


def test_an_edited_shared_envelope_changes_every_fingerprint(avro_copy: Path) -> None:
    path = avro_copy / "types" / "ledgerflow.Envelope.avsc"
    path.write_text(path.read_text().replace('"name": "actor"', '"name": "user"'))
    problems = check_published(load_catalog(avro_copy), read_published())
    assert sum("fingerprint changed" in p for p in problems) == sum(len(v) for v in default_catalog().versions.values())


def test_a_deleted_published_version_is_caught(avro_copy: Path) -> None:
    (avro_copy / "events" / "RunDeleted.v1.avsc").unlink()
    problems = check_published(load_catalog(avro_copy), read_published())
    assert "RunDeleted v1 was published but its .avsc file is gone" in problems


def test_an_incompatible_new_version_is_caught(avro_copy: Path) -> None:
    v1 = json.loads((avro_copy / "events" / "RunRenamed.v1.avsc").read_text())
    v1["fields"].append({"name": "reason", "type": "string"})  # required, no default: old data cannot be read
    (avro_copy / "events" / "RunRenamed.v2.avsc").write_text(json.dumps(v1))
    catalog = load_catalog(avro_copy)
    older, newer = catalog.versions["RunRenamed"]
    problems = compatibility_problems(older, newer)
    assert problems and "backward" in problems[0]


def test_a_compatible_new_version_with_an_optional_field_passes(avro_copy: Path) -> None:
    v1 = json.loads((avro_copy / "events" / "RunRenamed.v1.avsc").read_text())
    v1["fields"].append({"name": "reason", "type": ["null", "string"], "default": None})
    (avro_copy / "events" / "RunRenamed.v2.avsc").write_text(json.dumps(v1))
    older, newer = load_catalog(avro_copy).versions["RunRenamed"]
    assert compatibility_problems(older, newer) == []


@pytest.mark.parametrize(
    ("file_name", "content", "message"),
    [
        ("Bad.avsc", "{}", "named <EventName>.v<N>.avsc"),
        ("RunX.v1.avsc", "{not json", "cannot read Avro schema"),
        ("RunY.v1.avsc", '{"type": "record", "name": "Other", "fields": []}', "does not match the file name"),
        ("RunZ.v2.avsc", '{"type": "record", "name": "RunZ", "fields": [{"name": "envelope", "type": "ledgerflow.Envelope"}]}', "without gaps"),
        ("RunW.v1.avsc", '{"type": "record", "name": "RunW", "fields": [{"name": "x", "type": "string"}]}', "first field must be 'envelope'"),
        ("RunV.v1.avsc", '{"type": "record", "name": "RunV", "fields": [{"name": "envelope", "type": "nope"}]}', "invalid Avro schema"),
    ],
)
def test_a_broken_catalog_fails_with_a_clear_message(avro_copy: Path, file_name: str, content: str, message: str) -> None:
    (avro_copy / "events" / file_name).write_text(content)
    with pytest.raises(SchemaError, match=message.replace("(", r"\(").replace(")", r"\)").replace("<", "<").replace(".", r"\.")):
        load_catalog(avro_copy)
