"""ledgerflow beside MLflow and FastTrackML: the same workloads, the same mlflow client, the same run.

For each system in turn: start its server (bench/servers.py), load the query workload into its
store (bench/populate.py), then drive it with the mlflow client from the peers' virtualenv
(bench/drivers/mlflow_client.py): searches, comparisons and metric histories at each run count,
then the ingest workloads (hot path, log_batch, single calls, freshness under load), and read its
peak RSS. ledgerflow's own SDK paths are measured in this process. The figures are assembled at the
end; a system that fails leaves its columns empty and says why in the figure's notes.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import traceback
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.client_driver import run_driver
from bench.harness import Figure, from_samples
from bench.peers import FASTTRACKML_VERSION, MLFLOW_VERSION, PeerEnvironment, ensure_peers
from bench.servers import ledgerflow_server
from bench.stores import FasttrackmlStore, LedgerflowStore, MlflowStore, Store
from bench.workload import (
    HISTORY_EXPERIMENT,
    HISTORY_KEY,
    SEARCH_EXPERIMENT,
    SEARCH_ORDER_BY,
    SEARCH_PAGE,
    QueryWorkload,
    expected_search_names,
    history_run_id,
    run_id_of,
)

PEERS = ("mlflow", "fasttrackml")
COMPARE_RUNS = 10
SEARCH_FILTER_TEXT = "metrics.m0 < 0.5 AND params.p0 = 'v3'"


@dataclass(frozen=True)
class Sizes:
    """Workload sizes (bench/__main__.py holds the full and the quick set)."""

    run_counts: tuple[int, ...]
    history_points: int
    steps: int
    repetitions: int
    history_repetitions: int
    sdk_calls: int
    sync_calls: int
    async_calls: int
    single_calls: int
    batches: int
    freshness_seconds: float
    load_points_per_second: int
    compare_keys: int = 3
    mlflow_workers: int | None = None
    end_to_end_points: int = 1_000_000


@dataclass
class Outcome:
    """Everything measured on one system."""

    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    storage: dict[int, tuple[int, int, int]] = field(default_factory=dict)  # runs -> (db bytes, all bytes, points)
    load_seconds: dict[int, float] = field(default_factory=dict)
    rss_mib: float | None = None
    error: str | None = None

    def samples(self, task: str) -> list[float] | None:
        return self.tasks.get(task, {}).get("samples") or None

    def failure(self, task: str) -> str | None:
        if task in self.tasks and "error" in self.tasks[task]:
            error = self.tasks[task]["error"]
            if "ENDPOINT_NOT_FOUND" in error:
                return "does not serve this endpoint (ENDPOINT_NOT_FOUND)"
            return error.splitlines()[0][:300]
        if task not in self.tasks and self.error:
            return self.error
        return None


def _workload(sizes: Sizes, runs: int) -> QueryWorkload:
    return QueryWorkload(runs=runs, steps=sizes.steps, history_points=sizes.history_points)


def query_tasks(sizes: Sizes, runs: int, first_size: bool) -> list[dict[str, Any]]:
    reps = {"repetitions": sizes.repetitions, "warmup": 1}
    tasks: list[dict[str, Any]] = [
        {"name": f"search-{runs}", "kind": "search_runs", "experiment": SEARCH_EXPERIMENT,
         "filter": SEARCH_FILTER_TEXT, "order_by": SEARCH_ORDER_BY, "max_results": SEARCH_PAGE, **reps},
        {"name": f"compare-{runs}", "kind": "compare_runs", "run_ids": [run_id_of(i) for i in range(COMPARE_RUNS)],
         "metric_keys": [f"m{k}" for k in range(sizes.compare_keys)], **reps},
    ]
    if first_size and sizes.history_points:
        history = {"run_id": history_run_id(), "key": HISTORY_KEY, "repetitions": sizes.history_repetitions,
                   "warmup": 1}
        tasks += [{"name": "history-full", "kind": "metric_history", **history},
                  {"name": "history-sampled", "kind": "metric_history_sampled", "max_points": 1000, **history}]
    return tasks


def ingest_tasks(sizes: Sizes) -> list[dict[str, Any]]:
    reps = {"repetitions": sizes.repetitions, "warmup": 1}
    return [
        {"name": "hot-sync", "kind": "fluent_log_metric", "calls": sizes.sync_calls, "synchronous": True, **reps},
        {"name": "hot-async", "kind": "fluent_log_metric", "calls": sizes.async_calls, "synchronous": False, **reps},
        {"name": "single", "kind": "client_log_metric", "calls": sizes.single_calls, **reps},
        {"name": "batch", "kind": "log_batch", "batches": sizes.batches, "batch_size": 1000, **reps},
        {"name": "freshness", "kind": "freshness", "seconds": sizes.freshness_seconds,
         "load_points_per_second": sizes.load_points_per_second, "min_probes": 10},
    ]


def measure_store(store: Store, peers: PeerEnvironment, sizes: Sizes) -> Outcome:
    """Start ``store``'s server, load and query it at each run count, then the ingest workloads."""
    outcome = Outcome()
    print(f"  {store.name}: starting its server", flush=True)
    started = time.perf_counter()
    server = store.start()
    try:
        server.wait_ready()
        warm_up(server.url)
        print(f"  {store.name}: ready and warm after {time.perf_counter() - started:.0f} s", flush=True)
        loaded = 0
        for runs in sizes.run_counts:
            workload = _workload(sizes, runs)
            started = time.perf_counter()
            store.populate(workload, loaded)
            store.wait_loaded(workload)
            outcome.load_seconds[runs] = time.perf_counter() - started
            database, everything = store.disk_bytes()
            outcome.storage[runs] = (database, everything, store.metric_points())
            print(f"  {store.name}: {runs:,} runs loaded in {outcome.load_seconds[runs]:.0f} s, "
                  f"{database / 2**20:.1f} MiB", flush=True)
            outcome.tasks |= run_driver(peers, server.url, query_tasks(sizes, runs, loaded == 0),
                                        store.workdir / "driver")
            loaded = runs
        outcome.tasks |= run_driver(peers, server.url, ingest_tasks(sizes), store.workdir / "driver")
        outcome.rss_mib = server.peak_rss_mib()
    except Exception as error:
        traceback.print_exc()
        outcome.error = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:300]
    finally:
        server.stop()
    return outcome


