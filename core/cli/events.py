"""``ledgerflow events tail``: read an event log as a human would, one line per event.

This is the first tool to reach for when asking "what did my training script actually record?":
it decodes every record with the shipped catalog and says who did what, when, to which
experiment and run. Damaged records and undecodable events become warnings, never a crash,
because a tail is most needed precisely when a log looks wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from ledgerflow.errors import InvalidInputError
from ledgerflow.ingest.log import EventLog, LogError, LogRecord, Position, open_log
from ledgerflow.ingest.log.uri import log_directory
from ledgerflow.schemas import Event, EventDecodeError, decode, unpack_series
from ledgerflow.settings import Settings

#: events shown by ``--follow`` before new ones, like ``tail -f``
FOLLOW_BACKLOG = 10
#: give up catching up when a log yields nothing for this long (a writer died mid-record)
IDLE_TIMEOUT = 10.0
_MAX_VALUE = 40  # characters of a scalar field shown by the generic renderer


@dataclass(frozen=True, slots=True)
class Line:
    """One rendered event: the columns a terminal colours differently, and a JSON view for ``--json``."""

    time: str
    type: str
    actor: str
    details: str
    data: dict[str, Any]


@dataclass
class EventFormatter:
    """Turns decoded events into :class:`Line` objects, remembering names seen along the way.

    Events carry ids, not names; remembering ``ExperimentCreated``/``Renamed`` and ``RunStarted``
    lets later events say ``experiment=mnist`` instead of a bare id, as a reader expects.
    """

    experiment_names: dict[str, str] = field(default_factory=dict)
    run_names: dict[str, str] = field(default_factory=dict)

    def observe(self, event: Event) -> None:
        """Learn names from ``event`` without rendering it."""
        body = event.body
        if event.type == "ExperimentCreated":
            self.experiment_names[body["experiment_id"]] = body["name"]
        elif event.type == "ExperimentRenamed":
            self.experiment_names[body["experiment_id"]] = body["new_name"]
        elif event.type == "RunStarted":
            self.run_names[body["run_id"]] = body["run_name"]
        elif event.type == "RunRenamed":
            self.run_names[body["run_id"]] = body["new_name"]

    def render(self, event: Event, record: LogRecord | None = None) -> Line:
        """Render ``event`` with the names known before it, then learn from it."""
        renderer = _RENDERERS.get(event.type, _render_generic)
        parts = renderer(self, event)
        data = _json_view(event, record, self)
        self.observe(event)
        envelope = event.envelope
        return Line(_format_time(envelope["occurred_at"]), event.type, envelope["actor"], "  ".join(parts), data)

    def experiment(self, experiment_id: str) -> str:
        name = self.experiment_names.get(experiment_id)
        return f"experiment={name!r}({experiment_id})" if name is not None else f"experiment={experiment_id}"

    def run(self, run_id: str, label: str = "run") -> str:
        name = self.run_names.get(run_id)
        return f"{label}={run_id}({name!r})" if name is not None else f"{label}={run_id}"


def _format_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _keys(label: str, items: Iterable[dict[str, str]]) -> str:
    keys = [item["key"] for item in items]
    return f"{label}[{len(keys)}]: {', '.join(keys)}" if keys else f"{label}: none"


def _series_summary(series: dict[str, Any]) -> dict[str, Any]:
    steps, _, _ = unpack_series(series)
    return {"key": series["key"], "points": len(steps),
            "steps": [min(steps), max(steps)] if len(steps) else None}


def _render_metrics(fmt: EventFormatter, event: Event) -> list[str]:
    parts = [fmt.run(event.body["run_id"])]
    for summary in (_series_summary(s) for s in event.body["series"]):
        steps, points = summary["steps"], summary["points"]
        if points == 1:
            parts.append(f"{summary['key']}: 1 pt at step {steps[0]}")
        else:
            span = f" steps {steps[0]}..{steps[1]}" if steps else ""
            parts.append(f"{summary['key']}: {points} pts{span}")
    return parts


def _render_experiment_created(fmt: EventFormatter, event: Event) -> list[str]:
    body = event.body
    parts = [f"experiment={body['name']!r}({body['experiment_id']})"]
    if body.get("tags"):
        parts.append(_keys("tags", body["tags"]))
    return parts


def _render_experiment_renamed(fmt: EventFormatter, event: Event) -> list[str]:
    return [fmt.experiment(event.body["experiment_id"]), f"-> {event.body['new_name']!r}"]


def _render_run_started(fmt: EventFormatter, event: Event) -> list[str]:
    body = event.body
    parts = [f"run={body['run_id']}({body['run_name']!r})", fmt.experiment(body["experiment_id"])]
    if body.get("parent_run_id"):
        parts.append(fmt.run(body["parent_run_id"], "parent"))
    parts.append(f"status={body['status']}")
    if body.get("tags"):
        parts.append(_keys("tags", body["tags"]))
    return parts


def _render_params(fmt: EventFormatter, event: Event) -> list[str]:
    return [fmt.run(event.body["run_id"]), _keys("params", event.body["params"])]


def _render_run_tags(fmt: EventFormatter, event: Event) -> list[str]:
    return [fmt.run(event.body["run_id"]), _keys("tags", event.body["tags"])]


def _render_generic(fmt: EventFormatter, event: Event) -> list[str]:
    """Every other event type: its ids annotated, scalar fields shortened, lists as their keys."""
    parts = []
    for name, value in event.body.items():
        if name == "envelope" or value is None:
            continue
        if name == "run_id":
            parts.append(fmt.run(value))
        elif name == "experiment_id":
            parts.append(fmt.experiment(value))
        elif isinstance(value, list):
            if value and isinstance(value[0], dict) and "key" in value[0]:
                parts.append(_keys(name, value))
            elif value:
                parts.append(f"{name}[{len(value)}]")
        elif isinstance(value, dict):
            parts.append(f"{name}={{{', '.join(value)}}}")
        else:
            text = str(value)
            parts.append(f"{name}={text if len(text) <= _MAX_VALUE else text[:_MAX_VALUE - 1] + '…'}")
    return parts


_RENDERERS: dict[str, Callable[[EventFormatter, Event], list[str]]] = {
    "ExperimentCreated": _render_experiment_created,
    "ExperimentRenamed": _render_experiment_renamed,
    "RunStarted": _render_run_started,
    "MetricsLogged": _render_metrics,
    "ParamsLogged": _render_params,
    "RunTagsSet": _render_run_tags,
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)  # UUIDs, decimals


def _json_view(event: Event, record: LogRecord | None, fmt: EventFormatter) -> dict[str, Any]:
    """The event as JSON: metric columns are summarised, not dumped (they can hold millions of points)."""
    body = dict(event.body)
    if event.type == "MetricsLogged":
        body["series"] = [_series_summary(s) for s in body["series"]]
    data: dict[str, Any] = {"type": event.type, "schema_version": event.schema_version}
    if record is not None:
        data.update(partition=record.partition, offset=record.offset)
    data.update(_jsonable(body))
    experiment_id = body.get("experiment_id")
    if experiment_id in fmt.experiment_names:
        data["experiment_name"] = fmt.experiment_names[experiment_id]
    return data


class Printer:
    """Writes lines and warnings: rich colours on a terminal, plain text (or JSON) otherwise."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None, *,
                 as_json: bool = False, color: bool | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.as_json = as_json
        self._console = self._err_console = None
        if color is None:
            color = self.out.isatty() and "NO_COLOR" not in os.environ
        if color and not as_json:
            from rich.console import Console  # only on a terminal: keeps piped output fast

            self._console = Console(file=self.out, highlight=False, soft_wrap=True)
            self._err_console = Console(file=self.err, highlight=False, soft_wrap=True)

    def line(self, line: Line) -> None:
        if self.as_json:
            self.out.write(json.dumps(line.data, ensure_ascii=False) + "\n")
        elif self._console is not None:
            from rich.text import Text

            text = Text()
            text.append(line.time, "dim")
            text.append("  ")
            text.append(f"{line.type:<24}", "bold cyan")
            text.append("  ")
            text.append(f"{line.actor:<10}", "green")
            text.append("  ")
            text.append(line.details)
            self._console.print(text)
        else:
            self.out.write(f"{line.time}  {line.type:<24}  {line.actor:<10}  {line.details}\n")
        self.out.flush()

    def warning(self, message: str) -> None:
        if self._err_console is not None:
            from rich.text import Text

            self._err_console.print(Text(f"warning: {message}", "bold yellow"))
        else:
            self.err.write(f"warning: {message}\n")
            self.err.flush()


