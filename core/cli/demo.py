"""``ledgerflow demo``: log a small experiment through the SDK and print what was recorded.

It is what ``make run`` shows a newcomer: the MLflow-style calls on one side, the immutable
events they became on the other, all in the embedded log so nothing needs to be running.
"""

from __future__ import annotations

import argparse
import math
import random
from pathlib import Path

from ledgerflow.cli.events import Printer, Tail
from ledgerflow.ingest.log import open_log

DEFAULT_HOME = "ledgerflow-data"
EXPERIMENT = "ledgerflow-demo"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="log a small experiment to the embedded log and print its events",
        description="Log a small experiment through the tracking SDK (import ledgerflow as lf) into the "
                    "embedded log under --home, then print the events it produced.",
    )
    parser.add_argument("--home", type=Path, default=Path(DEFAULT_HOME),
                        help=f"data home of the embedded log (default ./{DEFAULT_HOME})")
    parser.add_argument("--steps", type=int, default=50, help="training steps to log (default 50)")
    parser.add_argument("--json", action="store_true", help="print the events as JSON lines")
    parser.set_defaults(handler=run_demo)


def log_demo_experiment(steps: int, seed: int = 7) -> None:
    """A training script as it would look with MLflow, with only the import changed."""
    import ledgerflow as lf

    rng = random.Random(seed)
    lf.set_experiment(EXPERIMENT)
    with lf.start_run(run_name="baseline", tags={"team": "vision", "purpose": "demo"}):
        lf.log_params({"learning_rate": 0.01, "batch_size": 64, "optimizer": "adam"})
        for step in range(steps):
            loss = 2.0 * math.exp(-step / (steps / 4)) + rng.uniform(0, 0.05)
            lf.log_metric("loss", loss, step=step)
            lf.log_metric("accuracy", 1.0 - loss / 2.2, step=step)
        with lf.start_run(run_name="evaluation", nested=True):
            lf.log_param("split", "validation")
            lf.log_metrics({"val_loss": 0.31, "val_accuracy": 0.91}, step=steps)
            lf.set_tag("stage", "eval")
        lf.set_tags({"status_note": "converged", "model_family": "cnn"})
    lf.flush()


def run_demo(args: argparse.Namespace) -> int:
    import ledgerflow as lf

    home: Path = args.home
    uri = f"file:{home}"
    home.mkdir(parents=True, exist_ok=True)
    with open_log(uri) as log:
        before = log.end_position()  # earlier demo runs are read for names but not printed again
    lf.set_tracking_uri(uri)
    log_demo_experiment(args.steps)
    printer = Printer(as_json=args.json)
    with open_log(uri) as log:
        tail = Tail(log, printer)
        tail.run(print_from=before)
    if not args.json:
        print(f"\n{tail.printed} events written to {uri}; read them again with:\n"
              f"  ledgerflow events tail --log {uri}")
    return 0
