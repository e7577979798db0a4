"""The proxied artifact service at the HTTP level: MLflow's wire format, path safety, atomic uploads, limits.

Requests go to a real server on loopback; what they store is checked on disk under the server's
artifact root, what they record in the projection through the SQL endpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from email.message import Message
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from ledgerflow.api.artifact_store import TEMP_PREFIX, ArtifactPathError, check_relative_path
from ledgerflow.api.server import artifact_directory
from ledgerflow.errors import ConfigurationError
from tests.api.mlflow.artifact_support import SERVICE, log_events, raw_request, sql, start_run_with_events
from tests.api.serving import RunningServer


def _disposition_filename(header: str) -> str:
    message = Message()
    message["content-disposition"] = header
    return message.get_param("filename", header="content-disposition")


def test_upload_download_list_and_delete_answer_as_mlflow(embedded_server: RunningServer) -> None:
    root = embedded_server.runtime.artifact_root
    with embedded_server.client() as client:
        assert client.put(f"{SERVICE}/a.txt", content=b"0").json() == {}
        assert client.put(f"{SERVICE}/dir/b.txt", content=b"1").status_code == 200
        assert (root / "a.txt").read_bytes() == b"0"
        assert (root / "dir" / "b.txt").read_bytes() == b"1"

        download = client.get(f"{SERVICE}/dir/b.txt")
        assert download.content == b"1"
        assert download.headers["x-content-type-options"] == "nosniff"
        assert download.headers["content-type"] == "text/plain"
        assert _disposition_filename(download.headers["content-disposition"]) == "b.txt"
        client.put(f"{SERVICE}/dir/range.bin", content=bytes(range(10)))
        part = client.get(f"{SERVICE}/dir/range.bin", headers={"Range": "bytes=2-4"})
        assert part.status_code == 206 and part.content == bytes([2, 3, 4])
        client.delete(f"{SERVICE}/dir/range.bin")

        assert client.get(SERVICE).json() == {"files": [{"path": "a.txt", "is_dir": False, "file_size": 1},
                                                        {"path": "dir", "is_dir": True}]}
        assert client.get(SERVICE, params={"path": "dir"}).json() == {
            "files": [{"path": "b.txt", "is_dir": False, "file_size": 1}]}
        assert client.get(SERVICE, params={"path": "missing/dir"}).json() == {}  # as MLflow: empty, not 404
        assert client.get(SERVICE, params={"path": "a.txt"}).json() == {}  # a file lists as empty

        missing = client.get(f"{SERVICE}/dir/none.txt")
        assert missing.status_code == 404
        assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        directory = client.get(f"{SERVICE}/dir")
        assert directory.status_code == 400 and "directory" in directory.json()["message"]

        assert client.put(f"{SERVICE}/a.txt", content=b"overwritten").status_code == 200
        assert client.get(f"{SERVICE}/a.txt").content == b"overwritten"

        assert client.delete(f"{SERVICE}/a.txt").json() == {}
        assert client.delete(f"{SERVICE}/dir").status_code == 200
        assert client.delete(f"{SERVICE}/never/there").status_code == 200
        assert client.get(SERVICE).json() == {}
        assert not (root / "a.txt").exists() and not (root / "dir").exists()


def test_the_ajax_prefix_serves_the_same_store(embedded_server: RunningServer) -> None:
    with embedded_server.client() as client:
        client.put("/ajax-api/2.0/mlflow-artifacts/artifacts/x/y.bin", content=b"\x00\x01")
        assert client.get(f"{SERVICE}/x/y.bin").content == b"\x00\x01"
        assert client.get("/ajax-api/2.0/mlflow-artifacts/artifacts", params={"path": "x"}).json() == {
            "files": [{"path": "y.bin", "is_dir": False, "file_size": 2}]}


@pytest.mark.parametrize(("name", "content_type"), [
    ("a.txt", "text/plain"), ("b.pkl", "application/octet-stream"), ("c.png", "image/png"),
    ("d.pdf", "application/pdf"), ("MLmodel", "text/plain"), ("conda.yaml", "text/plain"),
])
def test_the_content_type_follows_the_name_not_the_uploader(embedded_server: RunningServer, name: str,
                                                             content_type: str) -> None:
    with embedded_server.client() as client:
        client.put(f"{SERVICE}/types/{name}", content=b"<html>", headers={"Content-Type": "text/html"})
        response = client.get(f"{SERVICE}/types/{name}", headers={"Accept": "text/html"})
    assert response.headers["content-type"] == content_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert _disposition_filename(response.headers["content-disposition"]) == name


def test_names_outside_ascii_and_with_spaces_round_trip(embedded_server: RunningServer) -> None:
    with embedded_server.client() as client:
        for name in ("résumé modèle.txt", "with space.bin", "semi;colon.csv"):
            assert client.put(f"{SERVICE}/names/{name}", content=name.encode()).status_code == 200
            response = client.get(f"{SERVICE}/names/{name}")
            assert response.content == name.encode()
            assert response.headers["content-disposition"].startswith("attachment; filename=")
        listed = {f["path"] for f in client.get(SERVICE, params={"path": "names"}).json()["files"]}
    assert listed == {"résumé modèle.txt", "with space.bin", "semi;colon.csv"}


ESCAPES = [
    "../outside.txt", "a/../../outside.txt", "..%2foutside.txt", "%2e%2e/outside.txt", "%252e%252e%252foutside.txt",
    "a%00b.txt", "a%5c..%5coutside.txt", "/%2Fetc/outside.txt", "a/b%23c.txt", f"{TEMP_PREFIX}x",
]


@pytest.mark.parametrize("path", ESCAPES)
def test_paths_that_escape_the_root_are_refused(embedded_server: RunningServer, path: str) -> None:
    root = embedded_server.runtime.artifact_root
    for method, url in [("PUT", f"{SERVICE}/{path}"), ("GET", f"{SERVICE}/{path}"), ("DELETE", f"{SERVICE}/{path}"),
                        ("GET", f"{SERVICE}?path={path}"), ("POST", f"/api/2.0/mlflow-artifacts/mpu/create/{path}")]:
        status, body = raw_request(embedded_server, method, url, b"payload" if method == "PUT" else None)
        assert status == 400, (method, url, status, body)
        assert body["error_code"] == "INVALID_PARAMETER_VALUE"
        assert body["message"].startswith("Invalid path")
    assert not (root.parent / "outside.txt").exists()
    assert not any(p.name.endswith("outside.txt") for p in root.parent.rglob("*"))


def test_a_symbolic_link_out_of_the_root_is_not_followed(embedded_server: RunningServer, tmp_path: Path) -> None:
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "key.txt").write_text("do not serve")
    root = embedded_server.runtime.artifact_root
    root.mkdir(parents=True, exist_ok=True)
    (root / "link").symlink_to(outside)
    with embedded_server.client() as client:
        assert client.get(f"{SERVICE}/link/key.txt").status_code == 400
        assert client.put(f"{SERVICE}/link/new.txt", content=b"x").status_code == 400
        assert client.get(SERVICE, params={"path": "link"}).status_code == 400
        assert client.delete(f"{SERVICE}/link/key.txt").status_code == 400
    assert sorted(p.name for p in outside.iterdir()) == ["key.txt"]


def test_an_upload_needs_a_file_name_and_a_free_one(embedded_server: RunningServer) -> None:
    with embedded_server.client() as client:
        client.put(f"{SERVICE}/taken/file.txt", content=b"1")
        trailing = client.put(f"{SERVICE}/taken/", content=b"x")
        assert trailing.status_code == 400 and "name a file" in trailing.json()["message"]
        over_directory = client.put(f"{SERVICE}/taken", content=b"x")
        assert over_directory.status_code == 400 and "directory" in over_directory.json()["message"]
        under_file = client.put(f"{SERVICE}/taken/file.txt/child", content=b"x")
        assert under_file.status_code == 400 and "is an existing file" in under_file.json()["message"]
        too_long = client.put(f"{SERVICE}/{'n' * 300}.txt", content=b"x")
        assert too_long.status_code == 400 and "longer" in too_long.json()["message"]
        assert client.get(f"{SERVICE}/taken/file.txt").content == b"1"


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(f"{TEMP_PREFIX}*")]


def test_an_interrupted_upload_never_replaces_or_truncates_the_artifact(embedded_server: RunningServer) -> None:
    root = embedded_server.runtime.artifact_root
    with embedded_server.client() as client:
        client.put(f"{SERVICE}/ckpt/model.bin", content=b"complete old version")
    address = urlparse(embedded_server.url)
    with socket.create_connection((address.hostname, address.port)) as connection:
        connection.sendall((f"PUT {SERVICE}/ckpt/model.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n"
                            ).encode() + b"n" * 3_000_000)
        deadline = time.monotonic() + 10
        while not _temp_files(root) and time.monotonic() < deadline:  # the upload is being written
            time.sleep(0.02)
        assert _temp_files(root), "the upload never reached the store"
        with embedded_server.client() as client:  # meanwhile readers see the old file, and only it
            assert client.get(SERVICE, params={"path": "ckpt"}).json() == {
                "files": [{"path": "model.bin", "is_dir": False, "file_size": 20}]}
            assert client.get(f"{SERVICE}/ckpt/model.bin").content == b"complete old version"
    deadline = time.monotonic() + 10  # the disconnect is noticed, the temporary file removed
    while _temp_files(root) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _temp_files(root) == []
    assert (root / "ckpt" / "model.bin").read_bytes() == b"complete old version"


def test_uploads_over_the_configured_limit_store_nothing(embedded_server: RunningServer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERFLOW_ARTIFACT_MAX_UPLOAD_BYTES", "1000")  # read when the store is first used
    root = embedded_server.runtime.artifact_root
    with embedded_server.client() as client:
        assert client.put(f"{SERVICE}/limit/exact.bin", content=b"x" * 1000).status_code == 200
        declared = client.put(f"{SERVICE}/limit/declared.bin", content=b"x" * 1001)
        assert declared.status_code == 413 and declared.json()["error_code"] == "REQUEST_TOO_LARGE"
        streamed = client.put(f"{SERVICE}/limit/streamed.bin", content=iter([b"y" * 600, b"y" * 600]))  # chunked
        assert streamed.status_code == 413 and "1000" in streamed.json()["message"]
    assert sorted(p.name for p in (root / "limit").iterdir()) == ["exact.bin"]


def test_multipart_and_presigned_transfers_answer_as_a_store_without_them(embedded_server: RunningServer) -> None:
    with embedded_server.client() as client:
        create = client.post("/api/2.0/mlflow-artifacts/mpu/create/0/run/artifacts", json={"path": "f", "num_parts": 2})
        assert create.status_code == 501
        assert create.json() == {"error_code": "NOT_IMPLEMENTED",
                                 "message": "Multipart upload is not supported for the current artifact repository"}
        assert client.post("/api/2.0/mlflow-artifacts/mpu/abort/0/x", json={"path": "f", "upload_id": "u"}
                           ).status_code == 501
        assert client.post("/api/2.0/mlflow-artifacts/mpu/complete/0/x", json={"path": "f", "parts": []}
                           ).status_code == 501
        missing = client.post("/api/2.0/mlflow-artifacts/mpu/create/0/x", json={"num_parts": 2})
        assert missing.status_code == 400 and "'path'" in missing.json()["message"]
        presigned = client.get("/api/2.0/mlflow-artifacts/presigned/0/x/model.bin")
        assert presigned.status_code == 501
        assert presigned.json()["message"].startswith("Multipart download is not supported")


def test_run_uploads_are_recorded_as_artifact_logged_events(server: RunningServer) -> None:
    run_id = start_run_with_events(server, experiment_id="7", user="ana")
    content = os.urandom(4096)
    with server.client() as client:
        assert client.put(f"{SERVICE}/7/{run_id}/artifacts/weights/w.bin", content=content,
                          headers={"X-Ledgerflow-Actor": "bo"}).status_code == 200
        client.put(f"{SERVICE}/7/{run_id}/artifacts/notes.txt", content=b"v1")
        client.put(f"{SERVICE}/7/{run_id}/artifacts/notes.txt", content=b"version 2")
        client.put(f"{SERVICE}/7/models/m-0123/artifacts/MLmodel", content=b"flavors: {}")  # not a run's
        client.put(f"{SERVICE}/7/{'f' * 32}/artifacts/x.txt", content=b"no such run")  # looks like one, is not
    rows = sql(server, f"SELECT path, uri, size, sha256 FROM artifacts WHERE run_id = '{run_id}' ORDER BY path")
    assert rows == [
        {"path": "notes.txt", "uri": f"mlflow-artifacts:/7/{run_id}/artifacts/notes.txt", "size": 9,
         "sha256": hashlib.sha256(b"version 2").hexdigest()},
        {"path": "weights/w.bin", "uri": f"mlflow-artifacts:/7/{run_id}/artifacts/weights/w.bin", "size": 4096,
         "sha256": hashlib.sha256(content).hexdigest()},
    ]
    assert sql(server, "SELECT count(*) AS n FROM artifacts")[0]["n"] == 2
    audit = sql(server, f"SELECT actor, entity_key FROM events WHERE event_type = 'ArtifactLogged' "
                        f"AND run_id = '{run_id}' ORDER BY log_offset")
    assert [r["actor"] for r in audit] == ["bo", "ana", "ana"]  # the header, else the run's user
    assert {r["entity_key"] for r in audit} == {f"run/{run_id}"}
    timeline = httpx.get(f"{server.url}/api/v1/audit/run/{run_id}").json()
    assert json.dumps(timeline).count('"ArtifactLogged"') == 3, timeline
    assert sql(server, "SELECT count(*) AS n FROM dead_letters")[0]["n"] == 0


def test_custom_artifact_locations_and_deleted_runs(embedded_server: RunningServer) -> None:
    custom = uuid.uuid4().hex
    start_run_with_events(embedded_server, run_id=custom, artifact_uri=f"mlflow-artifacts:/team/{custom}/files")
    elsewhere = start_run_with_events(embedded_server)  # its id in a path that is not its root
    start_run_with_events(embedded_server, artifact_uri="mlflow-artifacts:/team/no-run-id")
    over_http = uuid.uuid4().hex  # MLflow's --default-artifact-root http://host/api/2.0/mlflow-artifacts/artifacts
    http_root = f"{embedded_server.url}{SERVICE}/h/{over_http}/artifacts"
    start_run_with_events(embedded_server, run_id=over_http, artifact_uri=http_root)
    deleted = start_run_with_events(embedded_server)
    log_events(embedded_server, ("RunDeleted", {"run_id": deleted}))
    with embedded_server.client() as client:
        client.put(f"{SERVICE}/team/{custom}/files/report.md", content=b"# report")
        client.put(f"{SERVICE}/h/{over_http}/artifacts/z.txt", content=b"z")
        client.put(f"{SERVICE}/other/{elsewhere}/artifacts/x.txt", content=b"not under the run's root")
        client.put(f"{SERVICE}/team/no-run-id/y.txt", content=b"no run id in the path")
        client.put(f"{SERVICE}/0/{deleted}/artifacts/late.txt", content=b"after deletion")
        # all stored, as MLflow does
        assert client.get(f"{SERVICE}/0/{deleted}/artifacts/late.txt").content == b"after deletion"
        assert client.get(f"{SERVICE}/team/no-run-id/y.txt").content == b"no run id in the path"
    # events only where the path is inside an active run's root and names its id; the projector
    # would refuse writes to a deleted run, so none is appended for it
    assert sorted(sql(embedded_server, "SELECT run_id, path, uri FROM artifacts"), key=lambda r: r["path"]) == [
        {"run_id": custom, "path": "report.md", "uri": f"mlflow-artifacts:/team/{custom}/files/report.md"},
        {"run_id": over_http, "path": "z.txt", "uri": f"{http_root}/z.txt"}]
    assert sql(embedded_server, "SELECT count(*) AS n FROM dead_letters")[0]["n"] == 0


def test_tracking_service_artifact_endpoints(embedded_server: RunningServer) -> None:
    run_id = start_run_with_events(embedded_server, experiment_id="3")
    with embedded_server.client() as client:
        client.put(f"{SERVICE}/3/{run_id}/artifacts/a.txt", content=b"abcdefg")
        client.put(f"{SERVICE}/3/{run_id}/artifacts/dir/b.txt", content=b"1")
        for prefix in ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow"):
            listed = client.get(f"{prefix}/artifacts/list", params={"run_id": run_id}).json()
            assert listed == {"root_uri": f"mlflow-artifacts:/3/{run_id}/artifacts",
                              "files": [{"path": "a.txt", "is_dir": False, "file_size": 7},
                                        {"path": "dir", "is_dir": True}]}
        nested = client.get("/api/2.0/mlflow/artifacts/list", params={"run_uuid": run_id, "path": "dir"}).json()
        assert nested["files"] == [{"path": "dir/b.txt", "is_dir": False, "file_size": 1}]
        assert client.get("/api/2.0/mlflow/artifacts/list", params={"run_id": run_id, "path": "none"}).json() == {
            "root_uri": f"mlflow-artifacts:/3/{run_id}/artifacts"}
        unknown = client.get("/api/2.0/mlflow/artifacts/list", params={"run_id": "0" * 32})
        assert unknown.status_code == 404 and unknown.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        assert client.get("/api/2.0/mlflow/artifacts/list").status_code == 400
        escape = client.get("/api/2.0/mlflow/artifacts/list", params={"run_id": run_id, "path": "../.."})
        assert escape.status_code == 400

        got = client.get("/get-artifact", params={"run_id": run_id, "path": "a.txt"})
        assert got.text == "abcdefg" and got.headers["x-content-type-options"] == "nosniff"
        assert client.get("/get-artifact", params={"run_id": run_id, "path": "zzz"}).status_code == 404
        assert client.get("/get-artifact", params={"run_id": run_id, "path": "../../x"}).status_code == 400

        presigned = client.post("/api/2.0/mlflow/artifacts/presigned-download-url",
                                json={"run_id": run_id, "path": "a.txt"})
        assert presigned.status_code == 400 and "proxied" in presigned.json()["message"]
        both = client.post("/api/2.0/mlflow/artifacts/presigned-upload-url",
                           json={"run_id": run_id, "model_id": "m-1", "path": "a.txt"})
        assert both.status_code == 400 and "Exactly one" in both.json()["message"]


def test_model_version_artifacts_are_served_from_their_source(embedded_server: RunningServer) -> None:
    run_id = start_run_with_events(embedded_server)
    log_events(embedded_server,
               ("RegisteredModelCreated", {"name": "churn", "description": None, "tags": []}),
               ("ModelVersionCreated", {"name": "churn", "version": 1, "source": "mlflow-artifacts:", "run_id": None,
                                        "artifact_uri": None, "signature": None, "description": None, "tags": []}),
               ("ModelVersionCreated", {"name": "churn", "version": 2, "source": f"runs:/{run_id}/model",
                                        "run_id": run_id, "artifact_uri": None, "signature": None,
                                        "description": None, "tags": []}))
    with embedded_server.client() as client:
        client.put(f"{SERVICE}/a.txt", content=b"at the root")
        client.put(f"{SERVICE}/0/{run_id}/artifacts/model/MLmodel", content=b"flavors: {}")
        first = client.get("/model-versions/get-artifact", params={"name": "churn", "version": "1", "path": "a.txt"})
        assert first.text == "at the root"
        second = client.get("/model-versions/get-artifact",
                            params={"name": "churn", "version": "2", "path": "MLmodel"})
        assert second.text == "flavors: {}" and second.headers["content-type"] == "text/plain"
        missing = client.get("/model-versions/get-artifact", params={"name": "churn", "version": "9", "path": "a"})
        assert missing.status_code == 404
        assert client.get("/model-versions/get-artifact",
                          params={"name": "churn", "version": "one", "path": "a"}).status_code == 400


def test_check_relative_path_normalizes_and_refuses() -> None:
    assert check_relative_path("a//./b/") == "a/b"
    assert check_relative_path("", allow_root=True) == ""
    assert check_relative_path("a%20b.txt") == "a%20b.txt"  # stored as received, decoded only to check
    for bad in ("", "..", "a/../b", "/abs", "C:/x", "a\\b", "a\x00b", "a\nb", "%2e%2e", "%252e%252e/x", "a#b"):
        with pytest.raises(ArtifactPathError):
            check_relative_path(bad)


def test_artifacts_destination_takes_a_directory_or_a_file_uri(tmp_path: Path) -> None:
    assert artifact_directory(None) is None
    assert artifact_directory(str(tmp_path / "a")) == tmp_path / "a"
    assert artifact_directory(f"file://{tmp_path}/with%20space") == tmp_path / "with space"
    with pytest.raises(ConfigurationError, match="local directory"):
        artifact_directory("s3://bucket/prefix")


def test_runs_logged_by_the_ledgerflow_sdk_into_the_same_home_are_served(embedded_server: RunningServer,
                                                                         tmp_path: Path) -> None:
    import ledgerflow as lf

    local = tmp_path / "model.pt"
    local.write_bytes(b"\x00weights")
    previous = lf.get_tracking_uri()
    lf.set_tracking_uri(f"file:{embedded_server.home}")  # the server's own log and data home
    try:
        with lf.start_run(run_name="sdk") as run:
            lf.log_artifact(str(local), artifact_path="checkpoints")
    finally:
        lf.set_tracking_uri(previous)  # flushes and closes the client on the server's log
    run_id = run.info.run_id
    with embedded_server.client() as client:
        listed = client.get("/api/2.0/mlflow/artifacts/list", params={"run_id": run_id, "path": "checkpoints"}).json()
        assert listed["root_uri"].startswith("file://")
        assert listed["files"] == [{"path": "checkpoints/model.pt", "is_dir": False, "file_size": 8}]
        got = client.get("/get-artifact", params={"run_id": run_id, "path": "checkpoints/model.pt"})
        assert got.content == b"\x00weights"

    elsewhere = start_run_with_events(embedded_server, artifact_uri=(tmp_path / "elsewhere").as_uri())
    refused = httpx.get(f"{embedded_server.url}/api/2.0/mlflow/artifacts/list", params={"run_id": elsewhere})
    assert refused.status_code == 501 and "not in this server's artifact store" in refused.json()["message"]
    s3 = start_run_with_events(embedded_server, artifact_uri="s3://bucket/path")
    assert httpx.get(f"{embedded_server.url}/get-artifact", params={"run_id": s3, "path": "a"}).status_code == 501
