"""A data scientist's day, written as plain MLflow code: nothing in it knows about ledgerflow.

Run as its own process with MLFLOW_TRACKING_URI pointing at a server; writes one JSON document of
what it observed to the path given as its argument, which tests/e2e/test_mlflow_day.py checks. Every call is the public mlflow 3.x API.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException


class Doubler(mlflow.pyfunc.PythonModel):
    """The model we ship: predicts twice its input plus the run's learned offset."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def predict(self, context, model_input, params=None):  # noqa: ANN001 (mlflow's signature)
        return model_input["x"] * 2 + self.offset


def error_code(call) -> str:  # noqa: ANN001
    try:
        call()
    except MlflowException as e:
        return e.error_code
    return "NO_ERROR"


def main() -> dict:
    seen: dict = {}
    client = MlflowClient()
    experiment = mlflow.set_experiment("churn-model")
    seen["experiment_id"] = experiment.experiment_id
    data = pd.DataFrame({"x": np.arange(20.0), "y": np.arange(20.0) * 2 + 1})
    dataset = mlflow.data.from_pandas(data, source="s3://bucket/churn.parquet", name="churn-train", targets="y")

    with mlflow.start_run(run_name="sweep") as parent:
        for lr in (0.01, 0.1):
            with mlflow.start_run(run_name=f"lr-{lr}", nested=True) as child:
                mlflow.log_params({"lr": lr, "depth": 4})
                for step in range(50):
                    mlflow.log_metric("loss", 1.0 / (step + 1) + lr, step=step)
                mlflow.log_metrics({"accuracy": 0.8 + lr, "f1": 0.7 + lr}, step=49)
                mlflow.set_tags({"team": "growth", "stage": "tuning"})
                mlflow.log_input(dataset, context="training")
                mlflow.log_dict({"lr": lr, "features": ["x"]}, "config/params.json")
                mlflow.log_text(f"learning rate {lr}\n", "notes.txt")
                with tempfile.TemporaryDirectory() as tmp:
                    report = Path(tmp) / "report.csv"
                    report.write_text("step,loss\n0,1.0\n")
                    mlflow.log_artifact(str(report), artifact_path="reports")
                seen.setdefault("children", []).append(child.info.run_id)
        seen["parent"] = parent.info.run_id
        mlflow.log_param("sweep_size", 2)

    runs = mlflow.search_runs(
        experiment_ids=[experiment.experiment_id],
        filter_string="metrics.accuracy > 0.5 and params.depth = '4'",
        order_by=["metrics.accuracy DESC"],
    )
    seen["search"] = {"rows": len(runs), "run_ids": list(runs["run_id"]),
                      "accuracy": [float(v) for v in runs["metrics.accuracy"]],
                      "columns": sorted(c for c in runs.columns if c.startswith(("params.", "tags.team")))}
    best = runs.iloc[0]["run_id"]
    history = client.get_metric_history(best, "loss")
    seen["history"] = {"points": len(history), "steps": [m.step for m in history][:3],
                       "first": history[0].value, "last": history[-1].value}
    run = client.get_run(best)
    seen["best"] = {"params": dict(run.data.params), "metrics": dict(run.data.metrics),
                    "team": run.data.tags.get("team"), "parent": run.data.tags.get("mlflow.parentRunId"),
                    "inputs": [d.dataset.name for d in run.inputs.dataset_inputs],
                    "artifacts": sorted(a.path for a in client.list_artifacts(best)),
                    "config": mlflow.artifacts.load_dict(f"runs:/{best}/config/params.json")}

    with mlflow.start_run(run_id=best):
        info = mlflow.pyfunc.log_model(name="model", python_model=Doubler(offset=1.0),
                                       input_example=pd.DataFrame({"x": [1.0, 2.0]}))
    # MLflow 3 re-logs the run's latest metrics for the logged model; identical points count once, as in MLflow
    seen["history_after_log_model"] = len(client.get_metric_history(best, "loss"))
    version = mlflow.register_model(info.model_uri, "churn")
    client.set_registered_model_alias("churn", "champion", version.version)
    model = mlflow.pyfunc.load_model("models:/churn@champion")
    seen["prediction"] = [float(v) for v in model.predict(pd.DataFrame({"x": [1.0, 5.0]}))]
    seen["alias_version"] = client.get_model_version_by_alias("churn", "champion").version

    loser = next(r for r in seen["children"] if r != best)
    client.delete_run(loser)
    seen["after_delete"] = len(mlflow.search_runs([experiment.experiment_id], filter_string="params.depth = '4'"))
    seen["deleted_stage"] = client.get_run(loser).info.lifecycle_stage
    seen["log_to_deleted_run"] = error_code(lambda: client.log_metric(loser, "late", 1.0))
    client.restore_run(loser)
    seen["after_restore"] = len(mlflow.search_runs([experiment.experiment_id], filter_string="params.depth = '4'"))

    seen["errors"] = {
        "unknown_run": error_code(lambda: client.get_run("0" * 32)),
        "param_changed": error_code(lambda: client.log_param(best, "lr", 123)),
    }
    # the client splits a batch over MLflow's 1,000-metric limit into several requests: all of it lands
    client.log_batch(best, metrics=[mlflow.entities.Metric(f"m{i}", 1.0, 0, 0) for i in range(1001)])
    seen["big_batch_metrics"] = sum(k.startswith("m") and k[1:].isdigit() for k in client.get_run(best).data.metrics)
    return seen


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(json.dumps(main()))
