"""The ``ledgerflow`` command. Each command group lives in its own module with a ``register`` function."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ledgerflow._version import __version__
from ledgerflow.errors import LedgerflowError

# Command-group modules, each exposing register(subparsers). Imported lazily by main() so that
# `ledgerflow --version` stays fast and one group's heavy imports do not slow the others.
COMMAND_MODULES = ("demo", "events", "import_mlflow", "kafka", "projector", "schemas", "server")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="ledgerflow", description="Event-sourced ML experiment tracking.")
    parser.add_argument("--version", action="version", version=f"ledgerflow {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"ledgerflow.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except LedgerflowError as e:
        print(f"ledgerflow: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
