"""One MLflow-client workload driver for every tracking server: ledgerflow, MLflow, FastTrackML.

Runs under the peers' virtualenv python (never in ledgerflow's process, which does not import mlflow):

    python bench/drivers/mlflow_client.py --tracking-uri URI --spec tasks.json --out results.json

``tasks.json`` is a list of ``{"name": ..., "kind": ..., ...parameters}``; every kind below times the
public ``mlflow`` client exactly as a training script or notebook calls it. The results file maps each
task name to ``{"samples": [...], ...}`` or ``{"error": "..."}``: one failing task (an endpoint a server
lacks) never hides the others. Results go to a file because mlflow prints run links on stdout.
Standalone on purpose: stdlib and mlflow only, so it runs in any venv that has the client.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric

BASE_TIMESTAMP_MS = 1_763_000_000_000


def _now_ms() -> int:
    return int(time.time() * 1000)


def _repeat(once: Callable[[], float], repetitions: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        once()
    return [once() for _ in range(repetitions)]


def _fresh_run(client: MlflowClient, experiment_id: str, name: str) -> str:
    return client.create_run(experiment_id, run_name=f"{name}-{uuid.uuid4().hex[:6]}").info.run_id


def _experiment(client: MlflowClient, name: str) -> str:
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found is not None else client.create_experiment(name)


def fluent_log_metric(task: dict[str, Any], client: MlflowClient) -> dict[str, Any]:
    """Microseconds per ``mlflow.log_metric`` call inside a run (the training loop's hot path).

    Asynchronous calls (``synchronous=False``) only enqueue; the queue is drained after each timed
    loop, outside the timing, as ledgerflow's own hot-path figure flushes outside its loop.
    """
    calls, synchronous = task["calls"], task["synchronous"]
    mlflow.set_experiment(task.get("experiment", "bench-hot-path"))
    step = [0]
    with mlflow.start_run(run_name="hot-path"):
        def once() -> float:
            first = step[0]
            start = time.perf_counter_ns()
            for offset in range(calls):
                mlflow.log_metric("loss", 0.5, step=first + offset, synchronous=synchronous)
            elapsed = time.perf_counter_ns() - start
            step[0] += calls
            if not synchronous:
                mlflow.flush_async_logging()
            return elapsed / calls / 1000

        samples = _repeat(once, task["repetitions"], task.get("warmup", 1))
    return {"samples": samples, "unit": "microseconds"}


def client_log_metric(task: dict[str, Any], client: MlflowClient) -> dict[str, Any]:
    """Calls/s of ``MlflowClient.log_metric``, one synchronous request per point."""
    experiment_id = _experiment(client, task.get("experiment", "bench-single"))

    def once() -> float:
        run_id = _fresh_run(client, experiment_id, "single")
        start = time.perf_counter()
        for step in range(task["calls"]):
            client.log_metric(run_id, "loss", 1.0 / (step + 1), timestamp=BASE_TIMESTAMP_MS + step, step=step)
        return task["calls"] / (time.perf_counter() - start)

    return {"samples": _repeat(once, task["repetitions"], task.get("warmup", 1)), "unit": "calls/s"}


def log_batch(task: dict[str, Any], client: MlflowClient) -> dict[str, Any]:
    """Points/s of ``MlflowClient.log_batch`` with ``batch_size`` metric points per call, a fresh run per sample."""
    experiment_id = _experiment(client, task.get("experiment", "bench-ingest"))
    size, batches = task.get("batch_size", 1000), task["batches"]

    def once() -> float:
        run_id = _fresh_run(client, experiment_id, "batch")
        payloads = [[Metric("loss", 1.0 / (step + 1), BASE_TIMESTAMP_MS + step, step)
                     for step in range(b * size, (b + 1) * size)] for b in range(batches)]
        start = time.perf_counter()
        for metrics in payloads:
            client.log_batch(run_id, metrics=metrics)
        return batches * size / (time.perf_counter() - start)

    return {"samples": _repeat(once, task["repetitions"], task.get("warmup", 1)), "unit": "points/s"}


def freshness(task: dict[str, Any], client: MlflowClient) -> dict[str, Any]:
    """Milliseconds from a ``log_metric`` call to the point showing in ``get_metric_history``, under load.

    A background thread logs ``load_points_per_second`` points (log_batch of 1,000) to another run
    while the probe runs; the achieved load rate is reported.
    """
    experiment_id = _experiment(client, task.get("experiment", "bench-freshness"))
    stop = threading.Event()
    written = [0]
    load_error: list[str] = []

    def load() -> None:
        loader = MlflowClient()
        run_id = _fresh_run(loader, experiment_id, "load")
        rate, step, begun = task["load_points_per_second"], 0, time.perf_counter()
        try:
            while not stop.is_set():
                loader.log_batch(run_id, metrics=[Metric("load", 0.5, BASE_TIMESTAMP_MS + s, s)
                                                  for s in range(step, step + 1000)])
                step += 1000
                written[0] += 1000
                ahead = written[0] / rate - (time.perf_counter() - begun)
                if ahead > 0:
                    stop.wait(ahead)
        except Exception as error:  # reported with the figure: a load that died means no load
            load_error.append(repr(error))

    probe_run = _fresh_run(client, experiment_id, "probe")
    thread = threading.Thread(target=load, daemon=True)
    begun = time.perf_counter()
    if task["load_points_per_second"] > 0:
        thread.start()
    lags: list[float] = []
    deadline = time.monotonic() + task["seconds"]
    step = 0
    while time.monotonic() < deadline or len(lags) < task.get("min_probes", 5):
        step += 1
        sent = time.perf_counter()
        client.log_metric(probe_run, "probe", 1.0, step=step)
        while True:
            history = client.get_metric_history(probe_run, "probe")
            if any(point.step >= step for point in history):
                break
            time.sleep(0.002)
            if time.perf_counter() - sent > 60:
                raise TimeoutError(f"probe step {step} not visible in get_metric_history after 60 s")
        lags.append((time.perf_counter() - sent) * 1000)
        time.sleep(task.get("interval_seconds", 0.05))
    elapsed = time.perf_counter() - begun
    stop.set()
    thread.join(timeout=60)
    return {"samples": lags, "unit": "ms", "load_points_per_second": written[0] / elapsed,
            "load_error": load_error[0] if load_error else None}


def search_runs(task: dict[str, Any], client: MlflowClient) -> dict[str, Any]:
    """Milliseconds per ``MlflowClient.search_runs`` (filter + order_by, one page)."""
    experiment = client.get_experiment_by_name(task["experiment"])
    if experiment is None:
        raise LookupError(f"experiment {task['experiment']!r} not found: was the store populated?")
    found: list[str] = []

    def once() -> float:
        start = time.perf_counter()
        runs = client.search_runs([experiment.experiment_id], filter_string=task["filter"],
                                  order_by=task["order_by"], max_results=task["max_results"])
        elapsed = (time.perf_counter() - start) * 1000
        found[:] = [run.info.run_name for run in runs]
        return elapsed

    samples = _repeat(once, task["repetitions"], task.get("warmup", 1))
    return {"samples": samples, "unit": "ms", "run_names": found}


def compare_runs(task: dict[str, Any], client: MlflowClient) -> dict[str, Any]:
    """Milliseconds to fetch what a side-by-side comparison shows: each run, and each key's history."""
    def once() -> float:
        start = time.perf_counter()
        for run_id in task["run_ids"]:
            client.get_run(run_id)
            for key in task["metric_keys"]:
                client.get_metric_history(run_id, key)
        return (time.perf_counter() - start) * 1000

    return {"samples": _repeat(once, task["repetitions"], task.get("warmup", 1)), "unit": "ms"}


def metric_history(task: dict[str, Any], client: MlflowClient) -> dict[str, Any]:
    """Milliseconds for ``MlflowClient.get_metric_history`` of a whole series (the client pages it)."""
    points = [0]

    def once() -> float:
        start = time.perf_counter()
        points[0] = len(client.get_metric_history(task["run_id"], task["key"]))
        return (time.perf_counter() - start) * 1000

    samples = _repeat(once, task["repetitions"], task.get("warmup", 1))
    return {"samples": samples, "unit": "ms", "points": points[0]}


def metric_history_sampled(task: dict[str, Any], client: MlflowClient) -> dict[str, Any]:
    """Milliseconds for get-history-bulk-interval with max_results (the MLflow UI's downsampled chart read).

    The client library has no public method for this endpoint, so it is called with mlflow's own
    REST helper and the tracking URI's credentials.
    """
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    creds = client._tracking_client.store.get_host_creds()
    endpoint = "/api/2.0/mlflow/metrics/get-history-bulk-interval"
    params = {"run_ids": [task["run_id"]], "metric_key": task["key"], "max_results": task["max_points"]}
    points = [0]

    def once() -> float:
        start = time.perf_counter()
        response = verify_rest_response(http_request(creds, endpoint, "GET", params=params), endpoint)
        points[0] = len(response.json().get("metrics", []))
        return (time.perf_counter() - start) * 1000

    samples = _repeat(once, task["repetitions"], task.get("warmup", 1))
    return {"samples": samples, "unit": "ms", "points": points[0]}


KINDS: dict[str, Callable[[dict[str, Any], MlflowClient], dict[str, Any]]] = {
    "fluent_log_metric": fluent_log_metric,
    "client_log_metric": client_log_metric,
    "log_batch": log_batch,
    "freshness": freshness,
    "search_runs": search_runs,
    "compare_runs": compare_runs,
    "metric_history": metric_history,
    "metric_history_sampled": metric_history_sampled,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--spec", required=True, help="JSON file: a list of tasks")
    parser.add_argument("--out", required=True, help="where to write the JSON results")
    args = parser.parse_args(argv)
    with open(args.spec) as spec_file:
        tasks = json.load(spec_file)
    mlflow.set_tracking_uri(args.tracking_uri)
    client = MlflowClient()
    results: dict[str, Any] = {"mlflow_version": mlflow.__version__, "tasks": {}}
    for task in tasks:
        started = time.perf_counter()
        try:
            outcome = KINDS[task["kind"]](task, client)
            if outcome.get("samples"):
                outcome["median"] = statistics.median(outcome["samples"])
        except Exception as error:
            outcome = {"error": f"{type(error).__name__}: {error}"[:2000], "traceback": traceback.format_exc()[-4000:]}
        outcome["seconds"] = time.perf_counter() - started
        results["tasks"][task["name"]] = outcome
        print(f"driver: {task['name']}: {'error' if 'error' in outcome else 'ok'} in {outcome['seconds']:.1f} s",
              file=sys.stderr, flush=True)
    with open(args.out, "w") as out:
        json.dump(results, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
