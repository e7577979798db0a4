"""``ledgerflow server``: the API, the write path and the projector in one process.

With no options it is the embedded default: the local log in the data home, the projector in a
thread tailing it (so a training script writing to the same ``file:`` log shows up live), DuckDB at
HOME/state.duckdb. ``--kafka`` writes to and projects from a Kafka topic instead. docs/server.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from ledgerflow.cli.demo import DEFAULT_HOME

    parser = subparsers.add_parser(
        "server", help="serve the query API and the ingest endpoint, projecting the log in-process",
        description="Run the ledgerflow server: POST /api/v1/events writes to the log, the in-process projector "
                    "applies it to DuckDB, the query API reads it with read-your-writes. Stop with Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port to listen on (default 5000)")
    parser.add_argument("--home", type=Path, default=None,
                        help=f"data home: embedded log and state.duckdb (default $LEDGERFLOW_HOME or ./{DEFAULT_HOME})")
    parser.add_argument("--kafka", metavar="BOOTSTRAP", default=None,
                        help="write to and project from Kafka at HOST:PORT[,HOST:PORT] instead of the embedded log")
    parser.add_argument("--topic", default=None,
                        help="Kafka topic with --kafka (default $LEDGERFLOW_KAFKA_TOPIC or ledgerflow.events)")
    parser.add_argument("--artifacts-destination", metavar="DIR", default=None,
                        help="directory (or file: URI) holding the artifacts MLflow clients upload through "
                             "/api/2.0/mlflow-artifacts (default HOME/artifacts)")
    parser.add_argument("--demo", action="store_true", help="log the demo experiment first if the log is empty")
    parser.set_defaults(handler=run_server)


def log_demo_if_empty(log_uri: str, steps: int = 50) -> bool:
    """Log ``ledgerflow demo``'s experiment into an empty log; False (and nothing logged) otherwise."""
    from ledgerflow.cli.demo import log_demo_experiment
    from ledgerflow.ingest.log import open_log
    from ledgerflow.ingest.sdk import fluent

    with open_log(log_uri) as event_log:
        if any(event_log.end_position().values()):
            return False
    previous = fluent.get_tracking_uri()
    fluent.set_tracking_uri(log_uri)
    try:
        log_demo_experiment(steps)
    finally:
        fluent.set_tracking_uri(previous)  # closes the demo's client and its log
    return True


def run_server(args: argparse.Namespace) -> int:
    from ledgerflow.api.server import ServerPlan, serve
    from ledgerflow.errors import ConfigurationError

    if args.topic and not args.kafka:
        raise ConfigurationError("--topic only applies with --kafka BOOTSTRAP")
    if not 0 <= args.port <= 65535:
        raise ConfigurationError(f"--port {args.port} is not a TCP port")

    def demo(server_plan: ServerPlan) -> None:
        if log_demo_if_empty(server_plan.log_uri):
            print(f"logged the demo experiment (ledgerflow demo) to {server_plan.log_uri}")
        else:
            print(f"{server_plan.log_uri} already holds events: --demo logged nothing")

    return serve(args.host, args.port, home=args.home, kafka=args.kafka, topic=args.topic,
                 artifacts_destination=args.artifacts_destination, before_start=demo if args.demo else None)
