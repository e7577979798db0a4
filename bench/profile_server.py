"""Where ``ledgerflow server`` spends its time on each side-by-side workload: py-spy over the real process.

    python -m bench.profile_server [--runs 10000] [--history-points 1000000] [--py-spy PATH]

Loads the side-by-side query workload into a fresh server, then for each workload runs the same mlflow
client driver as the benchmark while py-spy samples every thread of the server, and prints the
ledgerflow functions with the largest share of the samples (inclusive) and the hottest leaf frames.
docs/performance.md quotes its output. py-spy: ``pip install py-spy`` (a binary wheel).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench.client_driver import run_driver
from bench.peers import ensure_peers
from bench.servers import ledgerflow_server
from bench.side_by_side import SEARCH_FILTER_TEXT, warm_up
from bench.stores import LedgerflowStore
from bench.workload import HISTORY_KEY, SEARCH_EXPERIMENT, SEARCH_ORDER_BY, QueryWorkload, history_run_id

WORKLOADS: dict[str, list[dict[str, Any]]] = {
    "search_runs": [{"name": "search", "kind": "search_runs", "experiment": SEARCH_EXPERIMENT,
                     "filter": SEARCH_FILTER_TEXT, "order_by": SEARCH_ORDER_BY, "max_results": 100,
                     "repetitions": 20, "warmup": 1}],
    "log_batch": [{"name": "batch", "kind": "log_batch", "batches": 20, "batch_size": 1000, "repetitions": 3}],
    "get_metric_history": [{"name": "history", "kind": "metric_history", "run_id": history_run_id(),
                            "key": HISTORY_KEY, "repetitions": 1, "warmup": 0}],
    "get-history-bulk-interval": [{"name": "sampled", "kind": "metric_history_sampled", "run_id": history_run_id(),
                                   "key": HISTORY_KEY, "max_points": 1000, "repetitions": 5, "warmup": 0}],
    "log_metric (sync)": [{"name": "single", "kind": "client_log_metric", "calls": 200, "repetitions": 1}],
}


#: thread and worker-pool frames that every stack has: left out of the inclusive shares
PLUMBING = ("(threading.py", "(anyio/", "_run_sync_endpoint (fastapi")
#: leaf frames of threads waiting for work; a leaf in FileLogReader.poll itself is its back-off time.sleep
IDLE_FRAMES = ("select (selectors", "wait (threading", "_worker (concurrent", "sleep", "FileLogReader.poll (")


def _function(frame: str) -> str:
    """``name (path:line)`` -> ``name (path)``: inclusive shares add up per function, not per line."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def summarize(raw: Path, top: int = 12) -> str:
    """Inclusive share per function and the hottest lines, from py-spy's collapsed stacks (busy samples only)."""
    inclusive: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if any(idle in frames[-1] for idle in IDLE_FRAMES):
            continue  # threads waiting for work are not where a request spends its time
        frames = [f for f in frames if not f.startswith(("thread (", "process ")) and not any(
            plumbing in f for plumbing in PLUMBING)]
        if not frames:
            continue
        total += count
        leaves[frames[-1]] += count
        for function in {_function(f) for f in frames}:
            inclusive[function] += count
    if not total:
        return "no busy samples"
    lines = [f"{total} busy samples; functions by inclusive share:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    lines += ["hottest lines:"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in leaves.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_server", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--history-points", type=int, default=1_000_000)
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    parser.add_argument("--only", nargs="+", choices=sorted(WORKLOADS))
    args = parser.parse_args(argv)
    peers = ensure_peers()
    work = Path(tempfile.mkdtemp(prefix="lf-bench-profile-"))
    try:
        store = LedgerflowStore(work / "ledgerflow")
        with ledgerflow_server(store.workdir) as server:
            store.server = server
            server.wait_ready()
            workload = QueryWorkload(runs=args.runs, history_points=args.history_points)
            store.populate(workload, 0)
            store.wait_loaded(workload)
            warm_up(server.url)
            for name in args.only or WORKLOADS:
                raw = work / f"{name.replace(' ', '_')}.txt"
                spy = subprocess.Popen([args.py_spy, "record", "--pid", str(server.process.pid), "--rate", "200",
                                        "--format", "raw", "--output", str(raw), "--threads", "--nonblocking"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                try:
                    outcome = run_driver(peers, server.url, WORKLOADS[name], work / "driver")
                finally:
                    spy.send_signal(signal.SIGINT)
                    spy.wait(timeout=60)
                medians = ", ".join(f"{task}: median {o.get('median', float('nan')):,.1f}" for task, o in outcome.items())
                print(f"\n== {name} ({medians})\n{summarize(raw) if raw.exists() else spy.stderr.read()}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
