"""``ledgerflow kafka topics create|describe``: set up and inspect the event topic.

The broker and topic default to $LEDGERFLOW_TRACKING_URI when it is a kafka:// URI, and to
$LEDGERFLOW_KAFKA_TOPIC / $LEDGERFLOW_KAFKA_PARTITIONS, so the usual call needs no options.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from ledgerflow.errors import ConfigurationError
from ledgerflow.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    kafka = subparsers.add_parser("kafka", help="manage the Kafka event topic",
                                  description="Manage the Kafka topic holding the event log.")
    groups = kafka.add_subparsers(dest="kafka_command", metavar="GROUP")
    topics = groups.add_parser("topics", help="create or describe the event topic")
    actions = topics.add_subparsers(dest="topics_command", metavar="ACTION")

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--bootstrap", metavar="HOST:PORT[,HOST:PORT]",
                            help="brokers (default: from $LEDGERFLOW_TRACKING_URI when it is kafka://...)")
        parser.add_argument("--topic", help="topic (default: the URI's, else $LEDGERFLOW_KAFKA_TOPIC)")
        parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                            help="give up when the brokers do not answer within this time (default 10)")

    create = actions.add_parser("create", help="create the topic unless it exists")
    common(create)
    create.add_argument("--partitions", type=int, help="partition count (default $LEDGERFLOW_KAFKA_PARTITIONS, 6)")
    create.add_argument("--replication-factor", type=int, default=1, help="replicas per partition (default 1)")
    create.set_defaults(handler=_create)

    describe = actions.add_parser("describe", help="partitions, leaders, end offsets and configs")
    common(describe)
    describe.add_argument("--json", action="store_true", help="print JSON instead of a table")
    describe.set_defaults(handler=_describe)

    kafka.set_defaults(handler=lambda args: _usage(kafka))
    topics.set_defaults(handler=lambda args: _usage(topics))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _target(args: argparse.Namespace, settings: Settings) -> tuple[list[str], str]:
    """(bootstrap servers, topic) from the options, else the tracking URI, else the settings."""
    from ledgerflow.ingest.log.kafka import check_topic_name, parse_bootstrap, parse_kafka_uri

    uri_servers: list[str] | None = None
    uri_topic: str | None = None
    if settings.tracking_uri and settings.tracking_uri.startswith("kafka:"):
        uri_servers, uri_topic = parse_kafka_uri(settings.tracking_uri)
    if args.bootstrap:
        servers = parse_bootstrap(args.bootstrap)
    elif uri_servers:
        servers = uri_servers
    else:
        raise ConfigurationError(
            "no Kafka broker given: pass --bootstrap HOST:PORT or set LEDGERFLOW_TRACKING_URI=kafka://HOST:PORT[/TOPIC]")
    topic = args.topic or uri_topic or settings.kafka_topic
    if args.timeout <= 0:
        raise ConfigurationError("--timeout must be > 0")
    return servers, check_topic_name(topic)


def _create(args: argparse.Namespace) -> int:
    from ledgerflow.ingest.log.kafka import ensure_topic

    settings = Settings.from_env()
    servers, topic = _target(args, settings)
    partitions = args.partitions if args.partitions is not None else settings.kafka_partitions
    created = ensure_topic(servers, topic, partitions=partitions, replication_factor=args.replication_factor,
                           timeout=args.timeout)
    if created:
        print(f"created topic {topic} with {partitions} partitions "
              f"(replication factor {args.replication_factor}) on {','.join(servers)}")
    else:
        print(f"topic {topic} already exists on {','.join(servers)}; left unchanged")
    return 0


def _describe(args: argparse.Namespace) -> int:
    from ledgerflow.ingest.log.kafka import describe_topic

    servers, topic = _target(args, Settings.from_env())
    info = describe_topic(servers, topic, timeout=args.timeout)
    if args.json:
        print(json.dumps(asdict(info), indent=2))
        return 0
    total = sum(p.end_offset for p in info.partitions)
    print(f"topic {info.name} on {','.join(servers)}: {len(info.partitions)} partitions, {total} records")
    print(f"{'partition':>9}  {'leader':>6}  {'replicas':<10}  {'in-sync':<10}  {'end offset':>10}")
    for p in info.partitions:
        print(f"{p.partition:>9}  {p.leader:>6}  {','.join(map(str, p.replicas)):<10}  "
              f"{','.join(map(str, p.in_sync)):<10}  {p.end_offset:>10}")
    for name, value in info.config.items():
        print(f"{name} = {value}")
    return 0
