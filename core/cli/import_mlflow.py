"""``ledgerflow import-mlflow SOURCE``: bring an MLflow store's whole history into the event log."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_BAD_SOURCE = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    command = subparsers.add_parser(
        "import-mlflow", help="import an MLflow store (sqlite, mlruns directory or server) as events",
        description="Write the whole history of an MLflow store into the ledgerflow log as events: experiments, "
                    "runs, params, tags, full metric histories, dataset inputs, registered models, versions, "
                    "aliases and artifact references. Ids and times are kept; running it again writes nothing "
                    "twice. See docs/import-mlflow.md.")
    command.add_argument("source", metavar="SOURCE",
                         help="sqlite:///PATH/mlflow.db, an mlruns directory (PATH or file:///PATH), "
                              "or http(s)://HOST:PORT of an MLflow tracking server")
    command.add_argument("--to", metavar="URI",
                         help="target log: file:HOME or kafka://HOST:PORT/TOPIC "
                              "(default: $LEDGERFLOW_TRACKING_URI, else file:$LEDGERFLOW_HOME)")
    artifacts = command.add_mutually_exclusive_group()
    artifacts.add_argument("--copy-artifacts", action="store_true",
                           help="copy artifact files into the data home's artifact store "
                                "(HOME/artifacts/<experiment>/<run>/artifacts/...) and point the runs at the copies")
    artifacts.add_argument("--no-artifacts", action="store_true",
                           help="record no artifact references (skips listing and hashing artifact files)")
    command.add_argument("--artifacts-destination", type=Path, metavar="DIR",
                         help="with --copy-artifacts: the ledgerflow artifact store to copy into, as given to "
                              "`ledgerflow server --artifacts-destination` (default: HOME/artifacts of the target)")
    command.add_argument("--mlflow-artifacts-dir", type=Path, metavar="DIR",
                         help="where an MLflow server keeps mlflow-artifacts:/ files (its --artifacts-destination), "
                              "for a sqlite or mlruns SOURCE whose runs store artifacts through that server")
    command.add_argument("--json", action="store_true", help="print the summary as JSON")
    command.add_argument("--quiet", action="store_true", help="no progress bar")
    command.set_defaults(handler=_import)


def _import(args: argparse.Namespace) -> int:
    from ledgerflow.ingest.importers import SourceError, import_mlflow

    progress = None if args.quiet or args.json else _ProgressDisplay()
    try:
        summary = import_mlflow(args.source, args.to, artifacts=not args.no_artifacts,
                                copy_artifacts=args.copy_artifacts, artifacts_destination=args.artifacts_destination,
                                mlflow_artifacts_dir=args.mlflow_artifacts_dir, progress=progress)
    except SourceError as e:
        print(f"ledgerflow: error: cannot import {args.source!r}: {e}", file=sys.stderr)
        return EXIT_BAD_SOURCE
    finally:
        if progress is not None:
            progress.stop()
    document: dict[str, Any] = {
        "source": summary.source, "target": summary.target, "found": dict(summary.found),
        "events_written": summary.events_written, "written": dict(sorted(summary.written.items())),
        "points_written": summary.points_written, "already_present": summary.already_present,
        "artifacts_copied": summary.artifacts_copied, "warnings": summary.warnings,
    }
    if args.json:
        json.dump(document, sys.stdout, indent=2)
        print()
    else:
        _print_summary(document)
    return 0


def _print_summary(document: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]MLflow store[/bold] {document['source']}", highlight=False)
    found = Table(show_header=False)
    for name, count in document["found"].items():
        found.add_row(name, f"{count:,}")
    console.print(found)
    console.print(f"[bold]Written to[/bold] {document['target']}", highlight=False)
    written = Table(show_header=False)
    for event_type, count in document["written"].items():
        written.add_row(event_type, f"{count:,}")
    written.add_row("[bold]events[/bold]", f"[bold]{document['events_written']:,}[/bold]")
    written.add_row("metric points", f"{document['points_written']:,}")
    written.add_row("already in the log, skipped", f"{document['already_present']:,}")
    if document["artifacts_copied"]:
        written.add_row("artifact files copied", f"{document['artifacts_copied']:,}")
    console.print(written)
    for warning in document["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)


class _ProgressDisplay:
    """A rich progress bar fed by the importer's (stage, done, total) callback."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TimeElapsedColumn(), transient=False)
        self._tasks: dict[str, Any] = {}
        self._started = False

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if not self._started:
            self._progress.start()
            self._started = True
        task = self._tasks.get(stage)
        if task is None:
            task = self._tasks[stage] = self._progress.add_task(stage, total=total)
        self._progress.update(task, completed=done, total=total)

    def stop(self) -> None:
        if self._started:
            for task in self._progress.tasks:  # a stage without a total ends as "done of done"
                if task.total is None:
                    self._progress.update(task.id, total=max(task.completed, 1), completed=max(task.completed, 1))
            self._progress.stop()
