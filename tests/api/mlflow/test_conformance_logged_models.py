"""Logged-model behaviours found by running MLflow's own REST test suites against ledgerflow server.

``mlflow.pyfunc.log_model`` outside any run, as the first call a fresh server sees, creates its
logged model in the Default experiment "0": the server must have that experiment by then, as MLflow's
server always has.
"""

from __future__ import annotations

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow import MlflowClient

from tests.api.mlflow.artifact_support import sql
from tests.api.serving import RunningServer


class Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input):  # noqa: ANN001, ANN201 - MLflow's signature
        return model_input * 2


def test_log_model_without_a_run_on_a_fresh_server_lands_in_default(mlflow_embedded_server: RunningServer,
                                                                    embedded_client: MlflowClient) -> None:
    assert sql(mlflow_embedded_server, "SELECT count(*) AS n FROM experiments") == [{"n": 0}]
    info = mlflow.pyfunc.log_model(name="doubler", python_model=Doubler())
    model = embedded_client.get_logged_model(info.model_id)
    assert model.experiment_id == "0"
    assert not model.source_run_id  # no run: the client reads the absent field as ""
    assert embedded_client.get_experiment("0").name == "Default"
    with mlflow_embedded_server.client() as http:
        listed = http.get(f"/ajax-api/2.0/mlflow/logged-models/{info.model_id}/artifacts/directories").json()
        mlmodel = http.get(f"/ajax-api/2.0/mlflow/logged-models/{info.model_id}/artifacts/files",
                           params={"artifact_file_path": "MLmodel"})
    assert "MLmodel" in {f["path"] for f in listed["files"]}
    assert info.model_id in mlmodel.text
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    assert loaded.predict(pd.DataFrame({"x": [1, 2]}))["x"].tolist() == [2, 4]
