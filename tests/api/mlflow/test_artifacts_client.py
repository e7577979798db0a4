"""Artifacts through the unmodified ``mlflow`` client, as a training script logs and reads them.

A run's artifact URI is ``mlflow-artifacts:/<experiment>/<run>/artifacts``; the client uploads each
file with the proxied artifact service, lists and downloads through it, and the server records an
``ArtifactLogged`` event per file (checked in the ``artifacts`` table).
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from tests.api.mlflow.artifact_support import sql
from tests.api.serving import RunningServer


def _workspace(tmp_path: Path) -> dict[str, Path]:
    """Local files as a script would have them: a text file, a nested directory, a binary blob."""
    files = tmp_path / "work"
    (files / "dataset" / "splits").mkdir(parents=True)
    (files / "summary.txt").write_text("loss went down\n")
    (files / "dataset" / "train.csv").write_text("x,y\n1,2\n3,4\n")
    (files / "dataset" / "splits" / "fold-0.json").write_text(json.dumps({"rows": [0, 1]}))
    (files / "weights.bin").write_bytes(os.urandom(300_000))
    return {"summary": files / "summary.txt", "dataset": files / "dataset", "weights": files / "weights.bin"}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_run_logs_lists_and_downloads_its_artifacts(mlflow_server: RunningServer, tmp_path: Path) -> None:
    local = _workspace(tmp_path)
    image = np.random.default_rng(7).integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    mlflow.set_experiment("artifacts-day")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(local["summary"]))
        mlflow.log_artifact(str(local["weights"]), artifact_path="checkpoints")
        mlflow.log_artifacts(str(local["dataset"]), artifact_path="dataset")
        mlflow.log_dict({"lr": 0.01, "layers": [64, 32]}, "config/params.json")
        mlflow.log_text("# notes\nall good", "notes/readme.md")
        mlflow.log_image(image, "plots/sample.png")
    run_id = run.info.run_id
    experiment_id = run.info.experiment_id
    assert run.info.artifact_uri == f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"

    client = MlflowClient()
    assert [(f.path, f.is_dir) for f in client.list_artifacts(run_id)] == [
        ("checkpoints", True), ("config", True), ("dataset", True), ("notes", True), ("plots", True),
        ("summary.txt", False)]
    assert [(f.path, f.is_dir, f.file_size) for f in client.list_artifacts(run_id, "dataset")] == [
        ("dataset/splits", True, None), ("dataset/train.csv", False, (local["dataset"] / "train.csv").stat().st_size)]
    assert [f.path for f in client.list_artifacts(run_id, "dataset/splits")] == ["dataset/splits/fold-0.json"]
    assert client.list_artifacts(run_id, "summary.txt") == []

    # byte for byte, a directory and single files, by run id and by runs:/ URI
    copied = Path(client.download_artifacts(run_id, "dataset", str(tmp_path / "dl")))
    comparison = filecmp.dircmp(local["dataset"], copied)
    assert comparison.left_list == comparison.right_list and not comparison.diff_files
    assert filecmp.cmp(local["dataset"] / "splits" / "fold-0.json", copied / "splits" / "fold-0.json", shallow=False)
    weights = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/checkpoints/weights.bin",
                                                       dst_path=str(tmp_path / "w")))
    assert weights.read_bytes() == local["weights"].read_bytes()
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/config/params.json") == {"lr": 0.01, "layers": [64, 32]}
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/notes/readme.md") == "# notes\nall good"
    assert np.array_equal(np.asarray(mlflow.artifacts.load_image(f"runs:/{run_id}/plots/sample.png")), image)
    everything = Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(tmp_path / "all")))
    assert (everything / "summary.txt").read_text() == "loss went down\n"

    # stored under the server's artifact root, and each file is an ArtifactLogged event of the run
    root = mlflow_server.runtime.artifact_root / experiment_id / run_id / "artifacts"
    assert (root / "checkpoints" / "weights.bin").read_bytes() == local["weights"].read_bytes()
    rows = {r["path"]: r for r in sql(mlflow_server, f"SELECT path, uri, size, sha256 FROM artifacts "
                                                f"WHERE run_id = '{run_id}'")}
    assert set(rows) == {"summary.txt", "checkpoints/weights.bin", "dataset/train.csv", "dataset/splits/fold-0.json",
                         "config/params.json", "notes/readme.md", "plots/sample.png"}
    assert rows["checkpoints/weights.bin"]["sha256"] == _sha256(local["weights"])
    assert rows["checkpoints/weights.bin"]["size"] == 300_000
    assert rows["summary.txt"]["uri"] == f"{run.info.artifact_uri}/summary.txt"
    for path, row in rows.items():
        assert row["sha256"] == _sha256(root / path), path


def test_deleting_artifacts_through_the_client(mlflow_embedded_server: RunningServer, tmp_path: Path) -> None:
    local = _workspace(tmp_path)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(local["dataset"]), artifact_path="dataset")
        mlflow.log_artifact(str(local["summary"]))
    repository = get_artifact_repository(run.info.artifact_uri)
    repository.delete_artifacts("dataset/splits")
    client = MlflowClient()
    assert [f.path for f in client.list_artifacts(run.info.run_id, "dataset")] == ["dataset/train.csv"]
    repository.delete_artifacts("summary.txt")
    assert [f.path for f in client.list_artifacts(run.info.run_id)] == ["dataset"]
    with pytest.raises(MlflowException):
        mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/summary.txt", dst_path=str(tmp_path / "gone"))


def test_errors_the_client_raises_as_against_mlflow(mlflow_embedded_server: RunningServer, tmp_path: Path) -> None:
    with pytest.raises(MlflowException) as unknown:
        MlflowClient().list_artifacts("f" * 32)
    assert unknown.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with mlflow.start_run() as run:
        pass
    with pytest.raises(MlflowException):
        MlflowClient().download_artifacts(run.info.run_id, "missing.txt", str(tmp_path))
    with pytest.raises(MlflowException, match="Invalid artifact path"):  # refused by the client itself
        mlflow.log_artifact(str(_workspace(tmp_path)["summary"]), artifact_path="../outside")


class _AddOne(mlflow.pyfunc.PythonModel):
    # left unannotated on purpose: MLflow 3 turns predict's type hints into the model's signature
    def predict(self, context, model_input):
        return model_input + 1


def test_logged_model_artifacts_are_stored_apart_from_the_run(mlflow_embedded_server: RunningServer,
                                                               tmp_path: Path) -> None:
    with mlflow.start_run() as run:
        info = mlflow.pyfunc.log_model(name="adder", python_model=_AddOne())
        mlflow.log_text("trained", "notes.txt")
    experiment_id = run.info.experiment_id
    model_root = mlflow_embedded_server.runtime.artifact_root / experiment_id / "models" / info.model_id / "artifacts"
    assert (model_root / "MLmodel").is_file()

    listed = {f.path for f in MlflowClient().list_logged_model_artifacts(info.model_id)}
    assert {"MLmodel", "python_model.pkl"} <= listed
    with mlflow_embedded_server.client() as client:
        directories = client.get(f"/api/2.0/mlflow/logged-models/{info.model_id}/artifacts/directories").json()
        assert directories["root_uri"] == f"mlflow-artifacts:/{experiment_id}/models/{info.model_id}/artifacts"
        assert {f["path"] for f in directories["files"]} == listed
        mlmodel = client.get(f"/ajax-api/2.0/mlflow/logged-models/{info.model_id}/artifacts/files",
                             params={"artifact_file_path": "MLmodel"})
        assert mlmodel.content == (model_root / "MLmodel").read_bytes()
        assert client.get(f"/api/2.0/mlflow/logged-models/m-{'0' * 32}/artifacts/directories").status_code == 404

    loaded = mlflow.pyfunc.load_model(info.model_uri)
    assert loaded.predict(np.array([1, 2])).tolist() == [2, 3]
    # the run's own file is an event; the model's files are not (no event type describes them)
    assert sql(mlflow_embedded_server, "SELECT run_id, path FROM artifacts") == [
        {"run_id": run.info.run_id, "path": "notes.txt"}]
