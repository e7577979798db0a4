"""``ledgerflow projector``, ``ledgerflow replay`` and ``ledgerflow db``: build and inspect the DuckDB state."""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from ledgerflow.errors import InvalidInputError
from ledgerflow.ingest.log import EventLog, Position, open_log


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser("projector", help="project the event log into a DuckDB database, continuously")
    run.add_argument("--log", help="event log URI (default: the tracking URI, else file:$LEDGERFLOW_HOME)")
    run.add_argument("--db", required=True, type=Path, help="DuckDB database file to maintain")
    run.add_argument("--once", action="store_true", help="catch up with the log, then exit")
    run.set_defaults(handler=_projector)

    replay = subparsers.add_parser("replay", help="rebuild a NEW database from the start of the log")
    replay.add_argument("--log", help="event log URI (default: the tracking URI, else file:$LEDGERFLOW_HOME)")
    replay.add_argument("--db", required=True, type=Path, help="new DuckDB file (must not exist)")
    bound = replay.add_mutually_exclusive_group()
    bound.add_argument("--until", type=parse_timestamp, help="only events that occurred at or before this time "
                       "(ISO 8601, e.g. 2026-11-01 or 2026-11-01T09:00:00+01:00; no zone means UTC)")
    bound.add_argument("--until-position", type=parse_position,
                       help="stop at this log position: OFFSET (embedded log) or P:OFFSET[,P:OFFSET] (Kafka)")
    replay.add_argument("--quiet", action="store_true", help="no progress bar")
    replay.set_defaults(handler=_replay)

    db = subparsers.add_parser("db", help="inspect a projection database")
    db_commands = db.add_subparsers(dest="db_command", metavar="SUBCOMMAND", required=True)
    checksum = db_commands.add_parser("checksum", help="deterministic content checksum per table")
    checksum.add_argument("--db", required=True, type=Path)
    checksum.add_argument("--json", action="store_true")
    checksum.set_defaults(handler=_checksum)
    reference = db_commands.add_parser("reference", help="print the table reference (docs/tables.md) as markdown")
    reference.set_defaults(handler=_reference)


def parse_timestamp(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time such as 2026-11-01T09:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_position(text: str) -> Position:
    try:
        if ":" not in text:
            return {0: int(text)}
        position = {}
        for part in text.split(","):
            partition, offset = part.split(":")
            position[int(partition)] = int(offset)
        return position
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a position: use OFFSET or P:OFFSET[,P:OFFSET]") from None


def _projector(args: argparse.Namespace) -> int:
    from ledgerflow.projector import ProjectionStore, Projector

    log = open_log(args.log)
    store = ProjectionStore(args.db)
    projector = Projector(log, store)
    try:
        if args.once:
            totals = projector.run_until_caught_up()
            print(f"projected {totals.applied} events ({totals.points} metric points), "
                  f"{totals.dead_letters} dead letters; position {_fmt(store.positions())}")
            return 0
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        print(f"ledgerflow projector: {log.uri} -> {args.db} (from {_fmt(store.positions()) or 'the start'})", flush=True)
        totals = projector.run_forever(stop)
        print(f"stopped after {totals.applied} events, {totals.dead_letters} dead letters", flush=True)
        return 0
    finally:
        projector.close()
        store.close()
        log.close()


def _fmt(position: Position) -> str:
    return ",".join(f"{p}:{o}" for p, o in sorted(position.items()))


def _replay(args: argparse.Namespace) -> int:
    from ledgerflow.projector import replay

    if args.db.exists():
        raise InvalidInputError(f"{args.db} exists; replay builds a new database, choose a new --db path")
    log = open_log(args.log)
    try:
        started = time.perf_counter()
        totals = replay(log, args.db, until=args.until, until_position=args.until_position,
                        progress=None if args.quiet else _progress_bar(log))
        elapsed = time.perf_counter() - started
    finally:
        log.close()
    rate = totals.points / elapsed if elapsed else 0.0
    print(f"replayed {totals.records} records in {elapsed:.1f} s into {args.db}: {totals.applied} events applied, "
          f"{totals.points:,} metric points ({rate:,.0f} points/s), {totals.dead_letters} dead letters"
          + (f", {totals.skipped} events after --until left out" if totals.skipped else ""))
    for event_type, count in sorted(totals.by_type.items()):
        print(f"  {event_type:<28} {count}")
    return 0


def _progress_bar(log: EventLog):
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    end = sum(log.end_position().values())
    progress = Progress(TextColumn("replay"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                        TextColumn("{task.fields[points]:,} points"), TimeRemainingColumn(), transient=False)
    task = progress.add_task("replay", total=max(end, 1), points=0)

    def update(position: Position, points: int, done: bool = False) -> None:
        if not progress.live.is_started:
            progress.start()
        progress.update(task, completed=min(sum(position.values()), end), points=points)
        if done:
            progress.update(task, completed=max(end, 1))
            progress.stop()

    return update


def _checksum(args: argparse.Namespace) -> int:
    from ledgerflow.projector import database_checksums

    if not args.db.exists():
        raise InvalidInputError(f"no database at {args.db}")
    sums = database_checksums(args.db)
    overall = hashlib.sha256(json.dumps(sums, sort_keys=True).encode()).hexdigest()[:16]
    if args.json:
        json.dump({"tables": sums, "overall": overall}, sys.stdout, indent=2)
        print()
    else:
        for table, value in sums.items():
            print(f"{table:<24} {value['rows']:>12} rows  {value['checksum']}")
        print(f"{'overall':<24} {'':>17}  {overall}")
    return 0


def _reference(args: argparse.Namespace) -> int:
    from ledgerflow.projector.reference import tables_markdown

    sys.stdout.write(tables_markdown())
    return 0
