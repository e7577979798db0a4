"""MLflow's runs/search through the real mlflow client: ledgerflow server beside mlflow server, and what bounds it.

    python -u -m bench.search_latency [--runs 10000] [--workdir DIR] [--repetitions 15] [--baseline SITE_DIR]

Both servers are loaded with the same query workload (bench/workload.py; reused from ``--workdir`` when it
is already there). ``--baseline`` adds a second ledgerflow server run from another build of ledgerflow
(a ``pip install --target`` directory, e.g. of the last commit) on a copy of the same log: before/after.

Measured with the same ``MlflowClient.search_runs`` against every server, alternating between them so a
busy moment of the machine slows all alike, for pages of 100 and 1,000:

- **cold**: seven searches over disjoint sets of runs (``params.p0 = 'v<k>'``), before any other, so no
  run of the page has been read by the server before (ledgerflow keeps each run's JSON between searches);
- **warm**: the benchmark's search (bench/workload.py) repeated;
- the bare HTTP round trip of the warm search (the server's share), and the client's own parse of the
  very same response bytes (``json.loads`` + proto ``ParseDict`` + ``Run.from_proto``, what
  ``RestStore.search_runs`` does after the request): the floor no server can take the client below.

Needs the ``mlflow`` package in this interpreter (the dev/test dependency) and the bench peers' venv.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench.peers import ensure_peers
from bench.servers import ServerProcess, free_port, ledgerflow_server, mlflow_server
from bench.stores import LedgerflowStore, MlflowStore
from bench.workload import SEARCH_EXPERIMENT, SEARCH_FILTER, SEARCH_ORDER_BY, QueryWorkload

PAGES = (100, 1000)
COLD_CLASSES = 7  # params.p0 takes 7 values: 7 disjoint sets of runs


def _milliseconds(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def _post(url: str, body: dict[str, Any]) -> bytes:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        return response.read()


def _client_parse(raw: bytes) -> list[Any]:
    """What the mlflow client does with a runs/search response once it has the bytes."""
    from google.protobuf.json_format import ParseDict
    from mlflow.entities import Run
    from mlflow.protos.service_pb2 import SearchRuns

    message = SearchRuns.Response()
    ParseDict(json.loads(raw), message, ignore_unknown_fields=True)
    return [Run.from_proto(run) for run in message.runs]


def _baseline_server(site: Path, home: Path) -> ServerProcess:
    """``ledgerflow server`` imported from ``site`` (PYTHONPATH wins over the editable install)."""
    port = free_port()
    return ServerProcess("ledgerflow-baseline", [sys.executable, "-m", "ledgerflow", "server", "--home", str(home),
                                                 "--port", str(port)], home, port, env={"PYTHONPATH": str(site)})


def start_servers(workdir: Path, workload: QueryWorkload, baseline: Path | None) -> dict[str, ServerProcess]:
    """Every server started and loaded (the stores are filled on the first use of ``workdir``)."""
    peers = ensure_peers()
    ours, theirs = LedgerflowStore(workdir / "ledgerflow"), MlflowStore(workdir / "mlflow", peers)
    fresh = not (workdir / "loaded").exists()
    servers: dict[str, ServerProcess] = {}
    try:
        servers["ledgerflow"] = ours.server = ledgerflow_server(ours.workdir)
        servers["mlflow"] = theirs.server = mlflow_server(peers, theirs.workdir)
        for store in (ours, theirs):
            assert store.server is not None
            store.server.wait_ready()
            if fresh:
                started = time.perf_counter()
                store.populate(workload, 0)
                print(f"loaded {store.name} in {time.perf_counter() - started:.0f} s", flush=True)
        ours.wait_loaded(workload)
        (workdir / "loaded").touch()
        if baseline is not None:
            before = LedgerflowStore(workdir / "baseline")
            if not (before.workdir / "events").exists():  # the same log; its own projection
                shutil.copytree(ours.workdir / "events", before.workdir / "events")
            servers["ledgerflow before"] = before.server = _baseline_server(baseline, before.workdir)
            before.server.wait_ready()
            before.wait_loaded(workload)
    except BaseException:
        for server in servers.values():
            server.stop()
        raise
    return servers


def measure(servers: dict[str, ServerProcess], repetitions: int) -> dict[str, dict[str, float]]:
    from mlflow.tracking import MlflowClient

    clients = {name: MlflowClient(tracking_uri=server.url) for name, server in servers.items()}
    experiments = {name: client.get_experiment_by_name(SEARCH_EXPERIMENT).experiment_id
                   for name, client in clients.items()}

    def search(name: str, page: int, filter_string: str = SEARCH_FILTER,
               order_by: list[str] = SEARCH_ORDER_BY) -> list[Any]:
        return clients[name].search_runs([experiments[name]], filter_string=filter_string, order_by=order_by,
                                         max_results=page)

    def body(name: str, page: int) -> dict[str, Any]:
        return {"experiment_ids": [experiments[name]], "filter": SEARCH_FILTER, "order_by": SEARCH_ORDER_BY,
                "max_results": page}

    results: dict[str, dict[str, float]] = {f"{name} page {page}": {} for page in PAGES for name in servers}
    for name in servers:
        search(name, 1)  # connections, imports and DuckDB's buffers warm; one run read
    # cold first: 1,000 of the lowest m1 of each class, then the 100 highest (beyond those 1,000)
    for page, order in ((1000, ["metrics.m1 ASC"]), (100, ["metrics.m1 DESC"])):
        samples: dict[str, list[float]] = {name: [] for name in servers}
        for k in range(COLD_CLASSES):
            for name in servers:
                samples[name].append(_milliseconds(partial(search, name, page, f"params.p0 = 'v{k}'", order)))
        for name in servers:
            results[f"{name} page {page}"]["cold_client_ms"] = statistics.median(samples[name])
    for page in PAGES:
        names = {name: [run.info.run_name for run in search(name, page)] for name in servers}  # and warm
        first, *others = names.values()
        if any(other != first for other in others):
            raise AssertionError(f"the servers disagree on the page of {page}: {names}")
        client_ms: dict[str, list[float]] = {name: [] for name in servers}
        http_ms: dict[str, list[float]] = {name: [] for name in servers}
        for _ in range(repetitions):
            for name in servers:
                client_ms[name].append(_milliseconds(partial(search, name, page)))
                url = f"{servers[name].url}/api/2.0/mlflow/runs/search"
                http_ms[name].append(_milliseconds(partial(_post, url, body(name, page))))
        for name in servers:
            raw = _post(f"{servers[name].url}/api/2.0/mlflow/runs/search", body(name, page))
            parse_ms = statistics.median(_milliseconds(partial(_client_parse, raw)) for _ in range(repetitions))
            results[f"{name} page {page}"].update({
                "runs": len(first), "client_ms": statistics.median(client_ms[name]),
                "http_ms": statistics.median(http_ms[name]), "response_kib": len(raw) / 1024,
                "client_parse_ms": parse_ms})
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search_latency", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/lf-bench-search"))
    parser.add_argument("--repetitions", type=int, default=15)
    parser.add_argument("--baseline", type=Path, help="a site directory holding another build of ledgerflow")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    servers = start_servers(args.workdir, QueryWorkload(runs=args.runs, history_points=0), args.baseline)
    try:
        results = measure(servers, args.repetitions)
    finally:
        for server in servers.values():
            server.stop()
    for name, row in results.items():
        print(f"{name:28s} " + "  ".join(f"{key} {value:7.1f}" for key, value in row.items()), flush=True)
    for page in PAGES:
        mlflow = results[f"mlflow page {page}"]
        for name in servers:
            if name != "mlflow":
                row = results[f"{name} page {page}"]
                print(f"page {page}, {name} vs mlflow: client warm {mlflow['client_ms'] / row['client_ms']:.1f}x, "
                      f"client cold {mlflow['cold_client_ms'] / row['cold_client_ms']:.1f}x, "
                      f"http warm {mlflow['http_ms'] / row['http_ms']:.1f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