def warm_up(url: str, clients: int = 8, rounds: int = 3) -> None:
    """Concurrent MLflow API reads, so every worker of a multi-process server has opened its store."""
    def read(_: int) -> None:
        for _ in range(rounds):
            with urllib.request.urlopen(f"{url}/api/2.0/mlflow/experiments/search?max_results=1", timeout=300):
                pass

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(read, range(clients)))


def _ledgerflow_sdk(sizes: Sizes, work: Path) -> dict[str, Any]:
    """ledgerflow's own SDK: the hot-path call, ingest until queryable, and durable points/s over HTTP."""
    from bench.sdk import ingest_end_to_end, sdk_figures, sdk_throughput

    hot, _ = sdk_figures(sizes.repetitions, sizes.sdk_calls)
    measured: dict[str, Any] = {"hot": hot.samples}
    for call in ("log_metric_series", "log_batch"):
        measured[f"end-to-end {call}"] = ingest_end_to_end(sizes.repetitions, sizes.end_to_end_points, call)
    try:  # a ledgerflow server of its own, empty like the peers' stores at the start of their ingest figures
        with ledgerflow_server(work / "ledgerflow-sdk") as server:
            server.wait_ready()
            measured["http"] = sdk_throughput(server.url, sizes.repetitions, sizes.sdk_calls)
    except Exception as error:
        traceback.print_exc()
        measured["http_error"] = f"{type(error).__name__}: {error}"[:300]
    return measured


def side_by_side_figures(**parameters: Any) -> list[Figure]:
    sizes = Sizes(**parameters)
    peers = ensure_peers()
    work = Path(tempfile.mkdtemp(prefix="lf-bench-peers-"))
    outcomes: dict[str, Outcome] = {}
    try:
        print("  mlflow: log_batch and log_metric straight into a sqlite store (no server)", flush=True)
        direct = Outcome()
        try:
            direct.tasks = run_driver(peers, f"sqlite:///{work / 'direct' / 'mlflow.db'}",
                                      [t for t in ingest_tasks(sizes) if t["name"] in ("batch", "hot-sync")],
                                      work / "direct")
        except Exception as error:
            direct.error = f"{type(error).__name__}: {error}"[:300]
        stores: list[Store] = [LedgerflowStore(work / "ledgerflow"), MlflowStore(work / "mlflow", peers,
                                                                                   sizes.mlflow_workers),
                               FasttrackmlStore(work / "fasttrackml", peers)]
        for store in stores:
            outcomes[store.name] = measure_store(store, peers, sizes)
        return assemble(sizes, _ledgerflow_sdk(sizes, work), direct, outcomes)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- figures ------------------------------------------------------------------------------------------

def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _why_missing(outcomes: dict[str, Outcome], task: str, systems: tuple[str, ...] = ("ledgerflow", *PEERS)) -> str:
    reasons = [f"{system}: {reason}" for system in systems
               if system in outcomes and (reason := outcomes[system].failure(task))]
    return "; ".join(reasons)