def _reached(position: Position, end: Position) -> bool:
    return all(position.get(partition, 0) >= offset for partition, offset in end.items())


class Tail:
    """Reads a log from its start, learns names from every event and prints the chosen ones."""

    def __init__(self, log: EventLog, printer: Printer, formatter: EventFormatter | None = None) -> None:
        self.log = log
        self.printer = printer
        self.formatter = formatter or EventFormatter()
        self.printed = 0
        self.warnings = 0

    def _handle(self, record: LogRecord, show: bool) -> Line | str | None:
        """A rendered line, a warning text, or None for an event only observed."""
        where = f"partition {record.partition} offset {record.offset}"
        if record.damage is not None:
            return f"damaged record at {where}: {record.damage}"
        try:
            event = decode(record.value)
        except EventDecodeError as e:
            return f"undecodable event at {where}: {e}"
        try:
            if show:
                return self.formatter.render(event, record)
            self.formatter.observe(event)
        except (EventDecodeError, KeyError, TypeError, ValueError) as e:
            return f"cannot summarise {event.type} at {where}: {e}"
        return None

    def _emit(self, item: Line | str | None) -> None:
        if isinstance(item, Line):
            self.printer.line(item)
            self.printed += 1
        elif isinstance(item, str):
            self.printer.warning(item)
            self.warnings += 1

    def run(self, *, last: int | None = None, follow: bool = False, print_from: Position | None = None,
            poll_interval: float = 0.5) -> None:
        """Print the existing events (only the ``last`` N if given), then new ones while ``follow``.

        Events before ``print_from`` are read only to learn names. Returns when the existing events
        are printed unless ``follow``; then it polls until interrupted (KeyboardInterrupt).
        """
        print_from = print_from or {}
        backlog: deque[Line | str] | None = deque(maxlen=last) if last is not None else None
        end = self.log.end_position()
        idle_since = time.monotonic()
        with self.log.reader() as reader:
            while not _reached(reader.position, end):
                records = reader.poll(10_000, timeout=0.2)
                if records:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > IDLE_TIMEOUT:
                    self._emit(f"nothing readable after {reader.position} for {IDLE_TIMEOUT:.0f}s; "
                               "a writer may have died mid-record")
                    break
                for record in records:
                    show = record.offset >= print_from.get(record.partition, 0)
                    item = self._handle(record, show)
                    if backlog is not None and isinstance(item, Line):
                        backlog.append(item)
                    else:
                        self._emit(item)
            for item in backlog or ():
                self._emit(item)
            while follow:
                for record in reader.poll(10_000, timeout=poll_interval):
                    self._emit(self._handle(record, True))


