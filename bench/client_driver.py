"""Running bench/drivers/mlflow_client.py under the peers' python and reading its results."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from bench.peers import PeerEnvironment

DRIVER = Path(__file__).resolve().parent / "drivers" / "mlflow_client.py"


class DriverError(RuntimeError):
    """The driver process itself failed (not one task: task errors come back in its results)."""


def run_driver(peers: PeerEnvironment, tracking_uri: str, tasks: list[dict[str, Any]], workdir: Path,
               timeout: float = 3600) -> dict[str, dict[str, Any]]:
    """Run ``tasks`` with the mlflow client against ``tracking_uri``; task name -> outcome (samples or error)."""
    workdir.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    spec, out, log = workdir / f"driver-{tag}.json", workdir / f"driver-{tag}.out.json", workdir / f"driver-{tag}.log"
    spec.write_text(json.dumps(tasks))
    environment = {**os.environ, "GIT_PYTHON_REFRESH": "quiet", "PYTHONWARNINGS": "ignore",
                   "MLFLOW_TRACKING_URI": tracking_uri}
    environment.pop("PYTHONPATH", None)  # the peers' venv must not see ledgerflow's tree
    started = time.perf_counter()
    with open(log, "wb") as log_file:
        try:
            result = subprocess.run([str(peers.python), "-u", str(DRIVER), "--tracking-uri", tracking_uri,
                                     "--spec", str(spec), "--out", str(out)], cwd=workdir, env=environment,
                                    stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                    timeout=timeout)
        except subprocess.TimeoutExpired as error:
            raise DriverError(f"mlflow client driver against {tracking_uri} ran over {timeout:.0f} s; "
                              f"log: {log}") from error
    if result.returncode != 0 or not out.exists():
        raise DriverError(f"mlflow client driver against {tracking_uri} exited {result.returncode}:\n"
                          f"{log.read_text(errors='replace')[-3000:]}")
    outcomes: dict[str, dict[str, Any]] = json.loads(out.read_text())["tasks"]
    print(f"  driver against {tracking_uri}: {len(tasks)} tasks in {time.perf_counter() - started:.0f} s"
          + "".join(f"; {name} FAILED: {o['error'][:200]}" for name, o in outcomes.items() if "error" in o),
          flush=True)
    return outcomes