def _three_way(name: str, unit: str, better: str, outcomes: dict[str, Outcome], task: str, notes: str = "",
               **goals: Any) -> Figure:
    """A figure measured by the same driver task on all three servers."""
    figure = from_samples(name, unit, better, outcomes["ledgerflow"].samples(task), group="side-by-side", **goals)
    for peer in PEERS:
        figure.set_peer(peer, outcomes[peer].samples(task))
    figure.notes = "; ".join(n for n in (notes, _why_missing(outcomes, task)) if n)
    return figure


def _freshness(outcomes: dict[str, Outcome], q: float) -> Figure:
    label = f"p{int(q * 100)}"
    values: dict[str, float | None] = {}
    notes = []
    for system, outcome in outcomes.items():
        lags = outcome.samples("freshness")
        values[system] = _percentile(lags, q) if lags else None
        if lags:
            task = outcome.tasks["freshness"]
            notes.append(f"{system}: {len(lags)} probes, load {task.get('load_points_per_second', 0):,.0f} points/s"
                         + (f" (load failed: {task['load_error']})" if task.get("load_error") else ""))
    figure = Figure(f"freshness {label} under load: mlflow log_metric until get_metric_history shows it", "ms",
                    "lower", values["ledgerflow"], repetitions=len(outcomes["ledgerflow"].samples("freshness") or []),
                    mlflow=values["mlflow"], fasttrackml=values["fasttrackml"], group="side-by-side")
    figure.notes = "; ".join([*notes, _why_missing(outcomes, "freshness")]).strip("; ")
    return figure


def _per_point(outcomes: dict[str, Outcome], runs: int, whole: bool) -> Figure:
    values: dict[str, float | None] = {}
    notes = []
    for system, outcome in outcomes.items():
        if runs in outcome.storage:
            database, everything, points = outcome.storage[runs]
            values[system] = (everything if whole else database) / points if points else None
            notes.append(f"{system} {points:,} points")
        else:
            values[system] = None
    what = "everything on disk (ledgerflow: DuckDB + event log)" if whole else "query database file"
    return Figure(f"bytes on disk per metric point, {what}, {runs:,} runs", "bytes", "lower", values["ledgerflow"],
                  repetitions=1, mlflow=values["mlflow"], fasttrackml=values["fasttrackml"],
                  goal_ratio_mlflow=None if whole else 5, group="side-by-side",
                  notes=", ".join(notes) + ("" if whole else "; sqlite files after a WAL checkpoint"))