def register(subparsers: argparse._SubParsersAction) -> None:
    events = subparsers.add_parser("events", help="read the event log", description="Read the event log.")
    commands = events.add_subparsers(dest="events_command", metavar="COMMAND", required=True)
    tail = commands.add_parser(
        "tail", help="decode and print events from a log",
        description="Decode and print the events of a log, one line per event. Reads from the start to learn "
                    "experiment and run names; damaged or undecodable records are reported as warnings.",
    )
    tail.add_argument("--log", metavar="URI", default=None,
                      help="file:PATH or kafka://HOST:PORT[/TOPIC] (default: $LEDGERFLOW_TRACKING_URI, "
                           "else file:$LEDGERFLOW_HOME)")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new events until Ctrl-C")
    which = tail.add_mutually_exclusive_group()
    which.add_argument("--from-beginning", action="store_true",
                       help="print every existing event (the default without --follow)")
    which.add_argument("-n", "--lines", type=int, metavar="N", default=None,
                       help=f"print only the last N existing events (default with --follow: {FOLLOW_BACKLOG})")
    tail.add_argument("--json", action="store_true", help="one JSON object per event (metric columns summarised)")
    tail.set_defaults(handler=run_tail)


def embedded_log_directory(uri: str | None) -> Path | None:
    """The directory an embedded-log URI names (None for Kafka), to refuse reading a log that is not there.

    Opening a file log creates it; a tail of a mistyped path should say so instead.
    """
    settings = Settings.from_env()
    uri = uri or settings.tracking_uri or f"file:{settings.home}"
    split = urlsplit(uri)
    if split.scheme not in ("", "file"):
        return None
    path = split.path if uri.startswith("file://") else uri.removeprefix("file:")
    return log_directory(path) if path else None


def run_tail(args: argparse.Namespace) -> int:
    if args.lines is not None and args.lines < 0:
        raise InvalidInputError(f"-n must be 0 or more, not {args.lines}")
    last = args.lines
    if last is None and args.follow and not args.from_beginning:
        last = FOLLOW_BACKLOG
    directory = embedded_log_directory(args.log)
    if directory is not None and not directory.exists() and not args.follow:
        raise LogError(f"no event log at {directory}: nothing has been logged there yet "
                       "(check --log, $LEDGERFLOW_TRACKING_URI or $LEDGERFLOW_HOME)")
    printer = Printer(as_json=args.json)
    try:
        with open_log(args.log) as log:
            Tail(log, printer).run(last=last, follow=args.follow)
    except KeyboardInterrupt:
        return 0  # the normal way to stop --follow
    except BrokenPipeError:  # `ledgerflow events tail | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
