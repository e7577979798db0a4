"""The MLflow 3 model flow end to end: log a pyfunc model, register it, alias it, load it by alias, predict.

Everything goes through the unmodified client and a real server: the logged model and run outputs
(logged_models.py), the files through the artifact proxy (artifacts.py), the registry (registry.py).
"""

from __future__ import annotations

import mlflow
import mlflow.pyfunc
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus

from tests.api.mlflow.tracking_support import sql
from tests.api.serving import RunningServer

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


class AddOffset(mlflow.pyfunc.PythonModel):
    """A model small enough to pickle in a test: adds a fixed offset to column x."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.Series:  # noqa: ANN001
        return model_input["x"] + self.offset


def test_log_register_alias_load_and_predict(mlflow_embedded_server: RunningServer) -> None:
    client = MlflowClient(mlflow_embedded_server.url)
    mlflow.set_experiment("model-flow")
    with mlflow.start_run() as run:
        mlflow.log_param("offset", 5)
        info = mlflow.pyfunc.log_model(name="model", python_model=AddOffset(5.0),
                                       input_example=pd.DataFrame({"x": [1.0]}))
    logged = client.get_logged_model(info.model_id)
    assert logged.status == LoggedModelStatus.READY
    assert (logged.name, logged.source_run_id, logged.experiment_id) == ("model", run.info.run_id,
                                                                         run.info.experiment_id)
    assert logged.params == {"offset": "5"}  # log_model copies the run's params onto the model
    assert sql(mlflow_embedded_server, "SELECT run_id, model_id, step FROM run_outputs") == [
        {"run_id": run.info.run_id, "model_id": info.model_id, "step": 0}]
    [output] = client.get_run(run.info.run_id).outputs.model_outputs
    assert (output.model_id, output.step) == (info.model_id, 0)

    version = mlflow.register_model(info.model_uri, "adder")
    assert version.version == "1"
    client.set_registered_model_alias("adder", "champion", version.version)
    assert client.get_model_version_download_uri("adder", "1") == logged.artifact_location

    model = mlflow.pyfunc.load_model("models:/adder@champion")
    assert model.predict(pd.DataFrame({"x": [1.0, 2.5]})).tolist() == [6.0, 7.5]

    # registered the MLflow 2 way (runs:/<run_id>/<name>): of two models named so in one run, the client
    # picks the one logged at the later step, from the run's outputs; it becomes version 2
    with mlflow.start_run() as second_run:
        mlflow.pyfunc.log_model(name="model", python_model=AddOffset(50.0), step=1)
        mlflow.pyfunc.log_model(name="model", python_model=AddOffset(100.0), step=2)
    second = mlflow.register_model(f"runs:/{second_run.info.run_id}/model", "adder")
    assert second.version == "2"
    assert sorted(o.step for o in client.get_run(second_run.info.run_id).outputs.model_outputs) == [1, 2]
    client.set_registered_model_alias("adder", "champion", "2")  # the alias moves; loading follows it
    assert mlflow.pyfunc.load_model("models:/adder@champion").predict(pd.DataFrame({"x": [1.0]})).tolist() == [101.0]
    assert mlflow.pyfunc.load_model("models:/adder/1").predict(pd.DataFrame({"x": [1.0]})).tolist() == [6.0]
    assert sql(mlflow_embedded_server, "SELECT count(*) AS n FROM dead_letters")[0]["n"] == 0