def assemble(sizes: Sizes, sdk: dict[str, Any], direct: Outcome, outcomes: dict[str, Outcome]) -> list[Figure]:
    figures: list[Figure] = []
    lf_client = outcomes["ledgerflow"]

    def median_note(what: str, outcome: Outcome, task: str, unit: str) -> str:
        values = outcome.samples(task)
        return f"{what}: {sorted(values)[len(values) // 2]:,.1f} {unit}" if values else \
            f"{what}: failed ({outcome.failure(task)})"

    for task, mode in (("hot-sync", "synchronous"), ("hot-async", "asynchronous (synchronous=False)")):
        figure = from_samples(f"log_metric hot path, one call: ledgerflow SDK vs mlflow.log_metric {mode}",
                              "microseconds", "lower", sdk.get("hot"), group="side-by-side",
                              goal_ratio_mlflow=1000 if task == "hot-sync" else None)
        for peer in PEERS:
            figure.set_peer(peer, outcomes[peer].samples(task))
        extra = [median_note("the mlflow client against ledgerflow server", lf_client, task, "us")]
        if task == "hot-sync":
            extra.append(median_note("mlflow straight to sqlite:/// (no server)", direct, task, "us"))
        figure.notes = "; ".join([f"peers: {sizes.sync_calls if task == 'hot-sync' else sizes.async_calls} calls "
                                  "per repetition through their servers", *extra,
                                  _why_missing(outcomes, task, PEERS)]).strip("; ")
        figures.append(figure)

    peer_batches = f"peers: log_batch of 1,000 points x {sizes.batches} calls per repetition"
    ledgerflow_e2e = (f"ledgerflow: {sizes.end_to_end_points:,} points per repetition in 1,000-point calls, timed "
                      "from the first call through the flush (durable) and the projector catching up to a count(*) "
                      "in DuckDB, not overlapped")
    for call, name, goals in (
            ("log_metric_series", "ingest until queryable, each system's fastest path (ledgerflow SDK "
             "log_metric_series of 1,000-point arrays -> embedded log -> projector -> DuckDB; MLflow log_batch "
             "-> sqlite, no server; FastTrackML log_batch -> fml server)", {"goal_ratio_mlflow": 100,
                                                                             "goal_ratio_fasttrackml": 50}),
            ("log_batch", "ingest until queryable, the same call everywhere: log_batch of 1,000 Metric objects "
             "(ledgerflow SDK -> embedded log -> projector -> DuckDB; MLflow -> sqlite, no server; FastTrackML "
             "-> fml server)", {})):
        ingest = from_samples(name, "points/s", "higher", sdk.get(f"end-to-end {call}"), group="side-by-side",
                              **goals)
        ingest.set_peer("mlflow", direct.samples("batch"))
        ingest.set_peer("fasttrackml", outcomes["fasttrackml"].samples("batch"))
        ingest.notes = "; ".join(n for n in (ledgerflow_e2e, peer_batches, direct.failure("batch"),
                                             outcomes["fasttrackml"].failure("batch")) if n)
        figures.append(ingest)
    figures.append(_three_way("log_batch of 1,000 metrics per call through each server (same mlflow client)",
                              "points/s", "higher", outcomes, "batch", f"{sizes.batches} calls per repetition",
                              goal_ratio_mlflow=3))
    figures.append(_three_way("MlflowClient.log_metric, one synchronous request per point, through each server",
                              "calls/s", "higher", outcomes, "single", f"{sizes.single_calls} calls per repetition"))
    figures.append(from_samples("ledgerflow SDK through ledgerflow server's HTTP ingest endpoint "
                                "(log_metric calls made durable, incl. flush)", "points/s", "higher",
                                sdk.get("http"), group="side-by-side",
                                notes=f"failed: {sdk['http_error']}" if "http_error" in sdk else ""))
    figures += [_freshness(outcomes, 0.5), _freshness(outcomes, 0.99)]

    for runs in sizes.run_counts:
        expected = expected_search_names(_workload(sizes, runs))
        agree = [system for system, o in outcomes.items()
                 if o.tasks.get(f"search-{runs}", {}).get("run_names") not in (None, expected)]
        load = ", ".join(f"{s} loaded in {o.load_seconds[runs]:.0f} s" for s, o in outcomes.items()
                         if runs in o.load_seconds)
        figures.append(_three_way(
            f"search_runs with a filter and an order, {runs:,} runs, one page of {SEARCH_PAGE} (mlflow client)",
            "ms", "lower", outcomes, f"search-{runs}",
            f"{SEARCH_FILTER_TEXT!r} order by {SEARCH_ORDER_BY[0]}; {load}"
            + (f"; WRONG PAGE from {', '.join(agree)}" if agree else "; every system returned the expected page"),
            goal_ratio_mlflow=10, goal_ratio_fasttrackml=1))
        figures.append(_three_way(
            f"compare {COMPARE_RUNS} runs through the mlflow client, {runs:,} runs stored", "ms", "lower", outcomes,
            f"compare-{runs}", f"{COMPARE_RUNS} get_run + {COMPARE_RUNS * sizes.compare_keys} get_metric_history "
                               f"({sizes.compare_keys} keys, {sizes.steps} points each)"))
    if sizes.history_points:
        figures.append(_three_way(f"metric history of {sizes.history_points:,} points, whole series "
                                  "(MlflowClient.get_metric_history, pages of 25,000)", "ms", "lower", outcomes,
                                  "history-full", f"experiment {HISTORY_EXPERIMENT!r}"))
        figures.append(_three_way(f"metric history of {sizes.history_points:,} points downsampled to 1,000 "
                                  "(get-history-bulk-interval, the MLflow UI's chart read)", "ms", "lower", outcomes,
                                  "history-sampled"))
    for runs in sizes.run_counts:
        figures += [_per_point(outcomes, runs, whole=False), _per_point(outcomes, runs, whole=True)]
    rss = Figure("server peak RSS over the whole side-by-side workload (process tree, VmHWM)", "MiB", "lower",
                 lf_client.rss_mib, repetitions=1, mlflow=outcomes["mlflow"].rss_mib,
                 fasttrackml=outcomes["fasttrackml"].rss_mib, group="side-by-side",
                 notes=f"mlflow server with {sizes.mlflow_workers or 'its default 4'} uvicorn worker(s); "
                       "ledgerflow includes projecting the loaded runs")
    figures.append(rss)
    for system, outcome in outcomes.items():
        if outcome.error:
            rss.notes += f"; {system} stopped early: {outcome.error}"
    return figures


VERSIONS = {"mlflow": MLFLOW_VERSION, "fasttrackml": FASTTRACKML_VERSION}
