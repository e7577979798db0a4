"""``ledgerflow schemas``: list the event catalog, check it, publish new schema versions."""

from __future__ import annotations

import argparse

from ledgerflow.schemas import default_catalog
from ledgerflow.schemas.published import check_published, publish_new_versions, read_published


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("schemas", help="the Avro event catalog")
    commands = parser.add_subparsers(dest="schemas_command", metavar="SUBCOMMAND", required=True)
    commands.add_parser("list", help="every event type, version and fingerprint").set_defaults(handler=_list)
    commands.add_parser("check", help="fail if a published schema changed or versions are incompatible").set_defaults(handler=_check)
    commands.add_parser("publish", help="record new schema versions (after check)").set_defaults(handler=_publish)


def _list(args: argparse.Namespace) -> int:
    for name, versions in sorted(default_catalog().versions.items()):
        for schema in versions:
            print(f"{name:<28} v{schema.version}  {schema.fingerprint.hex()}  {len(schema.payload_fields)} fields")
    return 0


def _check(args: argparse.Namespace) -> int:
    problems = check_published(default_catalog(), read_published())
    for problem in problems:
        print(f"problem: {problem}")
    if not problems:
        print(f"ok: {sum(len(v) for v in default_catalog().versions.values())} schema versions, all published and compatible")
    return 1 if problems else 0


def _publish(args: argparse.Namespace) -> int:
    try:
        added = publish_new_versions(default_catalog())
    except ValueError as e:
        print(e)
        return 1
    print("published: " + (", ".join(added) if added else "nothing new"))
    return 0
